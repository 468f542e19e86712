"""mwan3 interfaces, members, policies and rules on the mother.

Order is meaning in mwan3: an interface's position is its routing table and fwmark, and rules
match first-to-last. Interfaces: the mother's own WANs, then tunnels in topology order (IPv6
aliases right after their tunnel). Policies: the user's (and `balanced`), then one per `dns`
server (compile/dns.py). Rules: `dns`'s, the user's, then the catch-all default.
"""

from __future__ import annotations

from typing import Iterator

from mwanctl.compile import dns
from mwanctl.compile.context import Context, Origin, of_dns, of_policy, of_rule, of_uplink, of_wan
from mwanctl.topology import fields
from mwanctl.topology.model import PREFIX, Policy, PolicyMember, Rule, Topology, Tracking
from mwanctl.tracking import family_tracking
from mwanctl.uci.model import UciSection


def _interfaces(t: Topology) -> Iterator[tuple[str, str, Tracking, Origin]]:
    """(mwan3 interface, family, tracking, origin) in mwan3 id order; each tracks its family's
    targets (`targets` IPv4, `targets6` IPv6)."""
    for w in t.mother.wans:
        yield w.iface, w.family, family_tracking(w.tracking, w.family), of_wan(w)
    for u in t.uplinks:
        yield u.iface, "ipv4", family_tracking(u.tracking, "ipv4"), of_uplink(u)
        if u.ipv6:
            yield u.iface6, "ipv6", family_tracking(u.tracking, "ipv6"), of_uplink(u)


def member_name(iface: str, tier: int, weight: int) -> str:
    base = iface[len(PREFIX):] if iface.startswith(PREFIX) else iface
    return f"{PREFIX}{base}_m{tier}_w{weight}"


def policy_members(t: Topology, p: Policy) -> list[tuple[str, int, int]]:
    """(mwan3 interface, metric, weight) of a policy, IPv6 aliases included."""
    out = []
    for m in p.members:
        iface_list, tier, weight = _resolve(t, m)
        out += [(iface, tier, weight) for iface in iface_list]
    return out


def _resolve(t: Topology, m: PolicyMember) -> tuple[list[str], int, int]:
    for w in t.mother.wans:
        if w.name == m.target:
            return [w.iface], m.tier or w.tier, m.weight or w.weight
    u = t.uplink(m.target)
    ifaces = [u.iface] + ([u.iface6] if u.ipv6 else [])
    return ifaces, m.tier or u.tier, m.weight or u.weight


class Mwan3:
    package = "mwan3"

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        t = ctx.topology
        render = ctx.render
        secs: list[UciSection] = []
        owner: dict[str, Origin] = {}
        for iface, family, tr, origin in _interfaces(t):
            owner.setdefault(iface, origin)
            secs += render("mwan3-interface", origin, **_tracking_values(iface, family, tr))
        dns_policies = dns.policies(t, t.dns)
        policies = [(p, of_policy(p)) for p in t.policies] + [(p, of_dns(t.dns)) for p in dns_policies]
        members: dict[str, tuple[str, int, int]] = {}
        for p, _ in policies:
            for iface, metric, weight in policy_members(t, p):
                members.setdefault(member_name(iface, metric, weight), (iface, metric, weight))
        for name, (iface, metric, weight) in members.items():
            secs += render("mwan3-member", owner.get(iface), member=name, iface=iface, metric=metric,
                           weight=weight)
        for p, origin in policies:
            names = list(dict.fromkeys(member_name(*m) for m in policy_members(t, p)))
            secs += render("mwan3-policy", origin, policy=p.section, use_member=names,
                           **fields.placeholders(fields.POLICY, p, "mother", "mwan3"))
        for rule in dns.rules(t.dns):
            secs += render("mwan3-rule", of_dns(t.dns), **_rule_values(rule))
        for rule in t.rules:
            secs += render("mwan3-rule", of_rule(rule), **_rule_values(rule))
        default4 = Rule(name="default_v4", policy=t.default_policy, dest_ip="0.0.0.0/0", family="ipv4")
        secs += render("mwan3-rule", of_rule(default4), **_rule_values(default4))
        if any(u.ipv6 for u in t.uplinks) or any(w.family == "ipv6" for w in t.mother.wans):
            default6 = Rule(name="default_v6", policy=t.default_policy, dest_ip="::/0", family="ipv6")
            secs += render("mwan3-rule", of_rule(default6), **_rule_values(default6))
        return {t.mother.name: secs}


def _tracking_values(iface: str, family: str, tr: Tracking) -> dict[str, object]:
    return dict(iface=iface, family=family, **fields.placeholders(fields.TRACKING, tr, "mother", "mwan3"))


def _rule_values(r: Rule) -> dict[str, object]:
    return dict(rule=PREFIX + r.name, **fields.placeholders(fields.RULE, r, "mother", "mwan3"))
