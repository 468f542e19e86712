"""WireGuard keys and the small state file that keeps them (and each tunnel's pool slot).

The store lives apart from the topology (it holds secrets; the topology is meant to be shared
and versioned). It is written atomically with mode 0600, and private keys never appear in a
repr, a log line or any output: ``mwanctl keys show`` prints public keys only.

Rotation keeps up to three pairs per tunnel end: ``current`` (what the routers hold),
``pending`` (generated, being rolled out) and ``previous`` (kept until the new pair is confirmed
on both ends), so at no moment is a key the routers might hold missing from the store.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from mwanctl.errors import KeyStoreError

SCHEMA = "mwanctl.state/1"
ENDS = ("mother", "uplink")


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str
    created: str  # ISO 8601 UTC

    def __repr__(self) -> str:  # never leak the private key through a repr or a traceback
        return f"KeyPair(public={self.public!r}, created={self.created!r}, private=<hidden>)"

    __str__ = __repr__

    def to_json(self) -> dict[str, str]:
        return {"private": self.private, "public": self.public, "created": self.created}

    @classmethod
    def from_json(cls, d: dict[str, str]) -> "KeyPair":
        return cls(d["private"], d["public"], d["created"])


def generate(now: Optional[_dt.datetime] = None) -> KeyPair:
    """A fresh X25519 pair in WireGuard's base64 encoding (no `wg` binary needed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    raw_priv = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    raw_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KeyPair(base64.b64encode(raw_priv).decode(), base64.b64encode(raw_pub).decode(),
                   _iso(now or _dt.datetime.now(_dt.timezone.utc)))


def _iso(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class TunnelKeys:
    """What the compiler needs for one tunnel: its pool slot and the pair each end uses."""

    index: int
    mother: KeyPair
    uplink: KeyPair


def default_state_dir() -> Path:
    env = os.environ.get("MWANCTL_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mwanctl"


class KeyStore:
    """The per-site state file: ``<state dir>/<site>/state.json``."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    # -- persistence ---------------------------------------------------------------------------
    @classmethod
    def open(cls, site: str, state_dir: Optional[Path] = None) -> "KeyStore":
        path = (state_dir or default_state_dir()) / site / "state.json"
        if not path.exists():
            return cls(path, {"schema": SCHEMA, "site": site, "tunnels": {}})
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read key store {path}: {exc}; restore it from a backup") from exc
        if data.get("schema") != SCHEMA:
            raise KeyStoreError(f"{path} is not an mwanctl state file (schema {data.get('schema')!r})")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
        return cls(path, data)

    def save(self) -> None:
        """Write atomically: temp file (0600) in the same directory, fsync, rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # -- tunnels -------------------------------------------------------------------------------
    @property
    def tunnels(self) -> dict[str, Any]:
        return self.data.setdefault("tunnels", {})

    def ensure(self, uplinks: list[tuple[str, Optional[int]]], slots: int,
               now: Optional[_dt.datetime] = None) -> bool:
        """Give every uplink a stable pool slot and a key pair per end; True if anything changed.

        Slots come from the topology's explicit ``tunnel.index`` or, once allocated, from the
        store, so adding or removing an uplink never renumbers the others.
        """
        changed = False
        for name, _ in uplinks:
            t = self.tunnels.get(name)
            if t is None:
                t = self.tunnels[name] = {"index": None}
                changed = True
            for end in ENDS:
                slot = t.setdefault(end, {})
                if "current" not in slot:
                    slot["current"] = generate(now).to_json()
                    changed = True
        for name, index in self.assign_slots(uplinks, slots).items():
            if self.tunnels[name].get("index") != index:
                self.tunnels[name]["index"] = index
                changed = True
        clash = self._clashes([n for n, _ in uplinks])
        if clash:
            raise KeyStoreError(clash)
        return changed

    def assign_slots(self, uplinks: list[tuple[str, Optional[int]]], slots: int) -> dict[str, int]:
        """Each uplink's pool slot: the explicit one, else the remembered one, else the lowest
        free one. Slots of uplinks no longer listed stay reserved: nothing is ever renumbered."""
        names = {n for n, _ in uplinks}
        out: dict[str, int] = {}
        for name, explicit in uplinks:
            known = self.tunnels.get(name, {}).get("index")
            if explicit is not None or known is not None:
                out[name] = explicit if explicit is not None else int(known)
        taken = set(out.values()) | {int(t["index"]) for n, t in self.tunnels.items()
                                     if n not in names and t.get("index") is not None}
        for name, _ in uplinks:
            if name not in out:
                free = next((i for i in range(slots) if i not in taken), None)
                if free is None:
                    raise KeyStoreError(f"the tunnel pool has no free slot for uplink {name}; use a larger pool")
                out[name] = free
                taken.add(free)
        return out

    def _clashes(self, names: list[str]) -> Optional[str]:
        seen: dict[int, str] = {}
        for n in names:
            i = self.tunnels[n]["index"]
            if i in seen:
                return (f"uplinks {seen[i]} and {n} both use tunnel slot {i}; set a different "
                        f"`tunnel.index` on one of them")
            seen[i] = n
        return None

    def pair(self, uplink: str, end: str, which: str = "current") -> Optional[KeyPair]:
        slot = self.tunnels.get(uplink, {}).get(end, {}).get(which)
        return KeyPair.from_json(slot) if slot else None

    def set_pair(self, uplink: str, end: str, which: str, pair: Optional[KeyPair]) -> None:
        slot = self.tunnels.setdefault(uplink, {"index": None}).setdefault(end, {})
        if pair is None:
            slot.pop(which, None)
        else:
            slot[which] = pair.to_json()

    def material(self, names: list[str], use: str = "current") -> dict[str, TunnelKeys]:
        """Keys for the compiler; ``use="pending"`` picks pending pairs where they exist."""
        out = {}
        for n in names:
            t = self.tunnels.get(n)
            if t is None or t.get("index") is None:
                raise KeyStoreError(f"no keys for uplink {n} yet; run `mwanctl render` first")
            mother, uplink = (self._pick(n, end, use) for end in ENDS)
            if mother is None or uplink is None:
                raise KeyStoreError(f"the key store lacks a key for uplink {n}")
            out[n] = TunnelKeys(int(t["index"]), mother, uplink)
        return out

    def _pick(self, uplink: str, end: str, use: str) -> Optional[KeyPair]:
        pending = self.pair(uplink, end, "pending") if use == "pending" else None
        return pending or self.pair(uplink, end)

    def public_listing(self) -> Iterator[dict[str, Any]]:
        """One row per key (public half only) for `mwanctl keys show`."""
        for name in sorted(self.tunnels):
            t = self.tunnels[name]
            for end in ENDS:
                for which in ("current", "pending", "previous"):
                    p = self.pair(name, end, which)
                    if p is not None:
                        yield {"uplink": name, "end": end, "state": which, "public_key": p.public,
                               "created": p.created, "slot": t.get("index")}

