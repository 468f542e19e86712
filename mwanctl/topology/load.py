"""YAML topology -> validated ``Topology``, or every problem at once as Diagnostics.

What each key may hold, its default and where it goes is declared on its model attribute
(topology/model.py; topology/fields.py makes the blocks of them); this module walks the file's
shape (lists of named items, inheritance of `tracking`, `tunnels` and `access.defaults`), builds
the model objects, and checks what one field cannot see alone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any, Iterator, Optional

from mwanctl.errors import Diagnostic, TopologyError
from mwanctl.topology import checks
from mwanctl.topology.fields import (
    ACCESS,
    DNS,
    HOOKS,
    LAN,
    MEMBER,
    MOTHER,
    NAME_HINT,
    NAME_RE,
    OWN_WAN,
    POLICY,
    RULE,
    TOP,
    TRACKING,
    TUNNEL,
    TUNNELS,
    UPLINK,
    UPLINK_HOOKS,
    WAN,
    read_block,
    read_field,
)
from mwanctl.topology.grammar import pool4_problem, pool6_problem, short
from mwanctl.topology.model import (
    Access,
    Dns,
    Hooks,
    Mother,
    MotherWan,
    Policy,
    PolicyMember,
    Pool,
    Rule,
    SecretRef,
    Topology,
    Tracking,
    TunnelSettings,
    Uplink,
    UplinkHooks,
    Wan,
)
from mwanctl.topology.reader import Reader
from mwanctl.topology.rules import (
    BAD_VALUE,
    DUPLICATES,
    MISSING,
    POOL_RANGE,
    WRONG_TYPE,
)
from mwanctl.topology.rules import (
    TRACKING as TRACKER_RULE,
)
from mwanctl.topology.rules import (
    WAN_FIELDS as WAN_RULE,
)
from mwanctl.topology.source import Source, YamlMap, read_file, read_source
from mwanctl.tracking import DEFAULT_PROFILE, PROFILES, TRACKER_PROFILE


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raise TopologyError with all diagnostics on failure."""
    src, diags = read_file(path)
    return _finish(src, diags)


def parse_topology(text: str, file: str = "<topology>") -> Topology:
    src, diags = read_source(text, file)
    return _finish(src, diags)


def diagnose(path: str | Path) -> tuple[Optional[Topology], list[Diagnostic]]:
    """Like load_topology but returns (topology or None, diagnostics incl. warnings)."""
    return _diagnose(*read_file(path))


def diagnose_text(text: str, file: str = "<topology>") -> tuple[Optional[Topology], list[Diagnostic]]:
    return _diagnose(*read_source(text, file))


def _diagnose(src: Optional[Source], diags: list[Diagnostic]) -> tuple[Optional[Topology], list[Diagnostic]]:
    if src is None:
        return None, diags
    r = Reader(src)
    topo = _build(r)
    if topo is not None and not r.failed:
        checks.run(topo, r)
    diags = r.diags
    return (None if _has_errors(diags) else topo), diags


def _finish(src: Optional[Source], diags: list[Diagnostic]) -> Topology:
    if src is None:
        raise TopologyError(diags)
    r = Reader(src)
    topo = _build(r)
    if topo is not None and not r.failed:
        checks.run(topo, r)   # cross-object checks trust types and shapes: only on clean input
    if topo is None or _has_errors(r.diags):
        raise TopologyError(r.diags)
    return topo


def _has_errors(diags: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diags)


# -- building -----------------------------------------------------------------------------------

