"""PURE: compare what a router holds with what the topology wants, and say what to do about it.

Input: a compiled ``RouterConfig`` and the ``RouterState`` read from the router. Output: a
``RouterPlan`` with the change ops, the exact files expected afterwards, which services to
reload and which WireGuard interfaces to renew so that each change really takes effect
(netifd facts in ``option_action``: a peer-only or ``list addresses`` change is not applied by a
network reload, renew applies it without downtime; any mwan3 change restarts mwan3, so mwan3 is
only touched when its config really changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mwanctl.compile import RouterConfig, owns
from mwanctl.compile.dns import dnsmasq_ops
from mwanctl.router import SECRET_OPTIONS, ApplyPlan, Pending, RouterState
from mwanctl.topology.model import Wan
from mwanctl.uci.changes import Op
from mwanctl.uci.diff import apply_ops, diff
from mwanctl.uci.model import UciPackage, UciSection, Value
from mwanctl.uci.render import export

RELOAD_ORDER = ("network", "firewall", "mwan3", "dhcp", "mwanctl")
# Seconds of torn-down policy routing when the mwan3 package changes: its reload is a full stop +
# start with a fixed 2 s sleep between, about 7 s in all (the OpenWrt notes the project keeps,
# "pitfalls" §3); the plan says so in its notes.
MWAN3_RESTART_OUTAGE = 7
SERVICE = {"mwanctl": "mwanctl-track", "dhcp": "dnsmasq"}   # the init script that reads a package, where it differs


@dataclass
class PackagePlan:
    package: str
    before: UciPackage
    after: UciPackage
    ops: list[Op]
    existed: bool = True


@dataclass
class RouterPlan:
    router: str
    role: str
    packages: dict[str, PackagePlan]
    apply: Optional[ApplyPlan]
    pending: Optional[Pending] = None
    problems: list[str] = field(default_factory=list)   # block the apply of this router
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.apply is not None

    @property
    def op_count(self) -> int:
        return sum(len(p.ops) for p in self.packages.values())

    @property
    def effects(self) -> dict[str, "IfaceEffect"]:
        """Per changed WireGuard interface: none / reload / renew / restart (see option_action)."""
        net = self.packages.get("network")
        return wireguard_effects(net.before, net.after) if net is not None and net.ops else {}

    @property
    def restarts(self) -> list[str]:
        """Tunnels netifd will rebuild (no session until the other end handshakes again)."""
        return sorted(n for n, e in self.effects.items() if e.action == RESTART)


def plan_router(cfg: RouterConfig, state: RouterState, only: Optional[set[str]] = None,
                packages_: Optional[tuple[str, ...]] = None) -> RouterPlan:
    """Plan one router. ``only`` limits the change to those section names (key rotation changes
    one tunnel and nothing else, even if the router drifted elsewhere); ``packages_`` limits the
    packages looked at."""
    packages: dict[str, PackagePlan] = {}
    problems: list[str] = []
    for pkg in packages_ or cfg.packages:
        current = state.packages.get(pkg)
        if current is None and pkg == "mwan3":
            problems.append("mwan3 is not installed (no /etc/config/mwan3): install it with "
                            "`opkg install mwan3` (or `apk add mwan3`) first")
            continue
        before = current if current is not None else UciPackage(pkg)
        ops = diff(before, cfg.sections[pkg], pkg, cfg.owner(pkg), keep_order=(pkg == "mwan3"))
        ops += _owned_option_ops(pkg, before, cfg.owned_options.get(pkg, {}), cfg.name, problems)
        if pkg == "dhcp":
            dns_ops, dns_problems = dnsmasq_ops(before, cfg.dns, cfg.name)
            ops += dns_ops
            problems += dns_problems
        if only is not None:
            ops = [op for op in ops if op.section in only and op.kind != "reorder"]
        packages[pkg] = PackagePlan(pkg, before, apply_ops(before, pkg, ops), ops, current is not None)
    if state.pending is not None:
        problems.append(f"a previous deploy by {state.pending.owner} is waiting for confirmation "
                        f"(the router rolls it back in {max(0, state.pending.deadline)} s); "
                        "wait for it, or run `mwanctl confirm`/`mwanctl rollback`")
    notes = _notes(packages)
    if cfg.wan is not None:
        wan_problems, wan_notes = _wan_findings(cfg.name, cfg.wan, state, packages)
        problems += wan_problems
        notes += wan_notes
    changed = {p: pp for p, pp in packages.items() if pp.ops}
    apply = _apply_plan(changed, cfg.files) if changed else None
    return RouterPlan(cfg.name, cfg.role, packages, apply, state.pending, problems, notes)


def _wan_findings(router: str, owned: tuple[str, Wan], state: RouterState,
                  packages: dict[str, PackagePlan]) -> tuple[list[str], list[str]]:
    """The WAN section mwanctl owns on an uplink: say so, and refuse a protocol netifd lacks."""
    from mwanctl.compile.wan import plan_findings, zone_findings

    uplink, wan = owned
    net, fw = packages.get("network"), packages.get("firewall")
    touched = net is not None and any(op.section == wan.interface for op in net.ops)
    problems, notes = plan_findings(router, uplink, wan, state.extra.get("proto_handlers"), touched)
    if touched:
        notes += zone_findings(router, uplink, wan, fw.after if fw is not None else None)
    return problems, notes


def _owned_option_ops(pkg: str, before: UciPackage, owned: dict[str, dict[str, Value]],
                      router: str, problems: list[str]) -> list[Op]:
    """Options mwanctl sets inside a section it does not own (e.g. the metric of `wan`)."""
    ops = []
    for name, opts in owned.items():
        sec = before.get(name)
        if sec is None:
            problems.append(f"{pkg}.{name} does not exist on {router}, but the topology uses it as a WAN; "
                            "fix the name under `mother.wans`")
            continue
        for opt, val in opts.items():
            if sec.options.get(opt) != val:
                ops.append(Op("set_list" if isinstance(val, tuple) else "set", pkg, name, opt, val))
    return ops


def _apply_plan(changed: dict[str, PackagePlan], files: Optional[dict[str, str]] = None) -> ApplyPlan:
    plan = ApplyPlan(changes={p: pp.ops for p, pp in changed.items()},
                     expected={p: export(pp.after) for p, pp in changed.items()},
                     reload=[SERVICE.get(p, p) for p in RELOAD_ORDER if p in changed])
    if "mwanctl" in changed:
        _tracker_files(plan, changed["mwanctl"])
        _hook_files(plan, changed["mwanctl"], files or {})
    net = changed.get("network")
    if net is not None:
        plan.renew_ifaces, plan.check_peers = _wireguard_effects(net)
    return plan


def _tracker_files(plan: ApplyPlan, pp: PackagePlan) -> None:
    """Any change of /etc/config/mwanctl carries the tracker's files (their digest is in the
    config, so new files mean a change); without tracker sections they are removed instead."""
    from mwanctl.compile import tracker

    if pp.after.of_type("uplink"):
        plan.files = tracker.files()
        plan.links = {tracker.LINK: "../init.d/" + tracker.SERVICE}
    else:
        plan.remove = [tracker.LINK, tracker.INIT, tracker.SCRIPT]
        plan.reload = [s for s in plan.reload if s != tracker.SERVICE]


def _hook_files(plan: ApplyPlan, pp: PackagePlan, files: dict[str, str]) -> None:
    """The up/down hook script goes with its `mw_hooks` section (whose digest changes with the
    script): installed while the section is wanted, removed when it goes. A change of the hooks
    alone does not restart the tracker."""
    from mwanctl.compile import hooks

    if pp.after.get(hooks.SECTION) is not None:
        plan.files.update(files)
    elif pp.before.get(hooks.SECTION) is not None:
        plan.remove.append(hooks.HOOK_FILE)
    if all(op.section == hooks.SECTION for op in pp.ops):
        plan.reload = [s for s in plan.reload if s != SERVICE["mwanctl"]]


def _wg_ifaces(pkg: UciPackage) -> dict[str, UciSection]:
    return {s.name: s for s in pkg.sections if s.type == "interface" and s.name
            and s.options.get("proto") == "wireguard"}


# --- what netifd does with a change ----------------------------------------------------------------
# Facts (netifd e97e36f interface.c/config.c/proto-shell.c, OpenWrt's wireguard.sh; recorded on the
# real daemons, see tests/vectors/netifd/README.md):
# * `network reload` re-applies an existing interface only when one of netifd's own interface
#   attributes that restart it, or a parameter the proto handler *declares*, changed; it then tears
#   the interface down and sets it up again (a new WireGuard device: no session).
# * libuci leaves a `list` option out of the blob for a parameter declared as a string, and
#   wireguard.sh declares `addresses` as a string: a `list addresses` change is invisible to reload.
# * peer sections (`wireguard_<if>`) are not interface parameters: invisible to reload.
# * `ubus call network.interface.<if> renew` runs wireguard.sh's setup again (renew_handler=1):
#   `wg syncconf` with the whole config read from uci, addresses and routes re-sent, no new device,
#   no lost session: every option of the interface and its peers goes live without downtime.

NONE, RELOAD, RENEW, RESTART = "none", "reload", "renew", "restart"
_RANK = {NONE: 0, RELOAD: 1, RENEW: 2, RESTART: 3}
# interface_change_config: these make netifd restart the interface on reload
NETIFD_RESTART_ATTRS = {"device", "ifname", "proto", "auto", "zone", "jail", "jail_device",
                        "jail_ifname", "host_device", "disabled"}
# the other interface attributes netifd applies on reload in place (reload_ip, dns, ...)
NETIFD_INPLACE_ATTRS = {"defaultroute", "peerdns", "metric", "dns", "renew", "dns_search",
                        "dns_metric", "interface", "ip6assign", "ip6hint", "ip4table", "ip6table",
                        "ip6class", "delegate", "ip6ifaceid", "force_link", "ip6weight", "tags",
                        "carrier_loss_delay"}
# proto_wireguard_init_config: proto_config_add_{string,int}
WIREGUARD_DECLARED = {"private_key": "string", "listen_port": "int", "mtu": "int",
                      "fwmark": "string", "addresses": "string"}
PEER_INERT = {"description"}      # read by nothing: wireguard.sh never looks at it


@dataclass
class IfaceEffect:
    """What one WireGuard interface needs so that a change is live, and why."""

    iface: str
    action: str                                   # none | reload | renew | restart
    reasons: list[str] = field(default_factory=list)

    def bump(self, action: str, why: str) -> None:
        """One more changed option: the strongest action wins; every reason is kept."""
        if action == NONE:
            return
        self.reasons.append(f"{why}: {action}")
        if _RANK[action] > _RANK[self.action]:
            self.action = action


def _blob_value(kind: str, v: Optional[Value]) -> Optional[Value]:
    """What netifd's config blob holds for a declared parameter (libuci skips a list for a
    non-array type)."""
    return None if isinstance(v, tuple) else v


def option_action(section_type: str, option: str, old: Optional[Value], new: Optional[Value]) -> str:
    """PURE: the least that makes one changed option of a WireGuard interface (``section_type``
    'interface') or of one of its peers ('peer') live."""
    if old == new:
        return NONE
    if section_type == "peer":
        return NONE if option in PEER_INERT else RENEW
    if option in WIREGUARD_DECLARED:
        kind = WIREGUARD_DECLARED[option]
        if _blob_value(kind, old) != _blob_value(kind, new):
            return RESTART       # reload sees it and rebuilds the interface
        return RENEW             # e.g. `list addresses`: only the handler's setup reads it
    if option in NETIFD_RESTART_ATTRS:
        return RESTART
    if option in NETIFD_INPLACE_ATTRS:
        return RELOAD
    return RENEW                 # read by wireguard.sh from uci (nohostroute, ip6prefix, ...)


def wireguard_effects(before: UciPackage, after: UciPackage) -> dict[str, IfaceEffect]:
    """PURE: per WireGuard interface present before and after, the action its changes need.
    New interfaces are set up by reload, removed ones torn down by it (not listed)."""
    b_ifs, a_ifs = _wg_ifaces(before), _wg_ifaces(after)
    out: dict[str, IfaceEffect] = {}
    for name in a_ifs.keys() & b_ifs.keys():
        eff = IfaceEffect(name, NONE)
        bump = eff.bump
        bi, ai = b_ifs[name], a_ifs[name]
        for opt in dict.fromkeys(list(bi.options) + list(ai.options)):
            bump(option_action("interface", opt, bi.options.get(opt), ai.options.get(opt)), opt)
        peer_type = f"wireguard_{name}"
        b_peers = {s.ref: s for s in before.sections if s.type == peer_type}
        a_peers = {s.ref: s for s in after.sections if s.type == peer_type}
        for ref in dict.fromkeys(list(b_peers) + list(a_peers)):
            bp, ap = b_peers.get(ref), a_peers.get(ref)
            if bp is None or ap is None:
                bump(RENEW, f"peer {ref} {'added' if bp is None else 'removed'}")
                continue
            for opt in dict.fromkeys(list(bp.options) + list(ap.options)):
                bump(option_action("peer", opt, bp.options.get(opt), ap.options.get(opt)), f"{ref}.{opt}")
        if eff.action != NONE:
            out[name] = eff
    return out


def _wireguard_effects(net: PackagePlan) -> tuple[list[str], dict[str, list[str]]]:
    """Which WireGuard interfaces need a renew, and which peers `wg` must then show.

    Nothing is taken down and up by mwanctl: a change netifd does not see on reload goes live by
    renew (no downtime); one it sees makes netifd restart the interface by itself.
    """
    effects = wireguard_effects(net.before, net.after)
    renew = [n for n, e in effects.items() if e.action == RENEW]
    new = _wg_ifaces(net.after).keys() - _wg_ifaces(net.before).keys()
    check: dict[str, list[str]] = {}
    for name in list(effects) + sorted(new):
        peer_type = f"wireguard_{name}"
        check[name] = [key for s in net.after.sections
                       if s.type == peer_type and s.options.get("disabled") != "1"
                       and isinstance(key := s.options.get("public_key"), str)]
    return renew, check


def _notes(packages: dict[str, PackagePlan]) -> list[str]:
    notes = []
    mwan3 = packages.get("mwan3")
    if mwan3 is not None:
        foreign = [s for s in mwan3.before.sections if owns("mwan3", s) and not (s.name or "").startswith("mw_")
                   and mwan3.after.get(s.name or "") is None]
        if foreign:
            notes.append(f"removes {len(foreign)} mwan3 section(s) mwanctl did not write (e.g. the stock "
                         "examples `https`, `default_rule_v4` that would catch all traffic first): mwanctl "
                         "manages all of /etc/config/mwan3 except `globals`")
        if mwan3.ops:
            notes.append(f"mwan3 config changes: mwan3 restarts (about {MWAN3_RESTART_OUTAGE} s of policy "
                     "routing torn down)")
    tracker = packages.get("mwanctl")
    if tracker is not None and tracker.ops:
        notes.append("installs or updates mwanctl's handover tracker (/etc/init.d/mwanctl-track)"
                     if tracker.after.of_type("uplink") else
                     "removes mwanctl's handover tracker: mwan3track tracks every uplink again")
    return notes


# --- showing a plan -------------------------------------------------------------------------------

def _fmt(opt: str, v: Optional[Value]) -> str:
    if v is None:
        return "(unset)"
    if opt in SECRET_OPTIONS:
        return "<hidden>"
    if isinstance(v, tuple):
        return "[" + ", ".join(repr(x) for x in v) + "]"
    return repr(v)


def describe(plan: RouterPlan) -> list[str]:
    """A readable diff per package: + added, ~ changed, - removed sections; secrets masked."""
    lines: list[str] = []
    for pkg, pp in plan.packages.items():
        if not pp.ops:
            continue
        lines.append(f"  {pkg}" + ("" if pp.existed else " (new file)"))
        touched = {op.section for op in pp.ops}
        before = {s.ref: s for s in pp.before.sections}
        after = {s.ref: s for s in pp.after.sections}
        for ref in list(dict.fromkeys([s.ref for s in pp.after.sections] + [s.ref for s in pp.before.sections])):
            if ref not in touched:
                continue
            b, a = before.get(ref), after.get(ref)
            if b is None and a is not None:
                lines.append(f"    + {ref} ({a.type})")
                lines += [f"        {o} {_fmt(o, v)}" for o, v in a.options.items()]
            elif a is None and b is not None:
                lines.append(f"    - {ref} ({b.type})")
            elif a is not None and b is not None:
                changes = _option_changes(b, a)
                if changes:
                    lines.append(f"    ~ {ref} ({a.type})")
                    lines += changes
                else:
                    lines.append(f"    ~ {ref} ({a.type}): moved")
    return lines


def plan_text(router: str, plan: RouterPlan) -> list[str]:
    """What `mwanctl plan` prints for one router, line for line: its headline (what reloads,
    renews, restarts), the masked diff, the notes; one text so the CLI and the web show the same."""
    a = plan.apply    # None exactly when nothing changed (RouterPlan.changed)
    if a is None:
        return [f"{router}: up to date"]
    head = (f"{router} ({plan.role}): {plan.op_count} change(s), reloads {', '.join(a.reload)}"
            + (f", restarts {', '.join(a.restart_ifaces)}" if a.restart_ifaces else "")
            + (f", renews {', '.join(a.renew_ifaces)}" if a.renew_ifaces else "")
            + (f"; netifd rebuilds {', '.join(plan.restarts)} (one uplink at a time)" if plan.restarts else ""))
    return [head, *describe(plan), *(f"  note: {n}" for n in plan.notes)]


def _option_changes(b: UciSection, a: UciSection) -> list[str]:
    out = []
    for opt in dict.fromkeys(list(b.options) + list(a.options)):
        old, new = b.options.get(opt), a.options.get(opt)
        if old != new:
            out.append(f"        {opt}: {_fmt(opt, old)} -> {_fmt(opt, new)}")
    return out
