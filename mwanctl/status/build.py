"""The builder: the expectation plus the routers' raw probe texts in, one ``SiteStatus`` out.

Pure (no I/O, no clock: ``now`` comes in). Shares are computed from the expected members and the
live states, never from the status plugin's ``percent`` (truncated to 0/100 by the 25.12 ucode
plugin, reference §2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from mwanctl.dnsview import DnsView, parse_probe
from mwanctl.errors import CommandError
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
from mwanctl.status.model import (
    Expectation,
    ExpectedMember,
    ExpectedUplink,
    MemberShare,
    OwnWan,
    PolicyStatus,
    Problem,
    SiteStatus,
    Target,
    TrackTimes,
    UplinkRow,
    WgView,
)
from mwanctl.status.text import format_duration, row_label, state_text
from mwanctl.trackerview import parse_tracker_probe

MAX_METRIC = 256  # mwan3 skips members above this ("has >256 metric. Not appending to policy")


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
        return Problem("mismatch", f"{row_label(row)}: mwan3 does not list interface {row.iface}", row.name)
    return Problem("offline", f"{row_label(row)}: {state_text(row)}", row.name)


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


def _uptime(probes: Mapping[str, str], router: str) -> float | None:
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


def build_status(expectation: Expectation, probes: Mapping[str, str],
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
    uptime = _uptime(probes, router)
    trackers = parse_tracker_probe(probes.get("tracker", ""), uptime)
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
    dns, dns_problems = _dns(expectation, probes)
    problems += dns_problems
    return SiteStatus(router, True, tuple(rows), policies, tuple(problems), uptime, dns=dns)


def _dns(expectation: Expectation, probes: Mapping[str, str]) -> tuple[DnsView | None, list[Problem]]:
    """The `dns` probe: which upstreams answer, whether dnsmasq and mwan3 agree (dnsview), and
    whether dnsmasq runs with the topology's servers."""
    text = probes.get("dns")
    if expectation.dns_servers is None or text is None:
        return None, []
    if text.startswith("ERROR:"):
        return None, [Problem("probe-failed", f"dns probe: {text[6:].strip()}", severity="warning")]
    view = parse_probe(text)
    problems = [Problem("dns", p) for p in view.problems]
    running = tuple(u.server for u in view.upstreams if u.server not in view.resolv_servers)
    if set(running) != set(expectation.dns_servers):
        problems.append(Problem("mismatch", f"dnsmasq forwards to {', '.join(running) or 'nothing'}, the "
                                f"topology says {', '.join(expectation.dns_servers)} (deploy, or is dnsmasq "
                                "reloaded?)"))
    return view, problems


def status_or_unknown(expectation: Expectation, probes: Mapping[str, str],
                      uplink_probes: Mapping[str, Mapping[str, str]] | None = None, *,
                      now: float | None = None) -> SiteStatus:
    """``build_status``, except that a failed or unreadable mwan3 probe becomes an UNKNOWN status
    (one JSON object with the error in it) instead of an exception."""
    try:
        return build_status(expectation, probes, uplink_probes, now=now)
    except CommandError as exc:
        return SiteStatus.unknown(expectation.router, str(exc))