def _build(r: Reader) -> Optional[Topology]:
    top = r.src.data
    r.known_keys(top, "", TOP.keys)
    site = read_field(r, top, "", TOP.field("site"))
    tunnels = r.mapping(top, "tunnels", "tunnels") or YamlMap()
    r.known_keys(tunnels, "tunnels", TUNNELS.keys)
    base_tracking = _tracking(r, r.mapping(top, "tracking", "tracking"), "tracking", None)
    pool = _pool(r, tunnels)
    defaults = read_block(r, tunnels, "tunnels", TUNNELS, skip=("pool", "pool6"), check_keys=False)
    mother = _mother(r, r.mapping(top, "mother", "mother", required=True), base_tracking)
    uplinks = _uplinks(r, r.seq(top, "uplinks", "uplinks", required=True), base_tracking, defaults)
    policies = _policies(r, r.seq(top, "policies", "policies"))
    rules = _rules(r, r.seq(top, "rules", "rules"))
    default_policy = read_field(r, top, "", TOP.field("default_policy"))
    access = _access(r, r.mapping(top, "access", "access"))
    hooks = Hooks(**read_block(r, r.mapping(top, "hooks", "hooks"), "hooks", HOOKS))
    dns = _dns(r, top, default_policy or "balanced")
    if mother is None or uplinks is None or pool is None:
        return None
    site = site or ""
    if default_policy == "balanced" and not any(p.name == "balanced" for p in policies):
        policies = (_balanced(mother, uplinks),) + policies
    return Topology(site=site, mother=mother, uplinks=uplinks, pool=pool, policies=policies,
                    rules=rules, default_policy=default_policy, access=access, file=r.src.file,
                    hooks=hooks, dns=dns)


def _dns(r: Reader, top: YamlMap, default_policy: str) -> Optional[Dns]:
    """``dns:`` (absent: mwanctl leaves dnsmasq alone); every server an IP address, once."""
    if "dns" not in top:
        return None
    node = r.mapping(top, "dns", "dns") or YamlMap()
    values = read_block(r, node, "dns", DNS, defaults={"policy": default_policy})
    servers: list[str] = []
    for s in values["servers"]:
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            r.error(r.src.value(node, "servers"), "dns.servers", f"{short(s)} is not an IP address", BAD_VALUE)
            continue
        if addr.is_unspecified or addr.is_multicast:
            r.error(r.src.value(node, "servers"), "dns.servers", f"{s} cannot be a DNS server", BAD_VALUE)
        elif str(addr) in servers:
            r.error(r.src.value(node, "servers"), "dns.servers", f"{s} is listed twice", DUPLICATES)
        else:
            servers.append(str(addr))
    if "servers" in node and not values["servers"]:
        r.error(r.src.value(node, "servers"), "dns.servers", "the list is empty; leave `servers` out for "
                "the defaults, or `dns` out to leave dnsmasq alone", MISSING)
    return Dns(tuple(servers), values["policy"], r.src.key(top, "dns"))


def _balanced(mother: Mother, uplinks: tuple[Uplink, ...]) -> Policy:
    """The implicit default policy: every WAN and uplink by its tier and weight."""
    members = [PolicyMember(w.name, w.tier, w.weight) for w in mother.wans]
    members += [PolicyMember(u.name, u.tier, u.weight) for u in uplinks]
    return Policy("balanced", tuple(members), "unreachable")


def _pool(r: Reader, tunnels: YamlMap) -> Optional[Pool]:
    v4 = read_field(r, tunnels, "tunnels", TUNNELS.field("pool"))
    v6 = read_field(r, tunnels, "tunnels", TUNNELS.field("pool6"))
    if v4 is None:
        return None
    for key, net, problem in (("pool", v4, pool4_problem), ("pool6", v6, pool6_problem)):
        why = problem(net) if net is not None else None
        if why:
            r.error(r.src.value(tunnels, key), f"tunnels.{key}", f"{net} {why}", POOL_RANGE)
    return Pool(v4, v6)


def _mother(r: Reader, node: Optional[YamlMap], base: Tracking) -> Optional[Mother]:
    if node is None:
        return None
    values = read_block(r, node, "mother", MOTHER, first=("name",))
    lan = r.mapping(node, "lan", "mother.lan") or YamlMap()
    values.update(read_block(r, lan, "mother.lan", LAN))
    wans: list[MotherWan] = []
    seq: Any = r.seq(node, "wans", "mother.wans") or []
    for i, w in enumerate(seq):
        path = f"mother.wans[{i}]"
        if isinstance(w, str):
            w = YamlMap(name=w)
        if not isinstance(w, YamlMap):
            r.error(r.src.item(seq, i), path, "expected a mapping with at least `name:`", WRONG_TYPE)
            continue
        r.known_keys(w, path, OWN_WAN.keys)
        wname = read_field(r, w, path, OWN_WAN.field("name"))
        if wname is None:
            continue
        path = f"mother.wans.{wname}"
        wan = read_block(r, w, path, OWN_WAN, first=("family",), skip=("name",), check_keys=False)
        wan["tracking"] = _tracking(r, r.mapping(w, "tracking", path + ".tracking"), path + ".tracking", base)
        wans.append(MotherWan(name=wname, loc=r.src.item(seq, i), **wan))
    # keep going with placeholders so the cross-object checks still report everything else
    return Mother(name=values["name"] or "mother", host=values["host"] or "", lan_network=values["lan_network"],
                  lan_zone=values["lan_zone"], lan_subnet=values["lan_subnet"], wans=tuple(wans))


