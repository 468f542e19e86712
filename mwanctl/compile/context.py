"""What every converter reads: the topology, each tunnel's slot and keys, the blueprints."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from mwanctl.compile.templates import Templates
from mwanctl.errors import Location
from mwanctl.keys import TunnelKeys
from mwanctl.topology.model import Dns, MotherWan, Policy, Rule, Topology, Uplink
from mwanctl.uci.model import UciSection


@dataclass(frozen=True)
class TunnelAddrs:
    uplink4: ipaddress.IPv4Interface
    mother4: ipaddress.IPv4Interface
    uplink6: ipaddress.IPv6Interface | None
    mother6: ipaddress.IPv6Interface | None


@dataclass(frozen=True)
class Origin:
    """Which part of the topology made a section: named in messages about generated names."""

    what: str                          # e.g. "uplink `lte`", "policy `lte`"
    field: str                         # the YAML path to name, e.g. "uplinks.lte.name"
    loc: Optional[Location]
    key: str = ""                      # (kind, user name): equal keys are MW002's duplicates


@dataclass(frozen=True)
class Context:
    topology: Topology
    slots: dict[str, int]               # uplink -> pool slot (stable, from the key store)
    keys: dict[str, TunnelKeys]         # empty when only addresses are needed (graph, validate)
    templates: Templates | None = None
    origins: Optional[dict[int, Origin]] = None   # id(section) -> origin, when recording
    # uplink -> UCI option -> value of its WAN secrets (mwanctl.wansecrets); None: not read (a
    # WAN section is then written without them: fine for names and for key rotation's plan,
    # which changes tunnel sections only)
    secrets: Optional[Mapping[str, Mapping[str, str]]] = None

    @classmethod
    def for_keys(cls, topology: Topology, keys: dict[str, TunnelKeys], templates: Templates,
                 secrets: Optional[Mapping[str, Mapping[str, str]]] = None) -> "Context":
        return cls(topology, {n: k.index for n, k in keys.items()}, keys, templates, {}, secrets)

    def render(self, name: str, _origin: Optional[Origin] = None, **values: object) -> list[UciSection]:
        if self.templates is None:
            raise TypeError("this Context has no blueprints: it is for addresses only (graph, validate)")
        secs = self.templates.render(name, **values)
        if self.origins is not None and _origin is not None:
            for s in secs:
                self.origins[id(s)] = _origin
        return secs

    def addrs(self, u: Uplink) -> TunnelAddrs:
        """Slot i of the pool: a /30 with the uplink on .1 and the mother on .2 (and a /64 for IPv6)."""
        i = self.slots[u.name]
        base = self.topology.pool.ipv4.network_address + 4 * i
        up4 = ipaddress.IPv4Interface(f"{base + 1}/30")
        mo4 = ipaddress.IPv4Interface(f"{base + 2}/30")
        up6 = mo6 = None
        if u.ipv6 and self.topology.pool.ipv6 is not None:
            net = self.topology.pool.ipv6
            sub = ipaddress.IPv6Network((int(net.network_address) + (i << 64), 64))
            up6 = ipaddress.IPv6Interface(f"{sub.network_address + 1}/64")
            mo6 = ipaddress.IPv6Interface(f"{sub.network_address + 2}/64")
        return TunnelAddrs(up4, mo4, up6, mo6)

    def metric(self, u: Uplink) -> int:
        """netifd route metric of the tunnel on the mother: unique per WAN-like interface."""
        if u.tunnel.metric is not None:
            return u.tunnel.metric
        return 10 * (self.slots[u.name] + 1)


def of_uplink(u: Uplink) -> Origin:
    return Origin(f"uplink `{u.name}`", f"uplinks.{u.name}.name", u.loc, f"router:{u.name}")


def of_wan(w: MotherWan) -> Origin:
    return Origin(f"mother WAN `{w.name}`", f"mother.wans.{w.name}.name", w.loc, f"router:{w.name}")


def of_policy(p: Policy) -> Origin:
    what = f"policy `{p.name}`" if p.loc is not None else f"the implicit policy `{p.name}`"
    return Origin(what, f"policies.{p.name}.name", p.loc, f"policy:{p.name}")


def of_rule(r: Rule) -> Origin:
    if r.loc is None:
        return Origin(f"mwanctl's catch-all rule `{r.name}`", "default_policy", None, f"mwanctl:{r.name}")
    return Origin(f"rule `{r.name}`", f"rules.{r.name}.name", r.loc, f"rule:{r.name}")


def of_dns(d: Optional[Dns]) -> Origin:
    return Origin("`dns` (a policy and a rule per server)", "dns.servers", d.loc if d else None, "dns")


MWANCTL = Origin("mwanctl itself", "(generated)", None, "mwanctl")
