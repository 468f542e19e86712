"""Rules across objects that a per-field schema cannot see.

Each check has an id (MWnnn) so docs and tests can name it. Checks only run when the
per-field reading found no error, so they can trust types and defaults.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, Optional

from mwanctl.errors import Location
from mwanctl.topology.model import PREFIX, Topology, Tracking
from mwanctl.topology.reader import Reader, is_ip
from mwanctl.tracking import advice, family_tracking

MWAN3_IFACE_MAX = 60     # 2^6 - 1 - 3 with mwan3's default mmx_mask 0x3F00
MWAN3_IFACE_NAME = 13    # iptables chain `mwan3_iface_in_<name>` <= 28 chars
MWAN3_POLICY_NAME = 15   # longer policy/rule names are skipped by mwan3
SLOT_PREFIX = 30         # each tunnel gets a /30 of the IPv4 pool
SLOT_PREFIX6 = 64
BUILTIN_POLICIES = ("default", "unreachable", "blackhole")


def run(t: Topology, r: Reader) -> None:
    for check in (_names, _duplicates, _capacity, _pool, _metrics, _tracking, _policies, _rules,
                  _access):
        check(t, r)


def _uplink_loc(t: Topology, r: Reader, name: str, key: Optional[str] = None) -> Optional[Location]:
    """Location of (a key of) the uplink called ``name``; with duplicates, of each in turn."""
    u = next((u for u in t.uplinks if u.name == name), None)
    return _item_key_loc(r, "uplinks", u.loc if u else None, key)


def _uplink_at(r: Reader, u: Any, key: Optional[str] = None) -> Optional[Location]:
    return _item_key_loc(r, "uplinks", u.loc, key)


def _item_key_loc(r: Reader, section: str, item_loc: Optional[Location], key: Optional[str]) -> Optional[Location]:
    seq = r.src.data.get(section) or []
    for i, node in enumerate(seq):
        if r.src.item(seq, i) == item_loc:
            return r.src.value(node, key) if key and getattr(node, "get", None) and key in node else item_loc
    return item_loc


def _node_loc(r: Reader, section: str, name: str, key: Optional[str] = None) -> Optional[Location]:
    seq = r.src.data.get(section) or []
    for i, node in enumerate(seq):
        if getattr(node, "get", None) and node.get("name") == name:
            return r.src.value(node, key) if key and key in node else r.src.item(seq, i)
    return None


def _names(t: Topology, r: Reader) -> None:
    """MW001: names must fit mwan3's 13-char interface and 15-char policy/rule limits once prefixed."""
    for u in t.uplinks:
        longest = u.iface6 if u.ipv6 else u.iface
        if len(longest) > MWAN3_IFACE_NAME:
            room = MWAN3_IFACE_NAME - len(PREFIX) - (1 if u.ipv6 else 0)
            r.error(_uplink_loc(t, r, u.name, "name"), f"uplinks.{u.name}.name",
                    f"too long: it becomes the interface `{longest}` ({len(longest)} chars), but mwan3 "
                    f"and Linux allow {MWAN3_IFACE_NAME}; use at most {room} characters")
    for w in t.mother.wans:
        if len(w.name) > MWAN3_IFACE_NAME:
            r.error(w.loc, f"mother.wans.{w.name}.name",
                    f"mwan3 interface names longer than {MWAN3_IFACE_NAME} characters break its "
                    "iptables chains; rename the netifd interface")
        if w.name.startswith(PREFIX):
            r.error(w.loc, f"mother.wans.{w.name}.name",
                    f"names starting with `{PREFIX}` are reserved for mwanctl's own sections")
    for kind, items in (("policies", t.policies), ("rules", t.rules)):
        for p in items:
            if len(p.section) > MWAN3_POLICY_NAME:
                r.error(p.loc, f"{kind}.{p.name}.name",
                        f"becomes `{p.section}` ({len(p.section)} chars) but mwan3 silently skips "
                        f"names over {MWAN3_POLICY_NAME}; use at most {MWAN3_POLICY_NAME - len(PREFIX)} characters")


