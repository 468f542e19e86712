"""Key rotation: new WireGuard keys on both ends of a tunnel without an outage or a lost key.

Per tunnel, one at a time:
  1. new pairs for both ends are written to the store as ``pending`` (before any router changes);
  2. the tunnel is drained on the mother at run time (`mwan3 ifdown`, no config edit, so mwan3
     does not restart) and new flows take the other uplinks;
  3. the uplink, then the mother, get the new keys (each apply armed with the router's own
     rollback and confirmed from a fresh connection; a private-key change rebuilds the netifd
     interface, which also applies the new peer);
  4. mwanctl waits for a handshake on the new keys, puts the tunnel back (`mwan3 ifup`), and only
     then promotes ``pending`` to ``current`` in the store.
The store is never behind the routers: every key a router might hold is stored (``current`` until
promotion, ``pending`` from before the first change). Running the command again after any failure
looks at which key each end holds and finishes the rotation.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from mwanctl.compile import Compiled, compile_site
from mwanctl.compile.templates import Templates
from mwanctl.deploy import Deployment
from mwanctl.errors import MwanctlError
from mwanctl.facts import parse_wg_dump
from mwanctl.keys import ENDS, KeyStore, generate, parse_time
from mwanctl.plan import plan_router
from mwanctl.topology.model import Topology, Uplink
from mwanctl.transports.base import RouterState, Transport

Connect = Callable[[str], Transport]
Say = Callable[[str], None]

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RotateError(MwanctlError):
    pass


def parse_age(text: str) -> _dt.timedelta:
    """`90d`, `12h`, `2w`, ... for --older-than."""
    m = _DURATION.match(text.strip())
    if not m:
        raise RotateError(f"cannot read the age {text!r}; use a number and a unit: 90d, 12h, 2w")
    return _dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def due(store: KeyStore, names: list[str], older_than: Optional[_dt.timedelta],
        now: _dt.datetime) -> list[str]:
    """Tunnels to rotate: all, or those whose oldest current key is older than the limit; a
    tunnel with an unfinished rotation (pending keys) is always due."""
    out = []
    for n in names:
        if any(store.pair(n, end, "pending") for end in ENDS):
            out.append(n)
            continue
        if older_than is None:
            out.append(n)
            continue
        created = [parse_time(p.created) for end in ENDS if (p := store.pair(n, end)) is not None]
        if created and now - min(created) >= older_than:
            out.append(n)
    return out


@dataclass
class TunnelResult:
    uplink: str
    status: str            # "rotated" | "failed"
    message: str = ""
    seconds: float = 0.0


@dataclass
class Rotation:
    topology: Topology
    store: KeyStore
    connect: Connect
    templates: Templates = field(default_factory=Templates)
    confirm_timeout: int = 90
    handshake_timeout: float = 40.0
    say: Say = lambda msg: None
    clock: Callable[[], float] = time.time

    # -- store ---------------------------------------------------------------------------------
    def _start(self, name: str) -> None:
        """Pending keys exist for both ends and are on disk before any router is touched."""
        changed = False
        for end in ENDS:
            if self.store.pair(name, end, "pending") is None:
                self.store.set_pair(name, end, "pending", generate())
                changed = True
        if changed:
            self.store.save()

    def _promote(self, name: str) -> None:
        for end in ENDS:
            new = self.store.pair(name, end, "pending")
            if new is not None:
                self.store.set_pair(name, end, "current", new)
                self.store.set_pair(name, end, "pending", None)
        self.store.save()

    def _compiled(self, pending_for: str) -> Compiled:
        names = [u.name for u in self.topology.uplinks]
        keys = self.store.material(names)
        pending = self.store.material([pending_for], use="pending")
        keys[pending_for] = pending[pending_for]
        return compile_site(self.topology, keys, self.templates)

    # -- one tunnel ----------------------------------------------------------------------------
    def rotate(self, u: Uplink) -> TunnelResult:
        start = self.clock()
        self._start(u.name)
        mother = self.topology.mother.name
        alone = len(self.topology.uplinks) + len(self.topology.mother.wans) == 1
        drained = False
        try:
            if alone:
                self.say(f"{u.name}: the only uplink, nothing to drain to: the tunnel is down until "
                         "the new keys shake hands")
            else:
                self._drain(mother, u, True)
                drained = True
            compiled = self._compiled(u.name)
            for router in (u.name, mother):       # uplink first: the mother then connects to it
                self._apply_keys(compiled, router, u)
            self._wait_handshake(u)
            if drained:
                self._drain(mother, u, False)
                drained = False
            self._promote(u.name)
        except MwanctlError as exc:
            if drained:
                try:
                    self._drain(mother, u, False)
                except MwanctlError:
                    pass
            return TunnelResult(u.name, "failed", f"{exc}; the pending keys are kept: run "
                                "`mwanctl keys rotate` again to finish", self.clock() - start)
        return TunnelResult(u.name, "rotated", "new keys on both ends, handshake seen",
                            self.clock() - start)

    def _drain(self, mother: str, u: Uplink, drained: bool) -> None:
        """Drain at run time; also forget the tunnel's conntrack entries so flows already on it
        (NATed to the mother's tunnel address) move to the other uplinks instead of being cut."""
        self.say(f"{u.name}: {'draining' if drained else 'restoring'} {u.iface} on {mother}")
        forget = [str(self._mother_address(u))] if drained else []
        with self.connect(mother) as t:
            t.set_drained(u.iface, drained, forget)

    def _mother_address(self, u: Uplink) -> ipaddress.IPv4Address:
        from mwanctl.compile.context import Context
        slot = self.store.tunnels[u.name]["index"]
        return Context(self.topology, {u.name: int(slot)}, {}).addrs(u).mother4.ip

    def _apply_keys(self, compiled: Compiled, router: str, u: Uplink) -> None:
        """Apply the tunnel's two sections on one router, unless it already holds the new keys."""
        cfg = compiled.routers[router]
        t = self.connect(router)
        dep = Deployment(compiled, self.connect, self.confirm_timeout)
        try:
            state = self._settled_state(t, router)
            plan = plan_router(cfg, state, only={u.iface, f"{u.iface}_peer"}, packages_=("network",))
            if plan.problems:
                raise RotateError(f"{router}: " + "; ".join(plan.problems))
            if not plan.changed:
                self.say(f"{u.name}: {router} already holds the new keys")
                return
            self.say(f"{u.name}: new keys on {router}")
            outcome = dep.apply_router(router, plan, t)
            if outcome.status != "applied":
                raise RotateError(f"{router}: {outcome.message}")
        finally:
            t.close()

    def _settled_state(self, t: Transport, router: str) -> RouterState:
        """Read the router; if an earlier run left an unconfirmed change, wait for its rollback."""
        state = t.read_state(("network",))
        deadline = self.clock() + self.confirm_timeout + 15
        while state.pending is not None:
            if self.clock() > deadline:
                raise RotateError(f"{router} still has an unconfirmed change; run `mwanctl confirm` "
                                  "or `mwanctl rollback` for it first")
            self.say(f"{router}: waiting for an earlier unconfirmed change to roll back "
                     f"({max(0, state.pending.deadline)} s)")
            time.sleep(min(5.0, max(1.0, state.pending.deadline)))
            state = t.read_state(("network",))
        return state

    def _wait_handshake(self, u: Uplink) -> None:
        """A handshake with the new uplink key, newer than the apply, seen from the mother."""
        new_uplink = self.store.pair(u.name, "uplink", "pending")
        assert new_uplink is not None
        mother = self.topology.mother.name
        give_up = time.monotonic() + self.handshake_timeout
        with self.connect(mother) as t:
            while True:
                probes = t.query(("wg_dump", "epoch"))
                peers = parse_wg_dump(probes.get("wg_dump", ""), mother).get(u.iface)
                peer = peers.peers.get(new_uplink.public) if peers else None   # peers: by public key
                epoch = _int(probes.get("epoch"))
                if peer is not None and peer.latest_handshake and (epoch is None or epoch - peer.latest_handshake < 120):
                    self.say(f"{u.name}: handshake on the new keys")
                    return
                if time.monotonic() > give_up:
                    raise RotateError(f"no handshake on {u.iface} with the new keys within "
                                      f"{self.handshake_timeout:.0f} s")
                time.sleep(0.5)


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(str(text).strip().split()[0])
    except (ValueError, IndexError):
        return None


__all__ = ["Rotation", "RotateError", "TunnelResult", "due", "parse_age"]
