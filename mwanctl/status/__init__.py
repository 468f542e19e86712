"""The model behind ``mwanctl status``: expectation + raw probes in, one ``SiteStatus`` out.

Data flows one way: ``build_status`` (pure: no I/O, no clock) turns what the topology expects and what
the routers printed into a ``SiteStatus``; ``exit_code``, ``to_json`` and ``render_table`` only read that
model. Shares are computed from the expected members and the live states, never from the status
plugin's ``percent`` (truncated to 0/100 by the 25.12 ucode plugin, reference §2.2).

Every mwan3 interface is a row: an uplink with IPv6 has two (``mw_<u>`` and its alias
``mw_<u>6``), so an offline IPv6 side is never hidden behind an online IPv4 one. Exit codes follow
the monitoring-plugin convention (OK, WARNING, CRITICAL, UNKNOWN; see ``exit_code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mwanctl.errors import CommandError
from mwanctl.exits import StatusExit
from mwanctl.trackerview import TrackerView, parse_tracker_probe
from mwanctl.facts import (
    Mwan3Interface,
    Mwan3Status,
    WgInterface,
    WgPeer,
    parse_mwan3_status,
    parse_uptime,
    parse_wan_status,
    parse_wg_dump,
)

__all__ = [
    "CRITICAL",
    "OK",
    "SCHEMA",
    "STATES",
    "UNKNOWN",
    "WARNING",
    "Expectation",
    "ExpectedMember",
    "ExpectedUplink",
    "MemberShare",
    "OwnWan",
    "PolicyStatus",
    "Problem",
    "SiteStatus",
    "Target",
    "TrackTimes",
    "UplinkRow",
    "WgView",
    "build_status",
    "compute_shares",
    "exit_code",
    "format_bytes",
    "format_duration",
    "render_table",
    "status_or_unknown",
    "summary_line",
    "to_json",
]

SCHEMA = "mwanctl.status/2"
# Exit codes: the monitoring-plugin convention (Nagios, Icinga, Zabbix, Checkmk all read it).
OK, WARNING, CRITICAL, UNKNOWN = StatusExit.OK, StatusExit.WARNING, StatusExit.CRITICAL, StatusExit.UNKNOWN
STATES = ("online", "offline", "connecting", "disconnecting", "disabled", "not tracking", "unknown", "missing")
MAX_METRIC = 256  # mwan3 skips members above this ("has >256 metric. Not appending to policy")


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
    stale_handshake_after: int = 180


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
    probe-failed | wan-down | unreachable. Warnings do not change the exit code."""

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


# --------------------------------------------------------------------------- states and shares


def _state(iface: Mwan3Interface | None) -> str:
    if iface is None:
        return "missing"
    if iface.enabled is False or iface.status == "disabled":
        return "disabled"
    if iface.status in ("online", "offline", "connecting", "disconnecting"):
        return iface.status
    if iface.status == "notracking" or iface.tracking == "disabled":
        return "not tracking"
    return "unknown"


def _carrying(iface: Mwan3Interface | None) -> bool:
    """Whether mwan3 has the interface in its policies (disconnecting is still in; connecting not yet)."""
    state = _state(iface)
    if state == "not tracking":
        return iface is not None and iface.up is True
    return state in ("online", "disconnecting")


def _since(iface: Mwan3Interface | None, state: str,
           track: TrackTimes | None) -> tuple[int | None, bool, tuple[int, int] | None]:
    """(seconds in ``state``, estimated?, (rounds done, rounds needed)).

    mwan3's ``online``/``offline`` are exact but, while disconnecting (connecting), still count from
    the last time it went online (offline); the start of the current state is then estimated.
    """
    if iface is None:
        return None, False, None
    if state == "not tracking":
        return (iface.uptime if iface.up else None), False, None
    if state not in ("connecting", "disconnecting"):
        return iface.since, False, None
    if track is None or iface.score is None:
        return None, False, None
    if state == "disconnecting":
        done, needed = track.down + track.up - iface.score, track.down
        per_round = track.failure_interval + track.failed_round
    else:
        done, needed = iface.score, track.up
        per_round = track.recovery_interval + track.good_round
    if not 1 <= done < needed:
        return None, False, None   # the score does not fit the topology's settings: do not guess
    if iface.age is None or iface.age < 0:
        return None, False, (done, needed)
    return int(iface.age + (done - 1) * per_round), True, (done, needed)