def _duplicates(t: Topology, r: Reader) -> None:
    """MW002: uplink names, hosts, WAN names, policy and rule names are unique."""
    names = Counter(u.name for u in t.uplinks)
    names.update(w.name for w in t.mother.wans)
    names[t.mother.name] += 1
    reported = {t.mother.name} | {w.name for w in t.mother.wans}
    for u in t.uplinks:
        if names[u.name] > 1 and u.name in reported:
            r.error(_uplink_at(r, u, "name"), f"uplinks.{u.name}.name",
                    f"`{u.name}` is already used (uplinks, mother WANs and the mother's name must differ); rename one")
        reported.add(u.name)
    hosts = Counter(u.host for u in t.uplinks)
    hosts[t.mother.host] += 1
    seen_hosts = {t.mother.host}
    for u in t.uplinks:
        if u.host and hosts[u.host] > 1 and u.host in seen_hosts:
            r.error(_uplink_at(r, u, "host"), f"uplinks.{u.name}.host",
                    f"{u.host} is already the host of another router; every router needs its own address")
        seen_hosts.add(u.host)
    endpoints = Counter((u.endpoint, u.tunnel.port) for u in t.uplinks)
    for u in t.uplinks:
        if endpoints[(u.endpoint, u.tunnel.port)] > 1 and hosts[u.host] == 1:
            r.error(_uplink_loc(t, r, u.name, "endpoint"), f"uplinks.{u.name}.endpoint",
                    f"{u.endpoint}:{u.tunnel.port} is the endpoint of another uplink too; "
                    "give each tunnel its own endpoint or port")
    for kind, items in (("policies", t.policies), ("rules", t.rules)):
        seen = Counter(p.name for p in items)
        for p in items:
            if seen[p.name] > 1:
                r.error(p.loc, f"{kind}.{p.name}.name", "defined more than once; names must be unique")
                seen[p.name] = 0


def _capacity(t: Topology, r: Reader) -> None:
    """MW003: mwan3 can mark at most 60 interfaces with its default mmx_mask."""
    count = len(t.mother.wans) + sum(2 if u.ipv6 else 1 for u in t.uplinks)
    if count > MWAN3_IFACE_MAX:
        r.error(r.src.key(r.src.data, "uplinks"), "uplinks",
                f"{count} mwan3 interfaces, but mwan3 can mark only {MWAN3_IFACE_MAX} with its default "
                "`mmx_mask` 0x3F00; split the site or remove uplinks")


def _pool(t: Topology, r: Reader) -> None:
    """MW004: the tunnel pool has a /30 per uplink, explicit indexes fit, no overlap with the LAN."""
    slots = 2 ** max(0, SLOT_PREFIX - t.pool.ipv4.prefixlen) if t.pool.ipv4.prefixlen <= SLOT_PREFIX else 0
    tunnels = r.src.data.get("tunnels") or {}
    loc = r.src.value(tunnels, "pool") if "pool" in tunnels else r.src.key(r.src.data, "uplinks")
    if slots < len(t.uplinks):
        r.error(loc, "tunnels.pool",
                f"{t.pool.ipv4} holds {slots} tunnel(s) of /30 but there are {len(t.uplinks)} uplinks; "
                f"use a larger pool such as /{max(8, SLOT_PREFIX - (len(t.uplinks) - 1).bit_length() - 1)}")
    for u in t.uplinks:
        if u.tunnel.index is not None and u.tunnel.index >= slots:
            r.error(_uplink_loc(t, r, u.name), f"uplinks.{u.name}.tunnel.index",
                    f"{u.tunnel.index} does not fit the pool {t.pool.ipv4} ({slots} slots); use 0..{slots - 1}")
    idx = Counter(u.tunnel.index for u in t.uplinks if u.tunnel.index is not None)
    for u in t.uplinks:
        if u.tunnel.index is not None and idx[u.tunnel.index] > 1:
            r.error(_uplink_loc(t, r, u.name), f"uplinks.{u.name}.tunnel.index",
                    f"index {u.tunnel.index} is used by another uplink too; indexes must be unique")
    lan = t.mother.lan_subnet
    if lan is not None and t.pool.ipv4.overlaps(lan):
        free = next((c for c in ("10.254.0.0/16", "172.31.0.0/16", "10.99.0.0/16")
                     if not ipaddress.ip_network(c).overlaps(lan)), "another range")
        r.error(loc, "tunnels.pool", f"{t.pool.ipv4} overlaps the LAN {lan}; pick a pool outside it, "
                f"e.g. {free}")
    for u in t.uplinks:
        if u.endpoint and is_ip(u.endpoint) and ipaddress.ip_address(u.endpoint) in t.pool.ipv4:
            r.error(_uplink_loc(t, r, u.name, "endpoint"), f"uplinks.{u.name}.endpoint",
                    f"{u.endpoint} lies inside the tunnel pool {t.pool.ipv4}: the tunnel would carry itself")
    if any(u.ipv6 for u in t.uplinks) and t.pool.ipv6 is None:
        r.error(r.src.key(r.src.data, "uplinks"), "tunnels.pool6",
                "an uplink has `ipv6: true` but no `tunnels.pool6` is set; add e.g. `pool6: fd00:254::/48`")
    if t.pool.ipv6 is not None and t.pool.ipv6.prefixlen > SLOT_PREFIX6 - max(1, (len(t.uplinks)).bit_length()):
        r.error(r.src.value(tunnels, "pool6"), "tunnels.pool6",
                f"{t.pool.ipv6} is too small for a /64 per uplink; use a /48 or /56")