def _uplinks(r: Reader, seq: Any, base: Tracking, defaults: dict[str, Any]) -> Optional[tuple[Uplink, ...]]:
    if seq is None:
        return None
    if len(seq) == 0:
        r.error(r.src.of(r.src.data), "uplinks", "the list is empty; add at least one uplink", MISSING)
        return None
    out: list[Uplink] = []
    for i, u in enumerate(seq):
        path = f"uplinks[{i}]"
        if not isinstance(u, YamlMap):
            r.error(r.src.item(seq, i), path, "expected a mapping with `name:` and `host:`", WRONG_TYPE)
            continue
        name = read_field(r, u, path, UPLINK.field("name"))
        if name is not None:
            path = f"uplinks.{name}"
        uplink = _uplink(r, u, path, name, base, defaults, r.src.item(seq, i))
        if name is not None:
            out.append(uplink)   # even with a bad host: the other checks still run on it
    return tuple(out)


def _uplink(r: Reader, u: YamlMap, path: str, name: Optional[str], base: Tracking,
            defaults: dict[str, Any], loc: Any) -> Uplink:
    """One uplink's keys in the order they have always been read (messages keep their order);
    its `tunnel`, `wan` and `tracking` mappings at their place in it."""
    tun = YamlMap()

    def tunnel(values: dict[str, Any]) -> TunnelSettings:
        nonlocal tun
        tun = r.mapping(u, "tunnel", path + ".tunnel") or YamlMap()
        return TunnelSettings(**read_block(r, tun, path + ".tunnel", TUNNEL, defaults=defaults))

    def wan(values: dict[str, Any]) -> Optional[Wan]:
        return _uplink_wan(r, u, tun, path, name or "", values)     # after `tunnel`: it may lower its mtu

    def tracking(values: dict[str, Any]) -> Tracking:
        return _tracking(r, r.mapping(u, "tracking", path + ".tracking"), path + ".tracking", base)

    def endpoint(values: dict[str, Any]) -> Any:
        return values["host"]

    def hooks(values: dict[str, Any]) -> UplinkHooks:      # after `wan`: its interface is the default
        w = values.get("wan")
        return UplinkHooks(**read_block(r, r.mapping(u, "hooks", path + ".hooks"), path + ".hooks", UPLINK_HOOKS,
                                        defaults={"wan_interface": w.interface if w is not None else "wan"}))

    values = read_block(
        r, u, path, UPLINK, skip=("name",),
        first=("host", "endpoint", "tunnel", "wan", "description", "weight", "tier", "ipv6", "tracking"),
        defaults={"endpoint": endpoint, "description": f"uplink {name}"},
        nested={"tunnel": tunnel, "wan": wan, "tracking": tracking, "hooks": hooks})
    return Uplink(name=name or "", loc=loc, **{
        **values, "host": values["host"] or "", "endpoint": values["endpoint"] or "",
        "description": values["description"] or ""})


def _uplink_wan(r: Reader, u: YamlMap, tun: YamlMap, path: str, uplink: str,
                values: dict[str, Any]) -> Optional[Wan]:
    """`uplinks[].wan` (after `tunnel`: without an explicit `tunnel.mtu` it is derived from the WAN's)."""
    node = r.mapping(u, "wan", path + ".wan")
    wan = _wan(r, node, path + ".wan", uplink) if node is not None else None
    if wan is not None:
        values["tunnel"] = _wan_tunnel_mtu(r, uplink, wan, tun, values["tunnel"], path + ".tunnel")
    return wan