def compute_shares(members: tuple[ExpectedMember, ...], carrying: set[str]) -> dict[str, float]:
    """mwan3's split, per family: among carrying members only the lowest metric is used, each gets
    weight/Σweight; members above metric 256 are never used."""
    shares = {m.iface: 0.0 for m in members}
    for family in sorted({m.family for m in members}):
        usable = [m for m in members if m.family == family and m.iface in carrying and m.metric <= MAX_METRIC]
        if not usable:
            continue
        lowest = min(m.metric for m in usable)
        active = [m for m in usable if m.metric == lowest]
        total = sum(max(m.weight, 0) for m in active)
        for m in active:
            shares[m.iface] += max(m.weight, 0) / total if total else 0.0
    return shares


def _policy_statuses(exp: Expectation, carrying: set[str]) -> tuple[PolicyStatus, ...]:
    out = []
    for name, members in exp.policies.items():
        shares = compute_shares(members, carrying)
        out.append(PolicyStatus(name, tuple(
            MemberShare(m.iface, m.metric, m.weight, round(shares[m.iface], 4)) for m in members)))
    return tuple(out)


# --------------------------------------------------------------------------- WireGuard


def _short(key: str | None) -> str:
    return f"{key[:8]}..." if key else "(none)"


def _pick_peer(wg: WgInterface, up: ExpectedUplink) -> tuple[WgPeer | None, Problem | None]:
    if up.peer_public_key and up.peer_public_key in wg.peers:
        return wg.peers[up.peer_public_key], None
    only = next(iter(wg.peers.values())) if len(wg.peers) == 1 else None
    if not up.peer_public_key:
        return only, None
    found = ", ".join(_short(k) for k in wg.peers) or "no peer"
    return only, Problem("mismatch", f"{up.name}: {wg.name} has {found}, topology expects peer "
                                     f"{_short(up.peer_public_key)}", up.name)


def _wg_view(up: ExpectedUplink, dump: dict[str, WgInterface] | None,
             now: float | None) -> tuple[WgView | None, list[Problem]]:
    if up.kind != "tunnel" or not up.wg_iface or dump is None:
        return None, []
    wg = dump.get(up.wg_iface)
    if wg is None:
        return WgView(up.wg_iface, None, up.endpoint, None, None, None, None), [Problem(
            "mismatch", f"{up.name}: WireGuard interface {up.wg_iface} is missing from `wg show`", up.name)]
    peer, problem = _pick_peer(wg, up)
    if peer is None:
        view = WgView(wg.name, None, up.endpoint, None, None, None, None)
    else:
        age = None
        if peer.latest_handshake is not None and now is not None:
            age = max(0, int(now - peer.latest_handshake))
        view = WgView(wg.name, peer.public_key, peer.endpoint or up.endpoint, peer.latest_handshake, age,
                      peer.rx_bytes, peer.tx_bytes)
    return view, [problem] if problem else []


def _stale(row: UplinkRow, limit: int) -> Problem | None:
    wg = row.wg
    if wg is None or wg.peer_public_key is None or not row.ok:
        return None
    if wg.latest_handshake is None:
        return Problem("stale-handshake", f"{row.name}: mwan3 says online but the tunnel never had a "
                                          f"handshake", row.name)
    if wg.handshake_age is not None and wg.handshake_age > limit:
        return Problem("stale-handshake", f"{row.name}: mwan3 says online but the last handshake was "
                                          f"{format_duration(wg.handshake_age)} ago", row.name)
    return None


# --------------------------------------------------------------------------- own WAN of uplink routers


def _own_wan(router: str | None, uplink_probes: Mapping[str, Mapping[str, str]] | None) -> OwnWan | None:
    if uplink_probes is None or router is None:
        return None
    text = uplink_probes.get(router, {}).get("wan_status")
    if text is None:
        return OwnWan(None, None, "not queried")
    try:
        wan = parse_wan_status(text, router)
    except CommandError as exc:
        return OwnWan(None, None, str(exc))
    return OwnWan(wan.up, wan.address)


