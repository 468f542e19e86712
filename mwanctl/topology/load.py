"""YAML topology -> validated ``Topology``, or every problem at once as Diagnostics."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any, Iterator, Optional

from mwanctl.errors import Diagnostic, TopologyError
from mwanctl.topology import checks
from mwanctl.topology.model import (
    Access, Mother, MotherWan, Policy, PolicyMember, Pool, Rule, SecretRef, Topology, Tracking,
    TunnelSettings, Uplink, Wan,
)
from mwanctl.topology.fields import TRACKING, TUNNEL, TUNNELS, WAN, read_block, read_field
from mwanctl.topology.grammar import network_text, pool4_problem, pool6_problem, port_list, short
from mwanctl.topology.reader import MISSING, NOT_ALLOWED, WRONG_TYPE, Reader
from mwanctl.topology.source import YamlMap, Source, read_file, read_source
from mwanctl.tracking import DEFAULT_PROFILE, PROFILES, TRACKER_PROFILE

SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
NAME_RE = re.compile(r"[A-Za-z0-9_]{1,63}")
ZONE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,10}")
NAME_HINT = "use up to 63 letters, digits and `_` (UCI section names allow nothing else)"
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
POOL_RULE = "MW012"    # a tunnel pool in a range that cannot carry tunnels
PORT_RULE = "MW013"    # a port list iptables' multiport match would refuse or misread
PATH_MAX = 4096
BUILTIN_POLICIES = ("default", "unreachable", "blackhole")

TOP_KEYS = ("site", "mother", "uplinks", "tunnels", "tracking", "policies", "rules",
            "default_policy", "access")
MOTHER_KEYS = ("name", "host", "lan", "wans")
LAN_KEYS = ("network", "zone", "subnet")
WAN_KEYS = ("name", "weight", "tier", "family", "metric", "tracking")
UPLINK_KEYS = ("name", "host", "endpoint", "weight", "tier", "ipv6", "tracking", "tunnel",
               "mother_zone", "wan_zone", "description", "wan")
WAN_RULE = "MW020"       # an uplink's `wan:` block whose fields do not fit together
TRACKER_RULE = "MW006"   # tracking that cannot work (here: mwanctl's handover tracker)
POLICY_KEYS = ("name", "members", "last_resort")
MEMBER_KEYS = ("uplink", "wan", "tier", "weight")
RULE_KEYS = ("name", "policy", "proto", "src_ip", "dest_ip", "src_port", "dest_port", "sticky",
             "timeout", "family", "ipset", "src_iface", "logging")
ACCESS_KEYS = ("transport", "host", "port", "user", "key", "password_env", "password_file",
               "known_hosts", "jump", "ubus_url", "tls_fingerprint", "ca_file", "connect_timeout",
               "confirm_timeout")


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
    r.known_keys(top, "", TOP_KEYS)
    site = r.string(top, "site", "", pattern=SITE_RE,
                    hint="use up to 32 letters, digits, `-` or `_`, starting with a letter or digit")
    tunnels = r.mapping(top, "tunnels", "tunnels") or YamlMap()
    r.known_keys(tunnels, "tunnels", TUNNELS.keys)
    base_tracking = _tracking(r, r.mapping(top, "tracking", "tracking"), "tracking", None)
    pool = _pool(r, tunnels)
    defaults = read_block(r, tunnels, "tunnels", TUNNELS, skip=("pool", "pool6"), check_keys=False)
    mother = _mother(r, r.mapping(top, "mother", "mother", required=True), base_tracking)
    uplinks = _uplinks(r, r.seq(top, "uplinks", "uplinks", required=True), base_tracking, defaults)
    policies = _policies(r, r.seq(top, "policies", "policies"))
    rules = _rules(r, r.seq(top, "rules", "rules"))
    default_policy = r.string(top, "default_policy", "", "balanced", pattern=NAME_RE, hint=NAME_HINT)
    access = _access(r, r.mapping(top, "access", "access"))
    if mother is None or uplinks is None or pool is None:
        return None
    site = site or ""
    if default_policy == "balanced" and not any(p.name == "balanced" for p in policies):
        policies = (_balanced(mother, uplinks),) + policies
    return Topology(site=site, mother=mother, uplinks=uplinks, pool=pool, policies=policies,
                    rules=rules, default_policy=default_policy, access=access, file=r.src.file)


def _balanced(mother: Mother, uplinks: tuple[Uplink, ...]) -> Policy:
    """The implicit default policy: every WAN and uplink by its tier and weight."""
    members = [PolicyMember(w.name, w.tier, w.weight) for w in mother.wans]
    members += [PolicyMember(u.name, u.tier, u.weight) for u in uplinks]
    return Policy("balanced", tuple(members), "unreachable")


def _pool(r: Reader, tunnels: YamlMap) -> Optional[Pool]:
    v4 = read_field(r, tunnels, "tunnels", TUNNELS.field("pool"), TUNNELS.field("pool").default)
    v6 = read_field(r, tunnels, "tunnels", TUNNELS.field("pool6"), None)
    if v4 is None:
        return None
    for key, net, problem in (("pool", v4, pool4_problem), ("pool6", v6, pool6_problem)):
        why = problem(net) if net is not None else None   # type: ignore[operator]
        if why:
            r.error(r.src.value(tunnels, key), f"tunnels.{key}", f"{net} {why}", POOL_RULE)
    return Pool(v4, v6)


def _mother(r: Reader, node: Optional[YamlMap], base: Tracking) -> Optional[Mother]:
    if node is None:
        return None
    r.known_keys(node, "mother", MOTHER_KEYS)
    name = r.string(node, "name", "mother", "mother", pattern=NAME_RE, hint=NAME_HINT)
    host = r.host(node, "host", "mother")
    lan = r.mapping(node, "lan", "mother.lan") or YamlMap()
    r.known_keys(lan, "mother.lan", LAN_KEYS)
    lan_network = r.string(lan, "network", "mother.lan", "lan", pattern=NAME_RE, hint=NAME_HINT)
    lan_zone = r.string(lan, "zone", "mother.lan", "lan", pattern=ZONE_RE,
                        hint="firewall zone names: up to 11 letters, digits or `_`")
    subnet = r.parsed(lan, "subnet", "mother.lan", lambda s: ipaddress.IPv4Network(s, strict=False),
                      "an IPv4 network such as 192.168.1.0/24", None)
    wans: list[MotherWan] = []
    seq: Any = r.seq(node, "wans", "mother.wans") or []
    for i, w in enumerate(seq):
        path = f"mother.wans[{i}]"
        if isinstance(w, str):
            w = YamlMap(name=w)
        if not isinstance(w, YamlMap):
            r.error(r.src.item(seq, i), path, "expected a mapping with at least `name:`", WRONG_TYPE)
            continue
        r.known_keys(w, path, WAN_KEYS)
        wname = r.string(w, "name", path, pattern=NAME_RE, hint=NAME_HINT)
        if wname is None:
            continue
        path = f"mother.wans.{wname}"
        family = r.choice(w, "family", path, ("ipv4", "ipv6"), "ipv4")
        wans.append(MotherWan(
            name=wname,
            weight=r.integer(w, "weight", path, 1, 1, 1000),
            tier=r.integer(w, "tier", path, 1, 1, 256, " (mwan3 skips members with metric > 256)"),
            family=family,
            metric=r.integer(w, "metric", path, None, 0, 2**31 - 1),
            tracking=_tracking(r, r.mapping(w, "tracking", path + ".tracking"), path + ".tracking", base),
            loc=r.src.item(seq, i),
        ))
    # keep going with placeholders so the cross-object checks still report everything else
    return Mother(name or "mother", host or "", lan_network, lan_zone, subnet, tuple(wans))


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
        name = r.string(u, "name", path, pattern=NAME_RE, hint=NAME_HINT)
        if name is not None:
            path = f"uplinks.{name}"
        r.known_keys(u, path, UPLINK_KEYS)
        host = r.host(u, "host", path)
        endpoint = r.host(u, "endpoint", path, host)
        tun = r.mapping(u, "tunnel", path + ".tunnel") or YamlMap()
        tunnel = TunnelSettings(**read_block(r, tun, path + ".tunnel", TUNNEL, defaults=defaults))
        wan_node = r.mapping(u, "wan", path + ".wan")
        wan = _wan(r, wan_node, path + ".wan", name or "") if wan_node is not None else None
        if wan is not None:
            tunnel = _wan_tunnel_mtu(r, name or "", wan, tun, tunnel, path + ".tunnel")
        description = r.string(u, "description", path, f"uplink {name}")
        uplink = Uplink(
            name=name or "", host=host or "", endpoint=endpoint or "",
            weight=r.integer(u, "weight", path, 1, 1, 1000),
            tier=r.integer(u, "tier", path, 1, 1, 256, " (mwan3 skips members with metric > 256)"),
            ipv6=r.boolean(u, "ipv6", path, False),
            tracking=_tracking(r, r.mapping(u, "tracking", path + ".tracking"), path + ".tracking", base),
            tunnel=tunnel,
            mother_zone=r.string(u, "mother_zone", path, "lan", pattern=ZONE_RE,
                                 hint="firewall zone names: up to 11 letters, digits or `_`"),
            wan_zone=r.string(u, "wan_zone", path, "wan", pattern=ZONE_RE,
                              hint="firewall zone names: up to 11 letters, digits or `_`"),
            description=description or "",
            loc=r.src.item(seq, i),
            wan=wan,
        )
        if name is not None:
            out.append(uplink)   # even with a bad host: the other checks still run on it
    return tuple(out)


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


def _named_items(r: Reader, seq: Any, section: str, keys: tuple[str, ...],
                 shape: str) -> Iterator[tuple[int, YamlMap, Optional[str], str]]:
    """(index, node, name, path) of each mapping in a list of named items; paths use the name
    (``rules.https``) once it is known, so messages point at what the user called it."""
    for i, node in enumerate(seq or []):
        path = f"{section}[{i}]"
        if not isinstance(node, YamlMap):
            r.error(r.src.item(seq, i), path, f"expected a mapping with {shape}", WRONG_TYPE)
            continue
        name = r.string(node, "name", path, pattern=NAME_RE, hint=NAME_HINT)
        if name is not None:
            path = f"{section}.{name}"
        r.known_keys(node, path, keys)
        yield i, node, name, path


def _policies(r: Reader, seq: Any) -> tuple[Policy, ...]:
    out: list[Policy] = []
    for i, p, name, path in _named_items(r, seq, "policies", POLICY_KEYS, "`name:` and `members:`"):
        members: list[PolicyMember] = []
        mseq: Any = r.seq(p, "members", path, required=True) or []
        for j, m in enumerate(mseq):
            mpath = f"{path}.members[{j}]"
            if isinstance(m, (str, int)) and not isinstance(m, bool):
                target = r._text(m, (mseq, j), mpath, NAME_RE, NAME_HINT, 63)
                if target is not None:
                    members.append(PolicyMember(target, 0, 0))   # 0 = the uplink's own tier/weight
                continue
            if not isinstance(m, YamlMap):
                r.error(r.src.item(mseq, j), mpath, "expected an uplink name or a mapping with `uplink:`",
                        WRONG_TYPE)
                continue
            r.known_keys(m, mpath, MEMBER_KEYS)
            key = "uplink" if "uplink" in m else "wan"
            if m.get(key) is None:
                r.error(r.src.item(mseq, j), mpath, "missing `uplink:` (or `wan:`) naming a member", MISSING)
                continue
            target = r.string(m, key, mpath, None, pattern=NAME_RE, hint=NAME_HINT)
            if target is None:
                continue
            members.append(PolicyMember(
                target,
                r.integer(m, "tier", mpath, 0, 1, 256, " (mwan3 skips members with metric > 256)"),
                r.integer(m, "weight", mpath, 0, 1, 1000)))
        last = r.choice(p, "last_resort", path, ("unreachable", "blackhole", "default"), "unreachable")
        if name is not None:
            out.append(Policy(name, tuple(members), last, r.src.item(seq, i)))
    return tuple(out)


def _rules(r: Reader, seq: Any) -> tuple[Rule, ...]:
    out: list[Rule] = []
    for i, n, name, path in _named_items(r, seq, "rules", RULE_KEYS, "`name:` and `policy:`"):
        rule = Rule(
            name=name or "",
            policy=r.string(n, "policy", path, pattern=NAME_RE, hint=NAME_HINT) or "",
            proto=r.string(n, "proto", path, None, pattern=re.compile(r"[a-z0-9]{1,16}"),
                           hint="use a protocol name like tcp, udp, icmp or a number"),
            src_ip=r.parsed(n, "src_ip", path, network_text, "an IP address or network", None),
            dest_ip=r.parsed(n, "dest_ip", path, network_text, "an IP address or network", None),
            src_port=_ports(r, n, "src_port", path),
            dest_port=_ports(r, n, "dest_port", path),
            sticky=r.boolean(n, "sticky", path, False),
            timeout=r.integer(n, "timeout", path, None, 1, 10**6),
            family=r.choice(n, "family", path, ("ipv4", "ipv6", "any"), None),
            ipset=r.string(n, "ipset", path, None, pattern=re.compile(r"[A-Za-z0-9_.-]{1,31}"),
                           hint="ipset names: up to 31 letters, digits, `_`, `.` or `-`"),
            src_iface=r.string(n, "src_iface", path, None, pattern=NAME_RE, hint=NAME_HINT),
            logging=r.boolean(n, "logging", path, False),
            loc=r.src.item(seq, i),
        )
        if name is not None:
            out.append(rule)
    return tuple(out)


def _ports(r: Reader, node: YamlMap, key: str, path: str) -> Optional[str]:
    """An iptables multiport list, with `a-b` ranges written the iptables way (`a:b`)."""
    text = r.string(node, key, path, None, max_len=200)
    if text is None:
        return None
    value, problem = port_list(text)
    if value is None:
        r.error(r.src.value(node, key), f"{path}.{key}", problem, PORT_RULE)
    return value


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
        r.known_keys(a, path, ACCESS_KEYS)
        d = out.get("defaults", base)
        out[str(key)] = Access(
            transport=r.choice(a, "transport", path, ("ssh", "ubus", "local"), d.transport),
            host=r.host(a, "host", path, d.host),
            port=r.integer(a, "port", path, d.port, 1, 65535),
            user=r.string(a, "user", path, d.user, pattern=USER_RE,
                          hint="use a login name: letters, digits, `_`, `.` or `-`"),
            key=r.string(a, "key", path, d.key, max_len=PATH_MAX),
            password_env=r.string(a, "password_env", path, d.password_env, pattern=ENV_RE,
                                  hint="use an environment variable name: letters, digits and `_`"),
            password_file=r.string(a, "password_file", path, d.password_file, max_len=PATH_MAX),
            known_hosts=r.string(a, "known_hosts", path, d.known_hosts, max_len=PATH_MAX),
            jump=r.string(a, "jump", path, d.jump, pattern=NAME_RE, hint=NAME_HINT),
            ubus_url=r.string(a, "ubus_url", path, d.ubus_url,
                              pattern=re.compile(r"https?://\S+"), hint="use http(s)://<router>/ubus"),
            tls_fingerprint=r.string(a, "tls_fingerprint", path, d.tls_fingerprint,
                                     pattern=re.compile(r"sha256:[0-9A-Fa-f:]{64,95}"),
                                     hint="use sha256:<64 hex digits>"),
            ca_file=r.string(a, "ca_file", path, d.ca_file, max_len=PATH_MAX),
            connect_timeout=float(r.integer(a, "connect_timeout", path, int(d.connect_timeout), 1, 600)),
            confirm_timeout=r.integer(a, "confirm_timeout", path, d.confirm_timeout, 30, 3600,
                                      " (under 30 s valid changes get reverted while the network restarts)"),
        )
    return out
