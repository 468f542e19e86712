"""PURE: what the topology says the mother should be running, in the shape `status` compares."""

from __future__ import annotations

from typing import Optional

from mwanctl.compile.mwan3 import policy_members
from mwanctl.keys import KeyPair
from mwanctl.status import ExpectedMember, ExpectedUplink, Expectation
from mwanctl.topology.model import Topology


def expectation(t: Topology, uplink_keys: dict[str, Optional[KeyPair]]) -> Expectation:
    """``uplink_keys``: each uplink router's current key pair (None when not generated yet)."""
    rows: list[ExpectedUplink] = []
    for w in t.mother.wans:
        rows.append(ExpectedUplink(w.name, w.iface, "wan", w.tier, w.weight))
    for u in t.uplinks:
        pair = uplink_keys.get(u.name)
        rows.append(ExpectedUplink(u.name, u.iface, "tunnel", u.tier, u.weight, wg_iface=u.iface,
                                   peer_public_key=pair.public if pair else None,
                                   endpoint=f"{u.endpoint}:{u.tunnel.port}", router=u.name))
    families = {w.iface: w.family for w in t.mother.wans}
    families.update({u.iface6: "ipv6" for u in t.uplinks if u.ipv6})
    policies = {
        p.section: tuple(ExpectedMember(iface, metric, weight, families.get(iface, "ipv4"))
                         for iface, metric, weight in policy_members(t, p))
        for p in t.policies
    }
    return Expectation(t.mother.name, tuple(rows), policies)
