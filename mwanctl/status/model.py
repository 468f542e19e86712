"""The status model: what the topology expects of the mother (input) and what ``status`` found
(output), plus the exit code read from it. Plain frozen data; built by ``status.build``, drawn by
``status.render``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mwanctl.dnsview import DnsView
from mwanctl.exits import StatusExit
from mwanctl.trackerview import TrackerView
from mwanctl.verify import SESSION_LIFETIME

# Exit codes: the monitoring-plugin convention (Nagios, Icinga, Zabbix, Checkmk all read it).
OK, WARNING, CRITICAL, UNKNOWN = StatusExit.OK, StatusExit.WARNING, StatusExit.CRITICAL, StatusExit.UNKNOWN
STATES = ("online", "offline", "connecting", "disconnecting", "disabled", "not tracking", "unknown", "missing")

# An uplink mwan3 calls online whose last handshake is older than this is reported stale: past
# WireGuard's REJECT_AFTER_TIME (180 s) a session's keys send and accept nothing, and a tunnel
# that carries traffic (or keepalives) re-handshakes every REKEY_AFTER_TIME (120 s) well before.
STALE_HANDSHAKE_AFTER = SESSION_LIFETIME


# --------------------------------------------------------------------------- expectation (input)


@dataclass(frozen=True, slots=True)
class ExpectedMember:
    """A policy member as the topology compiles it (reference §1.4).

    mwan3 balances each address family on its own, so ``family`` (of the member's interface) matters
    when a policy mixes ipv4 and ipv6 interfaces.
    """

    iface: str
    metric: int
    weight: int
    family: str = "ipv4"


@dataclass(frozen=True, slots=True)
class TrackTimes:
    """The tracker settings ``status`` needs to date a connecting/disconnecting state.

    mwan3 records when an interface went online or offline, not when it started connecting or
    disconnecting; that moment is estimated from the score (rounds done), ``age`` (seconds since
    the last round) and how long a round and the sleep after it take.
    """

    down: int
    up: int
    failure_interval: float
    recovery_interval: float
    failed_round: float   # seconds a round takes when every target is lost
    good_round: float     # seconds a round takes when it succeeds (count-1 s of packets)


@dataclass(frozen=True, slots=True)
class ExpectedUplink:
    """One mwan3 interface of the topology (an uplink's tunnel, its IPv6 alias, or a WAN)."""

    name: str
    iface: str                    # mwan3 interface on the mother
    kind: str                     # "tunnel" | "wan"
    tier: int
    weight: int
    wg_iface: str | None = None   # WireGuard device on the mother (tunnels)
    peer_public_key: str | None = None  # the uplink router's key, as a peer on wg_iface
    endpoint: str | None = None
    router: str | None = None     # uplink router name; None for the mother's own wan
    family: str = "ipv4"          # ipv4 | ipv6 (mwan3 tracks and balances each family apart)
    track: TrackTimes | None = None

    @property
    def label(self) -> str:
        """How people call this interface: the uplink name, plus "IPv6" for a tunnel's alias."""
        return f"{self.name} IPv6" if self.family == "ipv6" and self.kind == "tunnel" else self.name


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the topology says the mother should be running."""

    router: str
    uplinks: tuple[ExpectedUplink, ...]
    policies: dict[str, tuple[ExpectedMember, ...]]
    stale_handshake_after: int = STALE_HANDSHAKE_AFTER
    dns_servers: tuple[str, ...] | None = None     # the topology's `dns.servers` (None: no `dns:`)


# --------------------------------------------------------------------------- status model (output)


@dataclass(frozen=True, slots=True)
class Target:
    """A tracking target; latency/loss None when not measured (no check_quality)."""

    ip: str
    status: str
    latency_ms: int | None
    loss_pct: int | None


@dataclass(frozen=True, slots=True)
class WgView:
    """The mother's side of an uplink's tunnel."""

    iface: str
    peer_public_key: str | None
    endpoint: str | None
    latest_handshake: int | None   # epoch seconds, None = never
    handshake_age: int | None      # seconds; None when never or no clock to compare with
    rx_bytes: int | None
    tx_bytes: int | None


@dataclass(frozen=True, slots=True)
class OwnWan:
    """An uplink router's own WAN (``--uplinks``)."""

    up: bool | None
    address: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class UplinkRow:
    """One uplink: topology facts, live mwan3 state, tunnel counters and policy shares."""

    name: str
    iface: str
    kind: str
    router: str | None
    tier: int
    weight: int
    state: str                     # one of STATES
    since: int | None              # seconds in that state, when known
    tracking: str
    up: bool | None
    targets: tuple[Target, ...]
    wg: WgView | None
    shares: dict[str, float]       # policy -> fraction of new flows (0..1)
    wan: OwnWan | None = None
    family: str = "ipv4"
    label: str = ""
    since_estimated: bool = False  # since was derived from the score (connecting/disconnecting)
    rounds: tuple[int, int] | None = None  # (rounds done, rounds needed) while (dis)connecting
    tracker: TrackerView | None = None   # mwanctl's handover tracker, when it owns the uplink

    @property
    def ok(self) -> bool:
        """Online, or (without tracking) up: mwan3 uses it and has no reason to doubt it."""
        return self.state == "online" or (self.state == "not tracking" and self.up is True)

    @property
    def carrying(self) -> bool:
        """In mwan3's policies right now: ok, or disconnecting (still used until declared offline)."""
        return self.ok or self.state == "disconnecting"


@dataclass(frozen=True, slots=True)
class MemberShare:
    iface: str
    metric: int
    weight: int
    share: float


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """A policy's computed split; all zero means only its last resort applies."""

    name: str
    members: tuple[MemberShare, ...]

    @property
    def last_resort(self) -> bool:
        return not any(m.share for m in self.members)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something an operator should look at. kind: offline | stale-handshake | mismatch |
    probe-failed | wan-down | unreachable | dns. Warnings do not change the exit code."""

    kind: str
    message: str
    uplink: str | None = None
    severity: str = "error"


@dataclass(frozen=True, slots=True)
class SiteStatus:
    router: str | None
    reachable: bool
    uplinks: tuple[UplinkRow, ...] = ()
    policies: tuple[PolicyStatus, ...] = ()
    problems: tuple[Problem, ...] = ()
    router_uptime: float | None = None
    error: str | None = None
    dns: DnsView | None = None               # the `dns` probe (mwanctl/dnsview.py), with `dns:`

    @classmethod
    def unreachable(cls, router: str, reason: str) -> SiteStatus:
        """The mother could not be asked at all: nothing is known, exit code UNKNOWN."""
        return cls(router, False, error=reason,
                   problems=(Problem("unreachable", f"{router} unreachable: {reason}"),))

    @classmethod
    def unknown(cls, router: str | None, reason: str) -> SiteStatus:
        """The mother answered but its mwan3 state could not be read (or mwanctl could not even
        start asking: topology or key store): exit code UNKNOWN, the reason in ``error``."""
        return cls(router, router is not None, error=reason,
                   problems=(Problem("probe-failed", reason),))

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u.family for u in self.uplinks))

    @property
    def online(self) -> tuple[UplinkRow, ...]:
        return tuple(u for u in self.uplinks if u.ok)


def exit_code(site: SiteStatus) -> StatusExit:
    """The monitoring-plugin convention:

    0 OK: every uplink interface online, no error.
    1 WARNING: degraded: some interface not online, or an error in ``problems`` (a mismatch, a
      stale handshake, a failed WireGuard probe, an uplink router's WAN down).
    2 CRITICAL: no uplink carries IPv4 traffic (online, or disconnecting: still used), or none
      carries IPv6 when the topology balances IPv6 (that family has only its last resort left),
      or the topology has no uplink at all.
    3 UNKNOWN: the state cannot be told: the mother is unreachable or its mwan3 probe failed.
    """
    if not site.reachable or site.error is not None:
        return UNKNOWN
    if not site.uplinks or any(not any(u.carrying for u in site.uplinks if u.family == f)
                               for f in site.families):
        return CRITICAL
    if len(site.online) < len(site.uplinks) or any(p.severity == "error" for p in site.problems):
        return WARNING
    return OK


__all__ = ["CRITICAL", "OK", "STALE_HANDSHAKE_AFTER", "STATES", "UNKNOWN", "WARNING", "Expectation", "ExpectedMember",
           "ExpectedUplink", "MemberShare", "OwnWan", "PolicyStatus", "Problem", "SiteStatus", "Target", "TrackTimes",
           "UplinkRow", "WgView", "exit_code"]
