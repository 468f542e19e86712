"""WireGuard keys and the small state file that keeps them (and each tunnel's pool slot).

The store lives apart from the topology (it holds secrets; the topology is meant to be shared
and versioned). It is written with ``mwanctl.privfile.write_private`` (0600, atomic, no symlink
followed), and private keys never appear in a repr, a log line, an error or any output:
``mwanctl keys show`` prints public keys only, and a damaged store is reported by the path of the
bad field, never its value.

Concurrent runs: ``store_lock`` (flock on ``state.lock`` beside the store) serialises whoever
generates keys, and ``save`` refuses to overwrite a store that changed on disk since it was read,
so a key that a router may hold is never dropped by a second run's write.

Rotation keeps up to three pairs per tunnel end: ``current`` (what the routers hold),
``pending`` (generated, being rolled out) and ``previous`` (kept until the new pair is confirmed
on both ends), so at no moment is a key the routers might hold missing from the store.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from mwanctl.errors import KeyStoreError
from mwanctl.privfile import PrivateFileError, exclusive_lock, write_private

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


def store_path(site: str, state_dir: Optional[Path] = None) -> Path:
    return (state_dir or default_state_dir()) / site / "state.json"


@contextlib.contextmanager
def store_lock(site: str, state_dir: Optional[Path] = None, timeout: float = 120.0) -> Iterator[None]:
    """Exclusive lock on a site's key store; hold it from ``open`` to ``save``."""
    path = store_path(site, state_dir)
    try:
        with exclusive_lock(path.with_name("state.lock"), f"the key store of site {site}", timeout):
            yield
    except PrivateFileError as exc:
        raise KeyStoreError(str(exc)) from None


def _read(path: Path) -> Optional[bytes]:
    """The store's bytes, or None when there is none yet; a symlink is refused, not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise KeyStoreError(f"{path} is a symlink; mwanctl only reads a regular key store file") from None
        raise KeyStoreError(f"cannot read key store {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyStoreError(f"{path} is not a regular file")
        mode = st.st_mode & 0o777
        if mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
        return f.read()


def _key_ok(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _public_of(private: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)).decode()


def check_data(data: Any, where: str) -> None:
    """Refuse a damaged store by the path of the bad field; values are never quoted (secrets)."""
    def bad(field: str, what: str) -> KeyStoreError:
        return KeyStoreError(f"{where}: {field} {what}; restore the key store from a backup")

    if not isinstance(data, dict):
        raise bad("the top level", "is not a JSON object")
    if data.get("schema") != SCHEMA:
        shown = data.get("schema") if isinstance(data.get("schema"), str) and len(data["schema"]) < 40 else "?"
        raise KeyStoreError(f"{where} is not an mwanctl state file (schema {shown!r})")
    tunnels = data.get("tunnels", {})
    if not isinstance(tunnels, dict):
        raise bad("tunnels", "is not an object")
    for name, t in tunnels.items():
        if not isinstance(t, dict):
            raise bad(f"tunnels.{name}", "is not an object")
        index = t.get("index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise bad(f"tunnels.{name}.index", "is not a slot number")
        for end in ENDS:
            slots = t.get(end, {})
            if not isinstance(slots, dict):
                raise bad(f"tunnels.{name}.{end}", "is not an object")
            for which, pair in slots.items():
                field = f"tunnels.{name}.{end}.{which}"
                if not isinstance(pair, dict):
                    raise bad(field, "is not a key pair object")
                for part in ("private", "public"):
                    if not _key_ok(pair.get(part)):
                        raise bad(f"{field}.{part}", "is missing or not a WireGuard key (44 base64 characters)")
                if not isinstance(pair.get("created"), str):
                    raise bad(f"{field}.created", "is missing")
                try:
                    parse_time(pair["created"])
                except ValueError:
                    raise bad(f"{field}.created", "is not an ISO 8601 time") from None
                if _public_of(pair["private"]) != pair["public"]:
                    raise bad(f"{field}.public", "does not belong to its private key")


def _digest(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else hashlib.sha256(raw).hexdigest()


class KeyStore:
    """The per-site state file: ``<state dir>/<site>/state.json``."""

    def __init__(self, path: Path, data: dict[str, Any], digest: Optional[str] = None):
        self.path = path
        self.data = data
        self._digest = digest   # sha256 of the bytes read (None: there was no file)

    # -- persistence ---------------------------------------------------------------------------
    @classmethod
    def open(cls, site: str, state_dir: Optional[Path] = None) -> "KeyStore":
        path = store_path(site, state_dir)
        raw = _read(path)
        if raw is None:
            return cls(path, {"schema": SCHEMA, "site": site, "tunnels": {}})
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise KeyStoreError(f"cannot read key store {path}: not UTF-8 at byte {exc.start}; "
                                f"restore it from a backup") from None
        except ValueError as exc:
            # JSONDecodeError's own message names line/column only (never the text), and so do we.
            pos = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise KeyStoreError(f"cannot read key store {path}: not valid JSON{pos}; "
                                f"restore it from a backup") from None
        check_data(data, str(path))
        return cls(path, data, _digest(raw))

    def save(self) -> None:
        """Write under the store lock, refusing to clobber a store another run changed meanwhile."""
        site = self.path.parent.name
        with store_lock(site, self.path.parent.parent):
            if _digest(_read(self.path)) != self._digest:
                raise KeyStoreError(f"{self.path} was changed by another mwanctl run since this one read "
                                    f"it; nothing was saved; run the command again")
            text = json.dumps(self.data, indent=1, sort_keys=True) + "\n"
            try:
                write_private(self.path, text)
            except PrivateFileError as exc:
                raise KeyStoreError(str(exc)) from None
            self._digest = _digest(text.encode())

    # -- tunnels -------------------------------------------------------------------------------
    @property
    def tunnels(self) -> dict[str, Any]:
        tunnels: dict[str, Any] = self.data.setdefault("tunnels", {})
        return tunnels

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