def _metrics(t: Topology, r: Reader) -> None:
    """MW005: every WAN-like interface on the mother needs a distinct netifd route metric."""
    seen: dict[int, str] = {}
    for w in t.mother.wans:
        if w.metric is not None:
            if w.metric in seen:
                r.error(w.loc, f"mother.wans.{w.name}.metric",
                        f"metric {w.metric} is also used by {seen[w.metric]}; default routes with equal "
                        "metrics replace each other and mwan3 loses one (error 16)")
            seen[w.metric] = w.name
    for u in t.uplinks:
        m = u.tunnel.metric
        if m is not None:
            if m in seen:
                r.error(_uplink_loc(t, r, u.name), f"uplinks.{u.name}.tunnel.metric",
                        f"metric {m} is also used by {seen[m]}; every WAN-like interface needs its own metric")
            seen[m] = u.name


def _tracking(t: Topology, r: Reader) -> None:
    """MW006: tracking that can never succeed is an error; settings that flap are warnings.

    Each mwan3 interface is checked with the targets of its family (``family_tracking``): IPv4
    interfaces track ``targets``, IPv6 ones (WANs with ``family: ipv6``, the ``mw_<uplink>6``
    aliases) ``targets6``; an address of the other family in either list is an error.
    """
    items: list[tuple[str, Tracking, Optional[Location], str]] = []
    for u in t.uplinks:
        items.append((f"uplinks.{u.name}.tracking", u.tracking, _uplink_loc(t, r, u.name), "ipv4"))
        if u.ipv6:
            items.append((f"uplinks.{u.name}.tracking", u.tracking, _uplink_loc(t, r, u.name), "ipv6"))
    items += [(f"mother.wans.{w.name}.tracking", w.tracking, w.loc, w.family) for w in t.mother.wans]
    for path, full, loc, family in items:
        tr = family_tracking(full, family)
        field = "targets6" if family == "ipv6" else "targets"
        if not tr.targets and family == "ipv6":
            r.error(loc, f"{path}.targets6", "empty, so the IPv6 interface would never fail over; "
                                             "list IPv6 targets or leave `targets6` out for the defaults")
        elif tr.reliability > len(tr.targets):
            r.error(loc, f"{path}.reliability",
                    f"{tr.reliability} targets must answer but only {len(tr.targets)} are tracked: the "
                    "interface could never come online; lower `reliability` or add targets")
        for target in tr.targets:
            if tr.method == "httping" and not is_ip(target):
                continue
            if not is_ip(target):
                r.error(loc, f"{path}.{field}", f"{target!r} is not an IP address (ping tracking needs IPs)")
            elif family == "ipv6" and ipaddress.ip_address(target).version == 4:
                r.error(loc, f"{path}.targets6", f"{target} is IPv4 but `targets6` are tracked over IPv6; "
                                                 f"put it in `targets`")
            elif family == "ipv4" and ipaddress.ip_address(target).version == 6:
                where = "this WAN is IPv4" if path.startswith("mother.") else "the tunnel interface is IPv4"
                r.error(loc, f"{path}.targets", f"{target} is IPv6 but {where}; put IPv6 targets in "
                                                f"`targets6` (they are tracked on the IPv6 interface)")
        if tr.method == "arping" and family == "ipv6":
            r.error(loc, f"{path}.method", "arping is IPv4 only; use ping")
        for msg in advice(tr, family) if tr.targets or family == "ipv4" else ():
            r.warn(loc, path + (" (IPv6)" if family == "ipv6" and path.startswith("uplinks.") else ""), msg)


