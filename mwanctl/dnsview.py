"""What `status` shows about DNS: the upstreams the mother's dnsmasq runs with, the mwan3 rule
that carries each, and which of them answer (the ``dns`` probe of remote/query.sh).

The probe reads what is live, not what mwanctl wrote: the ``server=``/``no-resolv`` lines of the
config file dnsmasq's init script generated (/var/etc/dnsmasq.conf.<section>), the resolv file's
``nameserver`` lines when ``no-resolv`` is off, and mwan3's rule sections; then it asks every
upstream for PROBE_NAME with busybox ``nslookup`` from the mother itself, so the query takes the
same path through mwan3 as dnsmasq's. ``agreement`` is the check that dnsmasq's forwarders and
mwan3's rules agree (see the README's DNS section for why this reads mwan3's rules rather than
its iptables marks).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

PROBE_NAME = "openwrt.org"      # remote/query.sh asks each upstream for it (tests check the two agree)
PROBE_TIMEOUT_CS = 300          # the probe gives every upstream 3 s


@dataclass(frozen=True)
class Upstream:
    server: str
    answered: bool
    ms: Optional[int]          # time to the answer (the router's clock, 10 ms steps)
    rule: Optional[str]        # the mwan3 rule whose dest_ip is this server (None: no rule)
    policy: Optional[str]


@dataclass(frozen=True)
class DnsView:
    upstreams: tuple[Upstream, ...]
    noresolv: bool
    resolv_servers: tuple[str, ...]     # read from the resolv file when noresolv is off
    problems: tuple[str, ...]


def parse_probe(text: str) -> DnsView:
    """Parse the ``dns`` probe of query.sh (lines ``server <ip>``, ``noresolv``, ``resolv <ip>``,
    ``rule <section> <dest_ip> <policy>``, ``answer <ip> ok|fail <centiseconds>``)."""
    servers: list[str] = []
    resolv: list[str] = []
    noresolv = False
    rules_by_dest: dict[str, tuple[str, str]] = {}
    answers: dict[str, tuple[bool, Optional[int]]] = {}
    for line in text.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "server" and len(w) == 2:
            servers.append(w[1])
        elif w[0] == "noresolv":
            noresolv = True
        elif w[0] == "resolv" and len(w) == 2:
            resolv.append(w[1])
        elif w[0] == "rule" and len(w) == 4:
            rules_by_dest.setdefault(_host(w[2]), (w[1], w[3]))
        elif w[0] == "answer" and len(w) == 4:
            cs = int(w[3]) if w[3].isdigit() else None
            answers[w[1]] = (w[2] == "ok", cs * 10 if cs is not None else None)
    ups = []
    for s in dict.fromkeys(servers + resolv):
        ok, ms = answers.get(s, (False, None))
        rule, pol = rules_by_dest.get(_host(s), (None, None))
        ups.append(Upstream(s, ok, ms if ok else None, rule, pol))
    return DnsView(tuple(ups), noresolv, tuple(resolv), tuple(agreement(ups, noresolv, resolv)))


def _host(addr: str) -> str:
    """``1.1.1.1/32``, ``1.1.1.1#53`` -> ``1.1.1.1`` (mwan3 takes a network, dnsmasq a port)."""
    addr = addr.split("#", 1)[0].split("@", 1)[0]
    try:
        net = ipaddress.ip_network(addr, strict=False)
    except ValueError:
        return addr
    full = 32 if net.version == 4 else 128
    return str(net.network_address) if net.prefixlen == full else str(net)


def agreement(ups: list[Upstream], noresolv: bool, resolv: list[str]) -> list[str]:
    """Do dnsmasq's forwarders and mwan3's rules agree: every upstream dnsmasq forwards to has a
    rule sending it through a policy (not ``default``, which is the main table: one WAN)."""
    out = []
    if not noresolv:
        out.append("dnsmasq also forwards to the WANs' DNS servers (noresolv is off): those "
                   "may answer only through their own uplink")
    for u in ups:
        if u.rule is None:
            out.append(f"dnsmasq forwards to {u.server}, but no mwan3 rule sends it through a policy")
        elif u.policy in ("default", "unreachable", "blackhole"):
            out.append(f"mwan3 rule {u.rule} sends {u.server} to `{u.policy}`, not a balanced policy")
    if ups and not any(u.answered for u in ups):
        out.append("no upstream DNS server answers")
    return out
