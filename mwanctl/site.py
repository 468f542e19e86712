"""Glue between the pure compiler and the key store: the I/O a render or deploy needs first."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mwanctl.compile import Compiled, compile_site
from mwanctl.compile.context import Context
from mwanctl.compile.templates import Templates
from mwanctl.keys import KeyStore, store_lock
from mwanctl.topology.checks import pool_slots
from mwanctl.topology.model import Topology
from mwanctl.wansecrets import WanSecrets, resolve


def slot_spec(t: Topology) -> list[tuple[str, Optional[int]]]:
    return [(u.name, u.tunnel.index) for u in t.uplinks]


def open_store(t: Topology, state_dir: Optional[Path]) -> KeyStore:
    return KeyStore.open(t.site, state_dir)


def prepare(t: Topology, state_dir: Optional[Path], templates: Optional[Templates] = None,
            use: str = "current") -> tuple[Compiled, KeyStore]:
    """Make sure every tunnel has a slot and keys (saving the store first), then compile.

    Read, fill and save happen under the store lock: two runs on a fresh store would otherwise
    both generate keys and one would render keys the store no longer has.
    """
    secrets = read_wan_secrets(t)    # first: a missing secret must not leave a new key store behind
    with store_lock(t.site, state_dir):
        store = open_store(t, state_dir)
        if store.ensure(slot_spec(t), pool_slots(t)):
            store.save()
    names = [u.name for u in t.uplinks]
    return compile_site(t, store.material(names, use=use), templates, secrets), store


def read_wan_secrets(t: Topology) -> WanSecrets:
    """The PPPoE/cellular passwords and SIM PINs the uplinks' `wan:` blocks name (MW023 if any is
    missing), read now and handed to the pure compiler as data."""
    return resolve({u.name: u.wan for u in t.uplinks if u.wan is not None}, t.file)


def preview(t: Topology, state_dir: Optional[Path]) -> Context:
    """Addresses without generating or writing anything (for graph and validate)."""
    store = open_store(t, state_dir)
    return Context(t, store.assign_slots(slot_spec(t), pool_slots(t)), {})
