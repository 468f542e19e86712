"""DNS that survives an uplink: the mother's dnsmasq forwards to fixed upstream servers, every
query to all of them at once, and mwan3 sends each server's queries through its own uplink.

Why: by default dnsmasq forwards to the servers netifd learnt from the WANs
(/tmp/resolv.conf.d/resolv.conf.auto), often an ISP's resolver that answers only through that
ISP, and WireGuard tunnels bring no DNS servers at all. With ``dns:`` the first ``dnsmasq``
section of ``/etc/config/dhcp`` gets ``noresolv '1'`` (ignore the WANs' servers), ``localuse
'1'`` (the mother's own lookups, hooks included, go through dnsmasq too: with ``noresolv`` the
init script would otherwise stop pointing /tmp/resolv.conf at it), ``allservers '1'`` and
``list server`` = the topology's servers; domain-specific entries (``/lan.example/10.0.0.5``)
the user keeps are left in place.

Why not simply balance the queries: mwan3 hooks OUTPUT as well as PREROUTING, so a rule on a
server's address does steer dnsmasq's own queries, and each new query leaves from a new random
port (a new connection, balanced anew) - but dnsmasq retries a query to the same server from the
same socket, so a retry meets the conntrack mark of the first try: until mwan3 notices a dead
uplink (16-23 s with profile `balanced`), a query whose first forward went into it stays there
(tests/test_dns_netns.py lost 3 of 60 that way with two uplinks). So each server gets its own
failover policy built from the policy named by ``dns.policy``: the same members in the same
tiers, but within a tier server *i* prefers the tier's *i*-th uplink (round robin), and dnsmasq
asks every server at once (``allservers``): while any uplink of the first tier works, one of the
forwards takes it. When mwan3 takes an uplink offline, its servers fail over to the next one.

The rules come first, before the user's, so no user rule can catch the resolver's traffic; the
tunnel zone masquerades, so the source address the kernel picked before the mark re-routed a
query does not matter.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from mwanctl.topology.model import PREFIX, Dns, Policy, PolicyMember, Rule, Topology
from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage, UciSection, Value

PACKAGE = "dhcp"
SECTION_TYPE = "dnsmasq"
RULE_PREFIX = "dns"                         # rules mw_dns1, mw_dns2, …


def family(server: str) -> str:
    return "ipv6" if ipaddress.ip_address(server).version == 6 else "ipv4"


def rules(dns: Optional[Dns]) -> list[Rule]:
    """One mwan3 rule per upstream server (``mw_dns1`` …), in the servers' order, each to its
    own policy (``mw_dns1_p`` …)."""
    if dns is None:
        return []
    return [Rule(name=f"{RULE_PREFIX}{i}", policy=f"{RULE_PREFIX}{i}_p", dest_ip=s, family=family(s))
            for i, s in enumerate(dns.servers, start=1)]


def policies(t: Topology, dns: Optional[Dns]) -> list[Policy]:
    """Server *i*'s failover policy: ``dns.policy``'s members, tier by tier, the tier's members
    rotated by *i* so that each server prefers another uplink; mwan3's member metric is the
    position in that order (weights no longer matter: one member at a time carries a server)."""
    if dns is None:
        return []
    base = t.policy(dns.policy)
    resolved = [(m.target, m.tier or _own(t, m.target)[0], m.weight or _own(t, m.target)[1]) for m in base.members]
    tiers = sorted({tier for _, tier, _ in resolved})
    out = []
    for i in range(len(dns.servers)):
        order: list[tuple[str, int]] = []
        for tier in tiers:
            group = [(target, w) for target, tr, w in resolved if tr == tier]
            k = i % len(group)
            order += group[k:] + group[:k]
        members = tuple(PolicyMember(target, pos, w) for pos, (target, w) in enumerate(order, start=1))
        out.append(Policy(f"{RULE_PREFIX}{i + 1}_p", members, base.last_resort))
    return out


def _own(t: Topology, target: str) -> tuple[int, int]:
    """An uplink's or own WAN's own tier and weight (what a member without them gets)."""
    for w in t.mother.wans:
        if w.name == target:
            return w.tier, w.weight
    u = t.uplink(target)
    return u.tier, u.weight


def dnsmasq_options(current: UciSection, dns: Dns) -> dict[str, Value]:
    """The options mwanctl sets in the user's dnsmasq section (the rest stays as it is)."""
    old = current.options.get("server", ())
    kept = tuple(v for v in (old if isinstance(old, tuple) else (old,)) if v.startswith("/"))
    return {"noresolv": "1", "localuse": "1", "allservers": "1", "server": kept + dns.servers}


def dnsmasq_ops(before: UciPackage, dns: Optional[Dns], router: str) -> tuple[list[Op], list[str]]:
    """Ops on ``dhcp``'s first dnsmasq section (anonymous on a stock install: addressed by its
    cfg id), and the problems that block the apply."""
    if dns is None:
        return [], []
    secs = before.of_type(SECTION_TYPE)
    if not secs:
        return [], [(f"`dns:` needs dnsmasq on {router}, but /etc/config/dhcp has no dnsmasq section "
                     "(install dnsmasq, or leave `dns:` out)")]
    sec = secs[0]
    ops = []
    for opt, val in dnsmasq_options(sec, dns).items():
        if sec.options.get(opt) != val:
            ops.append(Op("set_list" if isinstance(val, tuple) else "set", PACKAGE, sec.ref, opt, val))
    return ops, []


def rule_section_names(dns: Optional[Dns]) -> list[str]:
    return [PREFIX + r.name for r in rules(dns)]