def _wan_problem(row: UplinkRow) -> Problem | None:
    if row.wan is None:
        return None
    if row.wan.error:
        return Problem("probe-failed", f"{row.name}: own WAN of {row.router} unknown: {row.wan.error}",
                       row.name, "warning")
    if row.wan.up is False:
        return Problem("wan-down", f"{row.name}: own WAN of {row.router} is down", row.name)
    return None


# --------------------------------------------------------------------------- builder


def _targets(iface: Mwan3Interface | None) -> tuple[Target, ...]:
    if iface is None:
        return ()
    return tuple(Target(t.ip, t.status, t.latency if t.measured else None, t.packetloss if t.measured else None)
                 for t in iface.track_ip)


def _row(up: ExpectedUplink, mw: Mwan3Status, shares: dict[str, dict[str, float]], wg: WgView | None,
         wan: OwnWan | None) -> UplinkRow:
    iface = mw.interfaces.get(up.iface)
    state = _state(iface)
    since, estimated, rounds = _since(iface, state, up.track)
    return UplinkRow(
        name=up.name, iface=up.iface, kind=up.kind, router=up.router, tier=up.tier, weight=up.weight,
        state=state, since=since, tracking=iface.tracking if iface else "unknown",
        up=iface.up if iface else None, targets=_targets(iface), wg=wg,
        shares={p: round(s[up.iface], 4) for p, s in shares.items() if up.iface in s}, wan=wan,
        family=up.family, label=up.label, since_estimated=estimated, rounds=rounds,
    )


def _offline_problem(row: UplinkRow) -> Problem | None:
    if row.ok:
        return None
    if row.state == "missing":
        return Problem("mismatch", f"{_label(row)}: mwan3 does not list interface {row.iface}", row.name)
    return Problem("offline", f"{_label(row)}: {_state_text(row)}", row.name)


def _label(row: UplinkRow) -> str:
    return row.label or row.name


def _state_text(row: UplinkRow) -> str:
    """'offline for 4m12s', 'disconnecting for ~12s (2 of 3 failed rounds)'."""
    when = ""
    if row.since is not None:
        when = f" for {'~' if row.since_estimated else ''}{format_duration(row.since)}"
    if row.rounds is not None:
        kind = "failed" if row.state == "disconnecting" else "good"
        when += f" ({row.rounds[0]} of {row.rounds[1]} {kind} rounds)"
    return f"{row.state}{when}"


def _policy_problems(exp: Expectation, mw: Mwan3Status, policies: tuple[PolicyStatus, ...]) -> list[Problem]:
    if not mw.policies:
        return []  # this plugin output has no policy section at all: nothing to compare
    problems = []
    for pol in policies:
        listed = mw.policy_members(pol.name)
        if listed is None:
            problems.append(Problem("mismatch", f"policy {pol.name} is not on the router"))
            continue
        on_router = {m.iface for m in listed}
        unknown = on_router - {m.iface for m in pol.members}
        expected = {m.iface for m in pol.members if m.share}
        if unknown:
            problems.append(Problem("mismatch", f"policy {pol.name}: router uses {', '.join(sorted(unknown))}, "
                                                f"which the topology does not put in it"))
        elif on_router != expected:
            problems.append(Problem(
                "mismatch", f"policy {pol.name}: router uses {', '.join(sorted(on_router)) or 'no member'}, "
                            f"topology expects {', '.join(sorted(expected)) or 'no member'}", None, "warning"))
    return problems


def _extra_interfaces(exp: Expectation, mw: Mwan3Status) -> list[Problem]:
    known = {u.iface for u in exp.uplinks} | {m.iface for ms in exp.policies.values() for m in ms}
    return [Problem("mismatch", f"mwan3 interface {name} is enabled on the router but not in the topology",
                    None, "warning")
            for name, iface in mw.interfaces.items() if name not in known and iface.enabled]