def _member_targets(t: Topology) -> set[str]:
    return {u.name for u in t.uplinks} | {w.name for w in t.mother.wans}


def _policies(t: Topology, r: Reader) -> None:
    """MW007: policies name existing uplinks/WANs; the default policy exists."""
    targets = _member_targets(t)
    for p in t.policies:
        if not p.members and p.loc is not None:
            r.error(p.loc, f"policies.{p.name}.members", "empty; list at least one uplink")
        for m in p.members:
            if m.target not in targets:
                r.error(p.loc, f"policies.{p.name}.members",
                        f"`{m.target}` is not an uplink or mother WAN; known: {', '.join(sorted(targets))}")
    names = {p.name for p in t.policies}
    if t.default_policy not in names and t.default_policy not in BUILTIN_POLICIES:
        r.error(r.src.value(r.src.data, "default_policy"), "default_policy",
                f"no policy `{t.default_policy}`; define it under `policies:` or use `balanced`")


def _rules(t: Topology, r: Reader) -> None:
    """MW008: rules use existing policies and only options mwan3 will honour."""
    names = {p.name for p in t.policies}
    for rule in t.rules:
        path = f"rules.{rule.name}"
        if rule.policy not in names and rule.policy not in BUILTIN_POLICIES:
            r.error(_node_loc(r, "rules", rule.name, "policy"), f"{path}.policy",
                    f"no policy `{rule.policy}`; known: {', '.join(sorted(names | set(BUILTIN_POLICIES)))}")
        if (rule.src_port or rule.dest_port) and rule.proto not in ("tcp", "udp"):
            r.error(_node_loc(r, "rules", rule.name, "proto"), f"{path}.proto",
                    "ports are ignored by mwan3 unless `proto` is tcp or udp; set `proto: tcp` or `udp`")
        if rule.sticky and rule.policy in BUILTIN_POLICIES:
            r.error(_node_loc(r, "rules", rule.name, "sticky"), f"{path}.sticky",
                    f"sticky needs a real policy, not the built-in `{rule.policy}`")
        if rule.timeout is not None and not rule.sticky:
            r.warn(_node_loc(r, "rules", rule.name, "timeout"), f"{path}.timeout",
                   "only used with `sticky: true`; it has no effect here")
        for key in ("src_ip", "dest_ip"):
            v = getattr(rule, key)
            if v and rule.family in ("ipv4", "ipv6"):
                version = ipaddress.ip_network(v, strict=False).version
                if f"ipv{version}" != rule.family:
                    r.error(_node_loc(r, "rules", rule.name, key), f"{path}.{key}",
                            f"{v} is IPv{version} but the rule's family is {rule.family}")
        if rule.src_iface and rule.src_iface not in {t.mother.lan_network} | _member_targets(t):
            r.warn(_node_loc(r, "rules", rule.name, "src_iface"), f"{path}.src_iface",
                   f"`{rule.src_iface}` must be a netifd interface on the mother; mwan3 skips the rule "
                   "while it has no device")


def _access(t: Topology, r: Reader) -> None:
    """MW009: access entries name routers of this topology; jump hosts exist and do not loop."""
    routers = set(t.routers)
    node = r.src.data.get("access") or {}
    for key, a in t.access.items():
        loc = r.src.key(node, key)
        if key != "defaults" and key not in routers:
            r.error(loc, f"access.{key}", f"no router named `{key}`; use `defaults` or one of "
                    f"{', '.join(sorted(routers))}")
        if a.jump is not None and a.jump not in routers:
            r.error(loc, f"access.{key}.jump", f"no router named `{a.jump}` to jump through")
        if a.jump == key:
            r.error(loc, f"access.{key}.jump", "a router cannot be its own jump host")

