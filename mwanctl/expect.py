"""PURE: what the topology says the mother should be running, in the shape `status` compares."""

from __future__ import annotations

from typing import Optional

from mwanctl.compile.mwan3 import policy_members
from mwanctl.keys import KeyPair
from mwanctl.status import Expectation, ExpectedMember, ExpectedUplink, TrackTimes
from mwanctl.topology.model import Topology, Tracking
from mwanctl.tracking import family_tracking, lost_probe_seconds


def track_times(tr: Tracking, family: str) -> Optional[TrackTimes]:
    """Round lengths of one interface's tracker (None without targets: nothing is tracked)."""
    t = family_tracking(tr, family)
    if not t.targets:
        return None
    lost, _ = lost_probe_seconds(t)   # the usual case: each lost probe waits its timeout once
    return TrackTimes(t.down, t.up, t.failure_interval, t.recovery_interval,
                      failed_round=len(t.targets) * lost, good_round=max(1, t.count) - 1)


def expectation(t: Topology, uplink_keys: dict[str, Optional[KeyPair]]) -> Expectation:
    """``uplink_keys``: each uplink router's current key pair (None when not generated yet).

    One row per mwan3 interface: each WAN, each tunnel and, for ``ipv6: true``, the tunnel's IPv6
    alias (same tunnel, so its WireGuard view is only shown once, on the IPv4 row).
    """
    rows: list[ExpectedUplink] = []
    for w in t.mother.wans:
        rows.append(ExpectedUplink(w.name, w.iface, "wan", w.tier, w.weight, family=w.family,
                                   track=track_times(w.tracking, w.family)))
    for u in t.uplinks:
        pair = uplink_keys.get(u.name)
        rows.append(ExpectedUplink(u.name, u.iface, "tunnel", u.tier, u.weight, wg_iface=u.iface,
                                   peer_public_key=pair.public if pair else None,
                                   endpoint=f"{u.endpoint}:{u.tunnel.port}", router=u.name,
                                   track=track_times(u.tracking, "ipv4")))
        if u.ipv6:
            rows.append(ExpectedUplink(u.name, u.iface6, "tunnel", u.tier, u.weight, router=u.name,
                                       family="ipv6", track=track_times(u.tracking, "ipv6")))
    families = {w.iface: w.family for w in t.mother.wans}
    families.update({u.iface6: "ipv6" for u in t.uplinks if u.ipv6})
    policies = {
        p.section: tuple(ExpectedMember(iface, metric, weight, families.get(iface, "ipv4"))
                         for iface, metric, weight in policy_members(t, p))
        for p in t.policies
    }
    return Expectation(t.mother.name, tuple(rows), policies,
                       dns_servers=t.dns.servers if t.dns is not None else None)