def _uptime(probes: Mapping[str, str], router: str, now_uptime: float | None) -> float | None:
    if now_uptime is not None:
        return now_uptime
    text = probes.get("uptime")
    try:
        return parse_uptime(text, router) if text is not None else None
    except CommandError:
        return None


def _wg_dump(probes: Mapping[str, str], router: str) -> tuple[dict[str, WgInterface] | None, list[Problem]]:
    text = probes.get("wg_dump")
    if text is None:
        return None, []
    if text.startswith("ERROR: "):
        return None, [Problem("probe-failed", f"{router}: `wg show all dump` failed: {text[7:].strip()}")]
    return parse_wg_dump(text, router), []


def _epoch(probes: Mapping[str, str], now: float | None) -> float | None:
    """The router's own clock ("epoch" probe, `date +%s`) beats ours: handshake stamps are its clock."""
    text = probes.get("epoch", "")
    try:
        return float(text.strip())
    except ValueError:
        return now


def build_status(expectation: Expectation, probes: Mapping[str, str], now_uptime: float | None,
                 uplink_probes: Mapping[str, Mapping[str, str]] | None = None, *,
                 now: float | None = None) -> SiteStatus:
    """Compare the topology with the mother's probes (and optionally each uplink router's own WAN).

    ``probes`` holds raw ``Transport.query`` texts; "mwan3_status" is required (a failed or nonsense
    one raises ``CommandError``), the others are optional. ``now`` is the epoch to age WireGuard
    handshakes against when there is no "epoch" probe; without either, ages are unknown.
    """
    router = expectation.router
    if "mwan3_status" not in probes:
        raise CommandError(f"{router}: `ubus call mwan3 status` was not run")
    mw = parse_mwan3_status(probes["mwan3_status"], router)
    dump, problems = _wg_dump(probes, router)
    carrying = {name for name, iface in mw.interfaces.items() if _carrying(iface)}
    policies = _policy_statuses(expectation, carrying)
    shares = {p.name: {m.iface: m.share for m in p.members} for p in policies}
    epoch = _epoch(probes, now)
    trackers = parse_tracker_probe(probes.get("tracker", ""), _uptime(probes, router, now_uptime))
    rows = []
    for up in expectation.uplinks:
        wg, wg_problems = _wg_view(up, dump, epoch)
        alias = up.label != up.name   # a tunnel's IPv6 side: its WAN is reported on the IPv4 row
        row = _row(up, mw, shares, wg, None if alias else _own_wan(up.router, uplink_probes))
        if up.iface in trackers:
            row = replace(row, tracker=trackers[up.iface])
        rows.append(row)
        found = [_offline_problem(row), *wg_problems, _stale(row, expectation.stale_handshake_after),
                 _wan_problem(row)]
        problems += [p for p in found if p is not None]
    problems += _policy_problems(expectation, mw, policies) + _extra_interfaces(expectation, mw)
    return SiteStatus(router, True, tuple(rows), policies, tuple(problems), _uptime(probes, router, now_uptime))


def status_or_unknown(expectation: Expectation, probes: Mapping[str, str], now_uptime: float | None,
                      uplink_probes: Mapping[str, Mapping[str, str]] | None = None, *,
                      now: float | None = None) -> SiteStatus:
    """``build_status``, except that a failed or unreadable mwan3 probe becomes an UNKNOWN status
    (one JSON object with the error in it) instead of an exception."""
    try:
        return build_status(expectation, probes, now_uptime, uplink_probes, now=now)
    except CommandError as exc:
        return SiteStatus.unknown(expectation.router, str(exc))


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


# --------------------------------------------------------------------------- formatting helpers


