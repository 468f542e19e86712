"""PURE: topology + tunnel keys -> the UCI sections mwanctl owns on every router.

No I/O, no clock, no randomness: the same inputs give the same bytes (golden files and the
deploy plan depend on it). Each converter handles one output concern and they run in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional

from mwanctl.compile import dns as dns_compile
from mwanctl.compile import hooks as hooks_compile
from mwanctl.compile.context import Context
from mwanctl.compile.firewall import Firewall
from mwanctl.compile.mwan3 import Mwan3
from mwanctl.compile.templates import Templates
from mwanctl.compile.tracker import Tracker, uses_tracker
from mwanctl.compile.wan import WanSection
from mwanctl.compile.wireguard import Wireguard
from mwanctl.errors import Diagnostic, TopologyError
from mwanctl.keys import TunnelKeys
from mwanctl.topology import fields
from mwanctl.topology.model import PREFIX, Dns, Topology, Wan
from mwanctl.topology.rules import ACCESS
from mwanctl.uci.model import UciSection, Value

CONVERTERS = (WanSection, Wireguard, Mwan3, Firewall, Tracker, hooks_compile.HookSections)
PACKAGES = {"mother": ("network", "firewall", "mwan3"), "uplink": ("network", "firewall")}
# /etc/config/mwanctl (the handover tracker): on the mother when the topology uses the tracker, or
# when it is reached over SSH (the only transport that installs the tracker), so that removing the
# setting removes the sections (and with them the tracker) too.
TRACKER_PACKAGE = "mwanctl"
# /etc/config/dhcp: read and changed on the mother only with `dns:` (options in the user's
# dnsmasq section, see compile/dns.py); mwanctl owns no section there.
DHCP_PACKAGE = dns_compile.PACKAGE


def owns(package: str, section: UciSection) -> bool:
    """Which sections on a router belong to mwanctl (and may be changed or removed by it).

    network/firewall: sections named ``mw_*`` (plus any peer of an ``mw_*`` WireGuard interface).
    mwan3: every interface/member/policy/rule section — mwan3's meaning depends on the order and
    completeness of the whole file (interface ids by position, first-match rules, and the stock
    example rules that catch all traffic), so mwanctl manages all of it except ``globals``.
    """
    if package == "mwan3":
        return section.type in ("interface", "member", "policy", "rule")
    if section.type.startswith("wireguard_" + PREFIX):
        return True
    return section.name is not None and section.name.startswith(PREFIX)


@dataclass
class RouterConfig:
    """The desired mwanctl-owned state of one router."""

    name: str
    role: str                                    # "mother" | "uplink"
    host: str
    sections: dict[str, list[UciSection]]        # package -> owned sections, in order
    owned_options: dict[str, dict[str, dict[str, Value]]] = field(default_factory=dict)
    # an uplink whose topology entry has `wan:`: (uplink name, block); its network.<interface>
    # section is then in ``sections`` (owned as long as the block is there; never deleted)
    wan: Optional[tuple[str, Wan]] = None
    files: dict[str, str] = field(default_factory=dict)   # path -> text: the up/down hook script
    dns: Optional[Dns] = None                              # the mother's dnsmasq upstreams

    @property
    def packages(self) -> tuple[str, ...]:
        return PACKAGES[self.role] + tuple(p for p in (DHCP_PACKAGE, TRACKER_PACKAGE) if p in self.sections)

    def owner(self, package: str) -> Callable[[UciSection], bool]:
        return lambda s: owns(package, s)


@dataclass
class Compiled:
    site: str
    routers: dict[str, RouterConfig]             # deploy order: uplinks first, mother last


def compile_site(topology: Topology, keys: dict[str, TunnelKeys],
                 templates: Optional[Templates] = None,
                 secrets: Optional[Mapping[str, Mapping[str, str]]] = None) -> Compiled:
    """Compile a validated topology; ``keys`` must hold every uplink (see KeyStore.material),
    ``secrets`` every WAN secret (mwanctl.wansecrets.resolve; None leaves them out).

    The one rule that depends on the blueprints in use (distinct section names, MW010) is
    checked again here with the function validation uses, so a template override cannot slip a
    clash past it."""
    from mwanctl.compile.names import listing, section_clashes
    from mwanctl.topology.checks import hooks_transport, tracker_transport
    ctx = Context.for_keys(topology, keys, templates or Templates(), secrets)
    t = topology
    guard = tracker_transport(t)     # validate reports it with a location; a guard for other callers
    if guard:
        raise TopologyError(guard)
    no_ssh = hooks_transport(t)
    if no_ssh:
        raise TopologyError([Diagnostic(None, f"access.{r}.transport", f"{what} need the ssh transport",
                                        rule=ACCESS) for r, what in no_ssh])
    sections = build_sections(ctx)
    diags = section_clashes(listing(ctx, sections))
    if diags:
        raise TopologyError(diags)
    routers = {name: RouterConfig(name, "mother" if name == t.mother.name else "uplink",
                                  t.host_of(name), secs) for name, secs in sections.items()}
    for u in t.uplinks:
        if u.wan is not None:
            routers[u.name].wan = (u.name, u.wan)
    mother = routers[t.mother.name]
    mother.dns = t.dns
    for router, files in hooks_compile.router_files(t).items():
        routers[router].files = files
    for w in t.mother.wans:      # an own WAN's `metric`: the one option mwanctl owns in its section
        own: dict[str, Value] = {k: str(v) for k, v in fields.options(fields.OWN_WAN, w, "network", "interface").items()
                                 if v is not None}
        if own:
            mother.owned_options.setdefault("network", {})[w.name] = own
    return Compiled(t.site, routers)


def build_sections(ctx: Context) -> dict[str, dict[str, list[UciSection]]]:
    """router -> package -> sections, in deploy order (uplinks first, the mother last)."""
    t = ctx.topology
    routers: dict[str, dict[str, list[UciSection]]] = {u.name: {p: [] for p in PACKAGES["uplink"]} for u in t.uplinks}
    routers[t.mother.name] = {p: [] for p in PACKAGES["mother"]}
    if uses_tracker(t) or t.access_for(t.mother.name).transport == "ssh":
        routers[t.mother.name][TRACKER_PACKAGE] = []
    for u in t.uplinks:      # so that removing an uplink's hooks removes its hook file too
        if t.access_for(u.name).transport == "ssh":
            routers[u.name][TRACKER_PACKAGE] = []
    if t.dns is not None:
        routers[t.mother.name][DHCP_PACKAGE] = []
    for conv in CONVERTERS:
        for router, secs in conv.convert(ctx).items():
            if secs or conv.package in routers[router]:
                routers[router].setdefault(conv.package, []).extend(secs)
    return routers