def _wan(r: Reader, node: YamlMap, path: str, uplink: str) -> Optional[Wan]:
    """`uplinks[].wan`: the field table's keys, then the rules across them (MW020, compile/wan.py)."""
    from mwanctl.compile.wan import check_wan

    before = len(r.diags)
    values = read_block(r, node, path, WAN)
    locs = {str(k): r.src.value(node, k) for k in node}
    for secret in ("password", "pin"):
        env, file = values[f"{secret}_env"], values[f"{secret}_file"]
        if env is not None and file is not None:
            r.error(locs[f"{secret}_file"], f"{path}.{secret}_file",
                    f"give the {secret} once: `{secret}_env` or `{secret}_file`, not both", WAN_RULE)
        if env is not None or file is not None:
            key = f"{secret}_env" if env is not None else f"{secret}_file"
            values[secret] = SecretRef(env=env, file=None if env is not None else file,
                                       path=f"{path}.{key}", loc=locs[key])
    address, netmask = values["address"], values["netmask"]
    if address is not None and netmask is not None:
        if "/" in str(node.get("address", "")):
            r.error(locs["netmask"], f"{path}.netmask", "`address` already has a prefix; give one of the two",
                    WAN_RULE)
        else:
            values["address"] = ipaddress.IPv4Interface(f"{address.ip}/{netmask}")
    elif address is not None and "/" not in str(node.get("address", "")):
        values["address"] = ipaddress.IPv4Interface(f"{address.ip}/32")   # netifd's default netmask
    if any(d.severity == "error" for d in r.diags[before:]) or values["proto"] is None or values["device"] is None:
        return None
    wan = Wan(**values, loc=r.src.of(node))
    for d in check_wan(uplink, wan, locs):
        r.diags.append(d)
    return wan


def _wan_tunnel_mtu(r: Reader, uplink: str, wan: Wan, tun: YamlMap, tunnel: TunnelSettings,
                    path: str) -> TunnelSettings:
    """The tunnel MTU with a WAN block: an explicit `tunnel.mtu` must fit through the WAN (MW021);
    without one it is derived: `tunnels.mtu`, lowered to what the WAN leaves room for."""
    from mwanctl.compile.wan import check_tunnel_mtu, derived_tunnel_mtu

    explicit = tunnel.mtu if "mtu" in tun else None
    loc = r.src.value(tun, "mtu") if explicit is not None else None
    for d in check_tunnel_mtu(uplink, wan, explicit, f"{path}.mtu", loc):
        r.diags.append(d)
    if explicit is not None:
        return tunnel
    return dataclasses.replace(tunnel, mtu=derived_tunnel_mtu(wan, tunnel.mtu))


def _tracking(r: Reader, node: Optional[YamlMap], path: str, base: Optional[Tracking]) -> Tracking:
    """Tracking settings: a profile's numbers, overridden by explicit ones, inheriting ``base``."""
    node = node if node is not None else YamlMap()
    r.known_keys(node, path, TRACKING.keys)
    inherit = base.profile if base else DEFAULT_PROFILE
    profile = read_field(r, node, path, TRACKING.field("profile"), inherit)
    nums = dict(PROFILES[profile])
    if base is not None and "profile" not in node:
        nums = {k: getattr(base, k) for k in nums}
    values = read_block(r, node, path, TRACKING, base, defaults=nums, first=tuple(nums),
                        skip=("profile",), check_keys=False)
    _tracker(r, node, path, profile, base, values)
    return Tracking(profile=profile, tracker=profile == TRACKER_PROFILE, **values)


def _tracker(r: Reader, node: YamlMap, path: str, profile: str, base: Optional[Tracking],
             values: dict[str, Any]) -> None:
    """The handover tracker's settings (profile `instant`, see mwanctl/tracking.py): what the
    per-field ranges cannot see."""
    own = base is None or "window_ms" in node or "probe_interval_ms" in node or "profile" in node
    if not own or profile != TRACKER_PROFILE:
        return
    window, probe = values["window_ms"], values["probe_interval_ms"]
    if window < 2 * probe:
        r.error(r.src.value(node, "window_ms" if "window_ms" in node else
                            "probe_interval_ms" if "probe_interval_ms" in node else "profile"),
                path + ".window_ms", f"{window} ms is less than two probe intervals "
                f"({probe} ms each): one lost probe would fail the uplink over",
                TRACKER_RULE)
    if not any(_is_v4(t) for t in values["targets"]):
        r.error(r.src.value(node, "targets") if "targets" in node else r.src.value(node, "profile"),
                path + ".targets", "profile `instant` probes IPv4 `targets`; add at least one", TRACKER_RULE)


