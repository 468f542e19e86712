"""Facts: small typed parsers of raw router output.

Each parser is strict about what ``mwanctl status`` needs (the overall shape) and tolerant of what it
does not (a field missing or of another type reads as None / "unknown"). Output that is not what the
command prints raises ``CommandError`` with one line naming the router and the command. A probe that
failed on the router (text starting with ``"ERROR: "``, see ``Transport.query``) raises the same way.

Shapes handled for ``ubus call mwan3 status`` (reference §2): the 25.12+ ucode plugin, the 24.10 shell
plugin and the 23.05 shell plugin (no ``tracking`` key, ``notracking`` status, ``enabled`` as whatever
the UCI string became). The plugins' ``percent`` is kept only as reported: the ucode plugin truncates
it to 0/100, so shares must be computed from the members (see ``mwanctl.status``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mwanctl.probe import check_probe as _check_probe
from mwanctl.probe import fail as _fail
from mwanctl.wgdump import WG_DUMP_CMD, WgInterface, WgPeer, parse_wg_dump  # re-exported: one parser, in wgdump

__all__ = [
    "MWAN3_STATUS_CMD",
    "WAN_STATUS_CMD",
    "WG_DUMP_CMD",
    "Mwan3Interface",
    "Mwan3Status",
    "PolicyMember",
    "TrackTarget",
    "WanStatus",
    "WgInterface",
    "WgPeer",
    "parse_mwan3_status",
    "parse_uptime",
    "parse_wan_status",
    "parse_wg_dump",
]

MWAN3_STATUS_CMD = "ubus call mwan3 status"
WAN_STATUS_CMD = "ubus call network.interface.wan status"
UPTIME_CMD = "cat /proc/uptime"

_UCI_TRUE = frozenset({"1", "yes", "on", "true", "enabled"})
_UCI_FALSE = frozenset({"0", "no", "off", "false", "disabled"})


# --------------------------------------------------------------------------- shared helpers


def _a(value: Any) -> str:
    return f"a {type(value).__name__}"


def _load_json_object(text: str, router: str, command: str) -> dict[str, Any]:
    text = _check_probe(text, router, command)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _fail(router, command, f"did not print JSON ({exc}): {text[:40]!r}") from None
    if not isinstance(data, dict):
        raise _fail(router, command, f"printed a JSON {type(data).__name__}, expected an object")
    return data


def _int(value: Any) -> int | None:
    """ubus ints, or the digit strings a shell plugin may print; anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _bool(value: Any) -> bool | None:
    """JSON booleans, 0/1, or raw UCI boolean strings (23.05 passes `enabled` through unparsed)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _UCI_TRUE:
            return True
        if word in _UCI_FALSE:
            return False
    return None


def _str(value: Any, default: str = "unknown") -> str:
    return value if isinstance(value, str) and value != "" else default


# --------------------------------------------------------------------------- mwan3 status (ubus)


@dataclass(frozen=True, slots=True)
class TrackTarget:
    """One tracking target. latency/packetloss are raw: 0 unless ``check_quality`` is on."""

    ip: str
    status: str                # up | down | skipped | unknown
    latency: int | None = None     # ms (999999 on total loss with check_quality)
    packetloss: int | None = None  # percent

    @property
    def measured(self) -> bool:
        """Without check_quality both read 0; a 0/0 pair therefore means "not measured"."""
        return bool(self.latency) or bool(self.packetloss)


@dataclass(frozen=True, slots=True)
class Mwan3Interface:
    """One ``config interface`` section as the status plugin reports it (reference §2.2/§2.3).

    ``online``/``offline`` are seconds since that transition (0 when not in that state);
    ``uptime`` is netifd's interface uptime; ``age`` seconds since the tracker's last round.
    ``tracking`` is "unknown" on 23.05, which does not report it.
    """

    name: str
    status: str
    tracking: str = "unknown"
    enabled: bool | None = None
    running: bool | None = None
    up: bool | None = None
    age: int | None = None
    online: int | None = None
    offline: int | None = None
    uptime: int | None = None
    score: int | None = None
    lost: int | None = None
    turn: int | None = None
    track_ip: tuple[TrackTarget, ...] = ()

    @property
    def since(self) -> int | None:
        """Seconds in the current up/down state, when the plugin says so."""
        if self.status in ("online", "disconnecting"):
            return self.online
        if self.status in ("offline", "connecting"):
            return self.offline
        return None


@dataclass(frozen=True, slots=True)
class PolicyMember:
    """A member the router currently has in a policy chain. ``percent`` is as reported: do not trust it."""

    iface: str
    percent: int | None = None


@dataclass(frozen=True, slots=True)
class Mwan3Status:
    """Parsed ``ubus call mwan3 status``; ``policies`` is family -> policy -> active members."""

    interfaces: dict[str, Mwan3Interface]
    policies: dict[str, dict[str, tuple[PolicyMember, ...]]] = field(default_factory=dict)
    connected: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def policy_members(self, policy: str) -> tuple[PolicyMember, ...] | None:
        """Members of ``policy`` over all families; None when no family lists the policy."""
        found: list[PolicyMember] = []
        seen = False
        for by_name in self.policies.values():
            if policy in by_name:
                seen = True
                found.extend(by_name[policy])
        return tuple(found) if seen else None


def _track_target(item: Any) -> TrackTarget | None:
    if isinstance(item, str):
        return TrackTarget(ip=item, status="unknown")
    if not isinstance(item, dict) or not isinstance(item.get("ip"), str):
        return None
    return TrackTarget(
        ip=item["ip"],
        status=_str(item.get("status")),
        latency=_int(item.get("latency")),
        packetloss=_int(item.get("packetloss")),
    )


def _mwan3_interface(name: str, raw: dict[str, Any]) -> Mwan3Interface:
    targets = raw.get("track_ip")
    parsed = tuple(t for t in map(_track_target, targets) if t) if isinstance(targets, list) else ()
    return Mwan3Interface(
        name=name,
        status=_str(raw.get("status")),
        tracking=_str(raw.get("tracking")),
        enabled=_bool(raw.get("enabled")),
        running=_bool(raw.get("running")),
        up=_bool(raw.get("up")),
        age=_int(raw.get("age")),
        online=_int(raw.get("online")),
        offline=_int(raw.get("offline")),
        uptime=_int(raw.get("uptime")),
        score=_int(raw.get("score")),
        lost=_int(raw.get("lost")),
        turn=_int(raw.get("turn")),
        track_ip=parsed,
    )


def _policy_members(raw: Any) -> tuple[PolicyMember, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("interface"), str):
            out.append(PolicyMember(item["interface"], _int(item.get("percent"))))
    return tuple(out)


def _policies(raw: Any) -> dict[str, dict[str, tuple[PolicyMember, ...]]]:
    if not isinstance(raw, dict):
        return {}
    return {
        family: {name: _policy_members(m) for name, m in by_name.items()}
        for family, by_name in raw.items()
        if isinstance(by_name, dict)
    }


def _connected(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        return {}
    return {
        fam: tuple(n for n in nets if isinstance(n, str))
        for fam, nets in raw.items()
        if isinstance(nets, list)
    }


def parse_mwan3_status(text: str, router: str) -> Mwan3Status:
    """Parse ``ubus call mwan3 status`` (any plugin shape); ``interfaces`` is required."""
    data = _load_json_object(text, router, MWAN3_STATUS_CMD)
    raw_ifaces = data.get("interfaces")
    if raw_ifaces is None:
        raise _fail(router, MWAN3_STATUS_CMD, "printed no 'interfaces' (is mwan3 installed and running?)")
    if not isinstance(raw_ifaces, dict):
        raise _fail(router, MWAN3_STATUS_CMD, f"printed 'interfaces' as {_a(raw_ifaces)}, expected an object")
    interfaces = {}
    for name, raw in raw_ifaces.items():
        if not isinstance(raw, dict):
            raise _fail(router, MWAN3_STATUS_CMD, f"printed interface {name!r} as {_a(raw)}, expected an object")
        interfaces[name] = _mwan3_interface(name, raw)
    return Mwan3Status(interfaces, _policies(data.get("policies")), _connected(data.get("connected")))


# --------------------------------------------------------------------------- netifd wan, uptime


@dataclass(frozen=True, slots=True)
class WanStatus:
    """An uplink router's own WAN: up or not, and its first IPv4 address."""

    up: bool | None
    address: str | None


def parse_wan_status(text: str, router: str) -> WanStatus:
    """Parse ``ubus call network.interface.wan status`` (only ``up`` and ``ipv4-address[0]``)."""
    data = _load_json_object(text, router, WAN_STATUS_CMD)
    addrs = data.get("ipv4-address")
    first = addrs[0] if isinstance(addrs, list) and addrs and isinstance(addrs[0], dict) else {}
    address = first.get("address")
    return WanStatus(_bool(data.get("up")), address if isinstance(address, str) else None)


def parse_uptime(text: str, router: str) -> float:
    """Parse ``/proc/uptime`` (first field, seconds since boot)."""
    text = _check_probe(text, router, UPTIME_CMD)
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise _fail(router, UPTIME_CMD, f"printed {text[:40]!r}, expected seconds") from None