def format_duration(seconds: int | float | None) -> str:
    """12s, 4m12s, 3h04m, 2d03h; "never" for None."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # unreachable, keeps type checkers calm


def _describe(row: UplinkRow) -> str:
    return f"{_label(row)} {_state_text(row)}"


def _family_count(site: SiteStatus, family: str) -> tuple[int, int]:
    rows = [u for u in site.uplinks if u.family == family]
    return sum(u.ok for u in rows), len(rows)


def summary_line(site: SiteStatus, dash: str = "—") -> str:
    """'2/3 uplinks online — lte offline for 4m12s' (or why nothing is known); with IPv6 interfaces
    'IPv4 2/2, IPv6 1/2 uplinks online — dsl IPv6 offline for 40s'."""
    if not site.reachable:
        return f"{site.router} unreachable: {site.error}"
    if site.error is not None:
        return f"status unknown: {site.error}"
    if len(site.families) > 1:
        head = ", ".join("{} {}/{}".format(f.replace("ipv", "IPv"), *_family_count(site, f))
                         for f in site.families) + " uplinks online"
    else:
        head = f"{len(site.online)}/{len(site.uplinks)} uplinks online"
    bad = [_describe(u) for u in site.uplinks if not u.ok]
    if bad:
        return f"{head} {dash} {', '.join(bad)}"
    errors = sum(p.severity == "error" for p in site.problems)
    return f"{head} {dash} {errors} problem(s)" if errors else head


# --------------------------------------------------------------------------- JSON


def to_json(site: SiteStatus) -> dict[str, Any]:
    """A stable, documented dict (docs/status-json.md); bump SCHEMA on any incompatible change.

    ``{"schema": "mwanctl.status/2", "router": str|null, "reachable": bool, "error": str|null,
    "router_uptime": number|null, "exit_code": 0|1|2|3,
    "summary": {"online": int, "total": int, "families": {family: {"online": int, "total": int}},
                "text": str},
    "uplinks": [{"name", "label", "iface", "kind": "tunnel"|"wan", "family": "ipv4"|"ipv6",
                 "router": str|null, "tier", "weight", "state": one of STATES, "since": int|null,
                 "since_estimated": bool, "rounds": null | {"done": int, "needed": int},
                 "tracking": str, "up": bool|null,
                 "targets": [{"ip", "status", "latency_ms": int|null, "loss_pct": int|null}],
                 "wireguard": null | {"iface", "peer_public_key", "endpoint", "latest_handshake",
                                      "handshake_age", "rx_bytes", "tx_bytes"},
                 "shares": {policy: fraction 0..1},
                 "wan": null | {"up": bool|null, "address": str|null, "error": str|null},
                 "tracker": null | {"state": "up"|"down", "since", "last_answer_age", "loss_pct",
                                    "rtt_avg_ms", "rtt_max_ms", "reason"}}],
    "policies": [{"name", "last_resort": bool, "members": [{"iface", "metric", "weight", "share"}]}],
    "problems": [{"severity": "error"|"warning", "kind", "uplink": str|null, "message"}]}``
    """
    return {
        "schema": SCHEMA,
        "router": site.router,
        "reachable": site.reachable,
        "error": site.error,
        "router_uptime": site.router_uptime,
        "exit_code": exit_code(site),
        "summary": {"online": len(site.online), "total": len(site.uplinks),
                    "families": {f: dict(zip(("online", "total"), _family_count(site, f))) for f in site.families},
                    "text": summary_line(site)},
        "uplinks": [_uplink_json(u) for u in site.uplinks],
        "policies": [{"name": p.name, "last_resort": p.last_resort,
                      "members": [{"iface": m.iface, "metric": m.metric, "weight": m.weight, "share": m.share}
                                  for m in p.members]} for p in site.policies],
        "problems": [{"severity": p.severity, "kind": p.kind, "uplink": p.uplink, "message": p.message}
                     for p in site.problems],
    }


def _uplink_json(u: UplinkRow) -> dict[str, Any]:
    wg = None if u.wg is None else {
        "iface": u.wg.iface, "peer_public_key": u.wg.peer_public_key, "endpoint": u.wg.endpoint,
        "latest_handshake": u.wg.latest_handshake, "handshake_age": u.wg.handshake_age,
        "rx_bytes": u.wg.rx_bytes, "tx_bytes": u.wg.tx_bytes,
    }
    wan = None if u.wan is None else {"up": u.wan.up, "address": u.wan.address, "error": u.wan.error}
    return {
        "name": u.name, "label": _label(u), "iface": u.iface, "kind": u.kind, "family": u.family,
        "router": u.router, "tier": u.tier, "weight": u.weight, "state": u.state, "since": u.since,
        "since_estimated": u.since_estimated,
        "rounds": None if u.rounds is None else {"done": u.rounds[0], "needed": u.rounds[1]},
        "tracking": u.tracking, "up": u.up,
        "targets": [{"ip": t.ip, "status": t.status, "latency_ms": t.latency_ms, "loss_pct": t.loss_pct}
                    for t in u.targets],
        "wireguard": wg, "shares": dict(u.shares), "wan": wan,
        "tracker": u.tracker.to_json() if u.tracker is not None else None,
    }


# --------------------------------------------------------------------------- table (rich)

_STATE_STYLE = {"online": "green", "connecting": "yellow", "disconnecting": "yellow",
                "not tracking": "cyan", "offline": "bold red", "missing": "bold red",
                "disabled": "magenta", "unknown": "red"}


def _target_text(t: Target) -> str:
    measured = "" if t.latency_ms is None else f" {t.latency_ms}ms {t.loss_pct}%"
    return f"{t.ip} {t.status}{measured}"


def _share_text(row: UplinkRow) -> str:
    if not row.shares:
        return "-"
    if len(row.shares) == 1:
        return f"{next(iter(row.shares.values())):.0%}"
    return "\n".join(f"{p} {s:.0%}" for p, s in row.shares.items())


def _handshake_text(row: UplinkRow) -> str:
    if row.wg is None or row.wg.peer_public_key is None:
        return "-"
    if row.wg.latest_handshake is None:
        return "never"
    return format_duration(row.wg.handshake_age) if row.wg.handshake_age is not None else "?"


def _wan_text(row: UplinkRow) -> str:
    if row.wan is None:
        return "-"
    if row.wan.error:
        return "?"
    state = {True: "up", False: "down", None: "?"}[row.wan.up]
    return f"{state} {row.wan.address}" if row.wan.address else state


def _table(site: SiteStatus) -> Any:
    from rich.table import Table
    from rich.text import Text

    with_wan = any(u.wan is not None for u in site.uplinks)
    table = Table(title=f"{site.router} uplinks", title_justify="left")
    for col in ("Uplink", "State", "For", "Tier", "Weight", "Share", "Tracking", "Handshake", "RX / TX",
                "Endpoint") + (("Own WAN",) if with_wan else ()):
        table.add_column(col, justify="right" if col in ("Tier", "Weight", "Share", "For") else "left")
    for u in site.uplinks:
        hs = _handshake_text(u)
        stale = any(p.kind == "stale-handshake" and p.uplink == u.name for p in site.problems)
        cells: list[Any] = [
            _label(u), Text(u.state, style=_STATE_STYLE.get(u.state, "")),
            ("~" if u.since_estimated else "") + format_duration(u.since) if u.since is not None else "-",
            str(u.tier), str(u.weight),
            _share_text(u), "\n".join([*map(_target_text, u.targets)] + ([u.tracker.text()] if u.tracker else []))
            or u.tracking,
            Text(hs, style="bold red" if stale else ""),
            f"{format_bytes(u.wg.rx_bytes)} / {format_bytes(u.wg.tx_bytes)}" if u.wg and u.wg.rx_bytes is not None
            else "-",
            (u.wg.endpoint if u.wg else None) or "-",
        ]
        if with_wan:
            cells.append(Text(_wan_text(u), style="red" if u.wan and u.wan.up is False else ""))
        table.add_row(*cells)
    return table


def render_table(site: SiteStatus, console: Any) -> None:
    """Print the status to a rich Console: table, problems, summary. Readable without colour too."""
    from rich.text import Text

    utf = (getattr(console, "encoding", "utf-8") or "").lower().startswith("utf")
    dash = "—" if utf else "-"
    if site.reachable and site.error is None:
        console.print(_table(site))
    for p in site.problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(Text(f"{p.severity}: {p.message}", style=style))
    code = exit_code(site)
    style = {OK: "bold green", WARNING: "bold yellow", CRITICAL: "bold red"}.get(code, "bold magenta")
    console.print(Text(summary_line(site, dash), style=style))