def _is_v4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _named_items(r: Reader, seq: Any, section: str, keys: tuple[str, ...], shape: str,
                 name_field: Any) -> Iterator[tuple[int, YamlMap, Optional[str], str]]:
    """(index, node, name, path) of each mapping in a list of named items; paths use the name
    (``rules.https``) once it is known, so messages point at what the user called it."""
    for i, node in enumerate(seq or []):
        path = f"{section}[{i}]"
        if not isinstance(node, YamlMap):
            r.error(r.src.item(seq, i), path, f"expected a mapping with {shape}", WRONG_TYPE)
            continue
        name = read_field(r, node, path, name_field)
        if name is not None:
            path = f"{section}.{name}"
        r.known_keys(node, path, keys)
        yield i, node, name, path


def _policies(r: Reader, seq: Any) -> tuple[Policy, ...]:
    out: list[Policy] = []
    for i, p, name, path in _named_items(r, seq, "policies", POLICY.keys, "`name:` and `members:`",
                                         POLICY.field("name")):
        members: list[PolicyMember] = []
        mseq: Any = r.seq(p, "members", path, required=True) or []
        for j, m in enumerate(mseq):
            mpath = f"{path}.members[{j}]"
            if isinstance(m, (str, int)) and not isinstance(m, bool):
                target = r._text(m, (mseq, j), mpath, NAME_RE, NAME_HINT, 63)   # `- dsl`: MEMBER's `uplink`
                if target is not None:
                    members.append(PolicyMember(target, 0, 0))   # 0 = the uplink's own tier/weight
                continue
            if not isinstance(m, YamlMap):
                r.error(r.src.item(mseq, j), mpath, "expected an uplink name or a mapping with `uplink:`",
                        WRONG_TYPE)
                continue
            r.known_keys(m, mpath, MEMBER.keys)
            key = "uplink" if "uplink" in m else "wan"
            if m.get(key) is None:
                r.error(r.src.item(mseq, j), mpath, "missing `uplink:` (or `wan:`) naming a member", MISSING)
                continue
            target = read_field(r, m, mpath, MEMBER.field(key), None)
            if target is None:
                continue
            members.append(PolicyMember(
                target,
                read_field(r, m, mpath, MEMBER.field("tier"), 0),     # 0 = the uplink's own
                read_field(r, m, mpath, MEMBER.field("weight"), 0)))
        last = read_field(r, p, path, POLICY.field("last_resort"))
        if name is not None:
            out.append(Policy(name, tuple(members), last, r.src.item(seq, i)))
    return tuple(out)


# rules are declared in mwan3's option order; read in this order so messages keep theirs
RULE_READ_ORDER = ("policy", "proto", "src_ip", "dest_ip", "src_port", "dest_port", "sticky", "timeout",
                   "family", "ipset", "src_iface", "logging")


def _rules(r: Reader, seq: Any) -> tuple[Rule, ...]:
    out: list[Rule] = []
    for i, n, name, path in _named_items(r, seq, "rules", RULE.keys, "`name:` and `policy:`", RULE.field("name")):
        values = read_block(r, n, path, RULE, skip=("name",), first=RULE_READ_ORDER, check_keys=False)
        rule = Rule(name=name or "", loc=r.src.item(seq, i), **{**values, "policy": values["policy"] or ""})
        if name is not None:
            out.append(rule)
    return tuple(out)


def _access(r: Reader, node: Optional[YamlMap]) -> dict[str, Access]:
    out: dict[str, Access] = {}
    if node is None:
        return out
    base = Access()
    order = sorted(node.keys(), key=lambda k: k != "defaults")   # defaults first, then inherit
    for key in order:
        a = node[key]
        path = f"access.{key}"
        if not isinstance(a, YamlMap):
            r.error(r.src.value(node, key), path, "expected a mapping (transport, user, port, key, ...)",
                    WRONG_TYPE)
            continue
        d = out.get("defaults", base)
        values = read_block(r, a, path, ACCESS, base=d, defaults={"connect_timeout": int(d.connect_timeout)})
        out[str(key)] = Access(**{**values, "connect_timeout": float(values["connect_timeout"])})
    return out
