"""``wg show all dump``: the one parser of WireGuard's dump, and the one place its secrets are handled.

wg(8) prints one tab-separated line per device (5 fields: name, private key, public key, listen
port, fwmark) followed by one line per peer (9 fields: device, public key, preshared key,
endpoint, allowed IPs, latest handshake, rx bytes, tx bytes, persistent keepalive). Every reader
of a dump (status, deploy checks, rotation, the transports' peer check and re-handshake) goes
through :func:`parse_wg_dump`, which checks each line's shape: a dump that is not what wg prints
is one ``CommandError`` line naming the router and a line number, never the line itself (device
lines hold private keys). Private keys are dropped at parse time; preshared keys are kept only
as "there is one", except for :func:`preshared_key`, which re-handshaking needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mwanctl.probe import check_probe, fail

__all__ = [
    "WG_DUMP_CMD",
    "WgInterface",
    "WgPeer",
    "hide_private_keys",
    "live_peers",
    "missing_peers",
    "parse_wg_dump",
    "preshared_key",
]

WG_DUMP_CMD = "wg show all dump"
_DEVICE_FIELDS, _PEER_FIELDS = 5, 9


@dataclass(frozen=True, slots=True)
class WgPeer:
    """One peer of ``wg show all dump``. The preshared key itself is never kept, only whether there is one."""

    public_key: str
    has_preshared_key: bool
    endpoint: str | None           # "host:port"; None when unknown
    allowed_ips: tuple[str, ...]
    latest_handshake: int | None   # epoch seconds (router clock); None = never
    rx_bytes: int
    tx_bytes: int
    keepalive: int | None          # seconds; None = off


@dataclass(frozen=True, slots=True)
class WgInterface:
    """One WireGuard device. The private key column is dropped at parse time."""

    name: str
    public_key: str | None
    listen_port: int | None
    fwmark: int | None
    peers: dict[str, WgPeer] = field(default_factory=dict)


def _none(value: str) -> str | None:
    return None if value in ("(none)", "off", "") else value


def _dump_int(value: str, line_no: int, router: str, column: str) -> int:
    if not value.isdigit():
        raise fail(router, WG_DUMP_CMD, f"line {line_no}: {column} is not a number")
    return int(value)


def _fwmark(value: str) -> int | None:
    if value in ("off", "0", ""):
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def _rows(text: str, router: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank line's fields with its line number; a line of another width raises."""
    text = check_probe(text, router, WG_DUMP_CMD)
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) not in (_DEVICE_FIELDS, _PEER_FIELDS):
            raise fail(router, WG_DUMP_CMD, f"line {line_no}: {len(cols)} tab-separated fields, expected 5 or 9")
        yield line_no, cols


def _wg_peer(cols: list[str], line_no: int, router: str) -> WgPeer:
    _, public, preshared, endpoint, allowed, handshake, rx, tx, keepalive = cols
    stamp = _dump_int(handshake, line_no, router, "latest handshake")
    allowed_ips = tuple(a for a in allowed.split(",") if a) if _none(allowed) else ()
    return WgPeer(
        public_key=public,
        has_preshared_key=_none(preshared) is not None,
        endpoint=_none(endpoint),
        allowed_ips=allowed_ips,
        latest_handshake=stamp or None,
        rx_bytes=_dump_int(rx, line_no, router, "rx bytes"),
        tx_bytes=_dump_int(tx, line_no, router, "tx bytes"),
        keepalive=int(keepalive) if keepalive.isdigit() and keepalive != "0" else None,
    )


def parse_wg_dump(text: str, router: str) -> dict[str, WgInterface]:
    """Parse ``wg show all dump`` into interfaces with their peers, by name.

    Error messages name line numbers only, never line contents: interface lines hold private keys.
    """
    ifaces: dict[str, WgInterface] = {}
    for line_no, cols in _rows(text, router):
        if len(cols) == _DEVICE_FIELDS:
            name, _private, public, port, fwmark = cols
            del _private  # never stored, never echoed
            ifaces[name] = WgInterface(name, _none(public), _dump_int(port, line_no, router, "listen port") or None,
                                       _fwmark(fwmark))
            continue
        owner = ifaces.get(cols[0])
        if owner is None:
            raise fail(router, WG_DUMP_CMD, f"line {line_no}: peer of an interface not listed before it")
        peer = _wg_peer(cols, line_no, router)
        owner.peers[peer.public_key] = peer
    return ifaces


def preshared_key(text: str, router: str, iface: str, key: str) -> str | None:
    """The preshared key of peer ``key`` on ``iface`` (None: none, or no such peer), for putting
    the peer back unchanged. The only reader of that column: keep what it returns out of messages."""
    for _, cols in _rows(text, router):
        if len(cols) == _PEER_FIELDS and cols[0] == iface and cols[1] == key:
            return _none(cols[2])
    return None


def live_peers(text: str, router: str) -> dict[str, set[str]]:
    """The peers' public keys by interface."""
    return {name: set(iface.peers) for name, iface in parse_wg_dump(text, router).items()}


def missing_peers(text: str, router: str, check: Mapping[str, Sequence[str]]) -> list[str]:
    """The expected peers ``wg`` does not show, as ``iface:key`` (keys shortened: public, but long)."""
    live = live_peers(text, router)
    return [f"{i}:{k[:8]}…" for i, keys in check.items() for k in keys if k not in live.get(i, set())]


def hide_private_keys(text: str) -> str:
    """A raw dump with each device line's private-key column replaced by ``(hidden)`` (what
    ``Transport.query`` returns; query.sh does the same on the router for SSH)."""
    out = []
    for line in text.splitlines(keepends=True):
        cols = line.rstrip("\n").split("\t")
        if len(cols) == _DEVICE_FIELDS:
            cols[1] = "(hidden)"
            line = "\t".join(cols) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)
