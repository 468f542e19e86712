"""Rules across objects that a per-field schema cannot see.

Each check has an id (MWnnn, listed in the README's rule table) that every diagnostic it makes
carries. Checks only run when the per-field reading found no error, so they can trust types,
shapes and defaults. Every check is linear (or n log n) in the size of the topology: YAML
positions are looked up through one index built per run, never by scanning a list per object.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable, Optional

from mwanctl.errors import Diagnostic, Location
from mwanctl.topology.grammar import HOSTNAME, ip_address, short
from mwanctl.topology.model import BUILTIN_POLICIES, PREFIX, Rule, Topology, Tracking, Uplink
from mwanctl.topology.reader import Reader
from mwanctl.topology.rules import (
    ACCESS,
    CAPACITY,
    DUPLICATES,
    METRICS,
    NAMES,
    POLICIES,
    POOL,
    RESERVED,
    RULES,
    TRACKING,
)
from mwanctl.tracking import advice, family_tracking

MWAN3_IFACE_MAX = 60     # 2^6 - 1 - 3 with mwan3's default mmx_mask 0x3F00
MWAN3_IFACE_NAME = 13    # iptables chain `mwan3_iface_in_<name>` <= 28 chars
MWAN3_POLICY_NAME = 15   # longer policy/rule names are skipped by mwan3
SLOT_PREFIX = 30         # each tunnel gets a /30 of the IPv4 pool
SLOT_PREFIX6 = 64        # ... and a /64 of the IPv6 pool, at the same slot index
METRIC_STEP = 10         # a tunnel without `tunnel.metric` gets 10 * (slot + 1)
RESERVED_WANS = ("globals",)   # mwan3's own `config globals 'globals'` section



def run(t: Topology, r: Reader) -> None:
    at = Locator(r)
    for check in (_names, _reserved, _duplicates, _capacity, _pool, _metrics, _tracking, _policies,
                  _rules, _access, _tracker, _dns, _hooks, _sections):
        check(t, r, at)


class Locator:
    """YAML positions of objects by name, indexed once so every lookup is O(1)."""

    def __init__(self, r: Reader):
        self.src = r.src
        self._nodes: dict[Location, Any] = {}     # an item's location -> its YAML mapping
        for section in ("uplinks", "rules", "policies"):
            seq = r.src.data.get(section)
            for i, node in enumerate(seq if isinstance(seq, list) else ()):
                if hasattr(node, "get"):
                    self._nodes[r.src.item(seq, i)] = node

    def at(self, item: Optional[Location], key: Optional[str] = None) -> Optional[Location]:
        """Where ``key`` of the item at ``item`` is written (the item itself without the key)."""
        node = self._nodes.get(item) if item is not None else None
        if node is not None and key is not None and key in node:
            return self.src.value(node, key)
        return item

    def uplink(self, u: Uplink, key: Optional[str] = None) -> Optional[Location]:
        return self.at(u.loc, key)

    def top(self, key: str) -> Location:
        data = self.src.data
        return self.src.key(data, key) if key in data else self.src.of(data)


def _names(t: Topology, r: Reader, at: Locator) -> None:
    """MW001: names must fit mwan3's 13-char interface and 15-char policy/rule limits once prefixed."""
    for u in t.uplinks:
        longest = u.iface6 if u.ipv6 else u.iface
        if len(longest) > MWAN3_IFACE_NAME:
            room = MWAN3_IFACE_NAME - len(PREFIX) - (1 if u.ipv6 else 0)
            r.error(at.uplink(u, "name"), f"uplinks.{u.name}.name",
                    f"too long: it becomes the interface `{_clip(longest)}` ({len(longest)} chars), but "
                    f"mwan3 and Linux allow {MWAN3_IFACE_NAME}; use at most {room} characters", NAMES)
    for w in t.mother.wans:
        if len(w.name) > MWAN3_IFACE_NAME:
            r.error(w.loc, f"mother.wans.{w.name}.name",
                    f"mwan3 interface names longer than {MWAN3_IFACE_NAME} characters break its "
                    "iptables chains; rename the netifd interface", NAMES)
        if w.name.startswith(PREFIX):
            r.error(w.loc, f"mother.wans.{w.name}.name",
                    f"names starting with `{PREFIX}` are reserved for mwanctl's own sections", RESERVED)
    for kind, items in (("policies", t.policies), ("rules", t.rules)):
        for p in items:
            if len(p.section) > MWAN3_POLICY_NAME:
                r.error(p.loc, f"{kind}.{p.name}.name",
                        f"becomes `{_clip(p.section)}` ({len(p.section)} chars) but mwan3 silently skips "
                        f"names over {MWAN3_POLICY_NAME}; use at most {MWAN3_POLICY_NAME - len(PREFIX)} "
                        "characters", NAMES)


def _clip(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _reserved(t: Topology, r: Reader, at: Locator) -> None:
    """MW011: names that already mean something to mwan3 (its built-in policies, `globals`)."""
    for p in t.policies:
        if p.name in BUILTIN_POLICIES and p.loc is not None:
            r.error(at.at(p.loc, "name"), f"policies.{p.name}.name",
                    f"`{p.name}` is one of mwan3's built-in policies ({', '.join(BUILTIN_POLICIES)}); a "
                    "rule naming it gets mwan3's own, never this one: rename the policy", RESERVED)
    for w in t.mother.wans:
        if w.name in RESERVED_WANS:
            r.error(w.loc, f"mother.wans.{w.name}.name",
                    f"`{w.name}` is the name of mwan3's own settings section; an interface of that "
                    "name would overwrite it", RESERVED)


def _duplicates(t: Topology, r: Reader, at: Locator) -> None:
    """MW002: router and WAN names, hosts, endpoints, policy and rule names are unique."""
    first: dict[str, str] = {t.mother.name: "the mother"}
    named: list[tuple[str, Any]] = [("mother WAN", w) for w in t.mother.wans] + [("uplink", u) for u in t.uplinks]
    for what, obj in named:
        if obj.name not in first:
            first[obj.name] = f"{what} `{obj.name}`"
            continue
        if what == "uplink":
            loc, field = at.uplink(obj, "name"), f"uplinks.{obj.name}.name"
        else:
            loc, field = obj.loc, f"mother.wans.{obj.name}.name"
        r.error(loc, field, f"`{obj.name}` is already used by {first[obj.name]} (uplinks, mother WANs and "
                "the mother's name must differ); rename one", DUPLICATES)
    hosts = Counter(u.host for u in t.uplinks)
    hosts[t.mother.host] += 1
    seen_hosts = {t.mother.host}
    for u in t.uplinks:
        if u.host and hosts[u.host] > 1 and u.host in seen_hosts:
            r.error(at.uplink(u, "host"), f"uplinks.{u.name}.host",
                    f"{u.host} is already the host of another router; every router needs its own address",
                    DUPLICATES)
        seen_hosts.add(u.host)
    endpoints = Counter((u.endpoint, u.tunnel.port) for u in t.uplinks)
    for u in t.uplinks:
        if endpoints[(u.endpoint, u.tunnel.port)] > 1 and hosts[u.host] == 1:
            r.error(at.uplink(u, "endpoint"), f"uplinks.{u.name}.endpoint",
                    f"{u.endpoint}:{u.tunnel.port} is the endpoint of another uplink too; "
                    "give each tunnel its own endpoint or port", DUPLICATES)
    for kind, items in (("policies", t.policies), ("rules", t.rules)):
        seen = Counter(p.name for p in items)
        for p in items:
            if seen[p.name] > 1:
                r.error(p.loc, f"{kind}.{p.name}.name", "defined more than once; names must be unique",
                        DUPLICATES)
                seen[p.name] = 0


def _capacity(t: Topology, r: Reader, at: Locator) -> None:
    """MW003: mwan3 can mark at most 60 interfaces with its default mmx_mask."""
    count = len(t.mother.wans) + sum(2 if u.ipv6 else 1 for u in t.uplinks)
    if count > MWAN3_IFACE_MAX:
        r.error(at.top("uplinks"), "uplinks",
                f"{count} mwan3 interfaces, but mwan3 can mark only {MWAN3_IFACE_MAX} with its default "
                "`mmx_mask` 0x3F00; split the site or remove uplinks", CAPACITY)


def pool_slots(t: Topology) -> int:
    """Tunnel slots of the pool: a /30 each in `pool`, and a /64 each in `pool6` when an uplink
    uses IPv6 (one index addresses both, so the smaller pool bounds it)."""
    slots = 2 ** (SLOT_PREFIX - t.pool.ipv4.prefixlen) if t.pool.ipv4.prefixlen <= SLOT_PREFIX else 0
    if t.pool.ipv6 is not None and any(u.ipv6 for u in t.uplinks):
        six = 2 ** (SLOT_PREFIX6 - t.pool.ipv6.prefixlen) if t.pool.ipv6.prefixlen <= SLOT_PREFIX6 else 0
        slots = min(slots, six)
    return slots


def _pool(t: Topology, r: Reader, at: Locator) -> None:
    """MW004: the pools hold a slot per uplink, explicit indexes fit, no overlap with the LAN."""
    slots = pool_slots(t)
    tunnels = r.src.data.get("tunnels") or {}
    uses6 = t.pool.ipv6 is not None and any(u.ipv6 for u in t.uplinks)
    which = "pool6" if uses6 and slots < 2 ** (SLOT_PREFIX - t.pool.ipv4.prefixlen) else "pool"
    loc = r.src.value(tunnels, which) if which in tunnels else at.top("uplinks")
    size = f"{t.pool.ipv6} holds {slots} tunnel(s) of /64" if which == "pool6" else \
        f"{t.pool.ipv4} holds {slots} tunnel(s) of /30"
    if slots < len(t.uplinks):
        bigger = (f"/{max(8, SLOT_PREFIX - (len(t.uplinks) - 1).bit_length() - 1)}" if which == "pool"
                  else "/48 or /56")
        r.error(loc, f"tunnels.{which}", f"{size} but there are {len(t.uplinks)} uplinks; use a larger pool "
                f"such as {bigger}", POOL)
    for u in t.uplinks:
        if u.tunnel.index is not None and u.tunnel.index >= slots:
            r.error(at.uplink(u, "tunnel"), f"uplinks.{u.name}.tunnel.index",
                    f"{u.tunnel.index} does not fit: {size}; use 0..{slots - 1}", POOL)
    idx = Counter(u.tunnel.index for u in t.uplinks if u.tunnel.index is not None)
    for u in t.uplinks:
        if u.tunnel.index is not None and idx[u.tunnel.index] > 1:
            r.error(at.uplink(u, "tunnel"), f"uplinks.{u.name}.tunnel.index",
                    f"index {u.tunnel.index} is used by another uplink too; indexes must be unique", POOL)
    lan = t.mother.lan_subnet
    ploc = r.src.value(tunnels, "pool") if "pool" in tunnels else at.top("uplinks")
    if lan is not None and t.pool.ipv4.overlaps(lan):
        free = next((c for c in ("10.254.0.0/16", "172.31.0.0/16", "10.99.0.0/16")
                     if not ipaddress.ip_network(c).overlaps(lan)), "another range")
        r.error(ploc, "tunnels.pool", f"{t.pool.ipv4} overlaps the LAN {lan}; pick a pool outside it, "
                f"e.g. {free}", POOL)
    for u in t.uplinks:
        addr = ip_address(u.endpoint, scope=True) if u.endpoint else None
        if addr is not None and addr.version == 4 and addr in t.pool.ipv4:
            r.error(at.uplink(u, "endpoint"), f"uplinks.{u.name}.endpoint",
                    f"{u.endpoint} lies inside the tunnel pool {t.pool.ipv4}: the tunnel would carry itself",
                    POOL)
    if any(u.ipv6 for u in t.uplinks) and t.pool.ipv6 is None:
        r.error(at.top("uplinks"), "tunnels.pool6",
                "an uplink has `ipv6: true` but no `tunnels.pool6` is set; add e.g. `pool6: fd00:254::/48`",
                POOL)


def _metrics(t: Topology, r: Reader, at: Locator) -> None:
    """MW005: every WAN-like interface on the mother needs its own netifd route metric.

    A tunnel without `tunnel.metric` gets 10 * (slot + 1). A tunnel whose slot is not fixed by
    `tunnel.index` may get any slot of the pool, so an explicit metric that is such a multiple
    of 10 may clash and is refused too.
    """
    seen: dict[int, str] = {}
    explicit: list[tuple[int, str, Optional[Location], str]] = []
    for w in t.mother.wans:
        if w.metric is not None:
            explicit.append((w.metric, f"WAN `{w.name}`", w.loc, f"mother.wans.{w.name}.metric"))
    floating: list[Uplink] = []
    for u in t.uplinks:
        if u.tunnel.metric is not None:
            explicit.append((u.tunnel.metric, f"uplink `{u.name}`", at.uplink(u, "tunnel"),
                             f"uplinks.{u.name}.tunnel.metric"))
        elif u.tunnel.index is not None:
            explicit.append((METRIC_STEP * (u.tunnel.index + 1), f"uplink `{u.name}` (derived from its index)",
                             at.uplink(u, "tunnel"), f"uplinks.{u.name}.tunnel.metric"))
        else:
            floating.append(u)
    for m, who, loc, field in explicit:
        if m in seen:
            r.error(loc, field, f"route metric {m} is also used by {seen[m]}; default routes with equal "
                    "metrics replace each other and mwan3 loses one; give each WAN-like interface its own "
                    "metric", METRICS)
        else:
            seen[m] = who
    nslots = pool_slots(t)
    if floating:
        for m, who, loc, field in explicit:
            if "derived" not in who and m % METRIC_STEP == 0 and 1 <= m // METRIC_STEP <= nslots:
                r.error(loc, field, f"route metric {m} may also be given to uplink `{floating[0].name}`, "
                        f"whose tunnel metric is {METRIC_STEP} x (pool slot + 1); use a metric that is not a "
                        f"multiple of {METRIC_STEP}, or set `tunnel.metric` (or `tunnel.index`) on every uplink",
                        METRICS)


def _tracking(t: Topology, r: Reader, at: Locator) -> None:
    """MW006: tracking that can never succeed is an error; settings that flap are warnings.

    Each mwan3 interface is checked with the targets of its family (``family_tracking``): IPv4
    interfaces track ``targets``, IPv6 ones (WANs with ``family: ipv6``, the ``mw_<uplink>6``
    aliases) ``targets6``; an address of the other family in either list is an error. Targets are
    IP addresses without a zone id (host names only for httping).
    """
    items: list[tuple[str, Tracking, Any, str]] = []     # (path, tracking, the object, family)
    for u in t.uplinks:
        items.append((f"uplinks.{u.name}.tracking", u.tracking, u, "ipv4"))
        if u.ipv6:
            items.append((f"uplinks.{u.name}.tracking", u.tracking, u, "ipv6"))
    items += [(f"mother.wans.{w.name}.tracking", w.tracking, w, w.family) for w in t.mother.wans]
    for path, full, obj, family in items:
        loc = _Lazy(lambda obj=obj: at.uplink(obj, "tracking") if isinstance(obj, Uplink) else obj.loc)
        tr = family_tracking(full, family)
        field = "targets6" if family == "ipv6" else "targets"
        if not tr.targets and family == "ipv6":
            r.error(loc.get(), f"{path}.targets6", "empty, so the IPv6 interface would never fail over; "
                    "list IPv6 targets or leave `targets6` out for the defaults", TRACKING)
        elif tr.reliability > len(tr.targets):
            r.error(loc.get(), f"{path}.reliability",
                    f"{tr.reliability} targets must answer but only {len(tr.targets)} are tracked: the "
                    "interface could never come online; lower `reliability` or add targets", TRACKING)
        for target in tr.targets:
            addr = ip_address(target)
            if addr is None:
                if tr.method == "httping" and HOSTNAME.match(target):
                    continue
                r.error(loc.get(), f"{path}.{field}", f"{short(target)} is not an IP address"
                        + (" or host name" if tr.method == "httping" else " (ping tracking needs IPs)"),
                        TRACKING)
            elif family == "ipv6" and addr.version == 4:
                r.error(loc.get(), f"{path}.targets6", f"{target} is IPv4 but `targets6` are tracked over IPv6; "
                        "put it in `targets`", TRACKING)
            elif family == "ipv4" and addr.version == 6:
                where = "this WAN is IPv4" if path.startswith("mother.") else "the tunnel interface is IPv4"
                r.error(loc.get(), f"{path}.targets", f"{target} is IPv6 but {where}; put IPv6 targets in "
                        "`targets6` (they are tracked on the IPv6 interface)", TRACKING)
        if tr.method == "arping" and family == "ipv6":
            r.error(loc.get(), f"{path}.method", "arping is IPv4 only; use ping", TRACKING)
        for msg in _advice(tr, family) if tr.targets or family == "ipv4" else ():
            r.warn(loc.get(), path + (" (IPv6)" if family == "ipv6" and path.startswith("uplinks.") else ""), msg,
                   TRACKING)


@lru_cache(maxsize=256)   # uplinks mostly share one tracking setup: compute its advice once
def _advice(tr: Tracking, family: str) -> tuple[str, ...]:
    return tuple(advice(tr, family))


class _Lazy:
    """A location computed on first use: most objects are never reported, so most never need one."""

    def __init__(self, fn: Any):
        self._fn, self._done, self._value = fn, False, None

    def get(self) -> Optional[Location]:
        if not self._done:
            self._value, self._done = self._fn(), True
        return self._value


def _member_targets(t: Topology) -> set[str]:
    return {u.name for u in t.uplinks} | {w.name for w in t.mother.wans}


def _some(names: Iterable[str], limit: int = 8) -> str:
    ordered = sorted(names)
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def _policies(t: Topology, r: Reader, at: Locator) -> None:
    """MW007: policies list existing uplinks/WANs (never policies: mwan3 cannot nest them, so a
    policy cannot refer to itself or another); the default policy exists."""
    targets = _member_targets(t)
    names = {p.name for p in t.policies}
    for p in t.policies:
        if not p.members and p.loc is not None:
            r.error(p.loc, f"policies.{p.name}.members", "empty; list at least one uplink", POLICIES)
        for m in p.members:
            if m.target in targets:
                continue
            if m.target in names:
                what = "this policy itself" if m.target == p.name else f"the policy `{m.target}`"
                r.error(p.loc, f"policies.{p.name}.members",
                        f"`{m.target}` is {what}; a policy lists uplinks or mother WANs, it cannot contain "
                        "a policy (mwan3 has no nested policies)", POLICIES)
            else:
                r.error(p.loc, f"policies.{p.name}.members",
                        f"`{m.target}` is not an uplink or mother WAN; known: {_some(targets)}", POLICIES)
    if t.default_policy not in names and t.default_policy not in BUILTIN_POLICIES:
        r.error(r.src.value(r.src.data, "default_policy"), "default_policy",
                f"no policy `{t.default_policy}`; define it under `policies:` or use `balanced`", POLICIES)


def _rules(t: Topology, r: Reader, at: Locator) -> None:
    """MW008: rules use existing policies and only options mwan3 will honour."""
    names = {p.name for p in t.policies}
    for rule in t.rules:
        path = f"rules.{rule.name}"

        def where(key: str, rule: Rule = rule) -> Optional[Location]:
            return at.at(rule.loc, key)
        if rule.policy not in names and rule.policy not in BUILTIN_POLICIES:
            r.error(where("policy"), f"{path}.policy",
                    f"no policy `{rule.policy}`; known: {_some(names | set(BUILTIN_POLICIES))}", RULES)
        if (rule.src_port or rule.dest_port) and rule.proto not in ("tcp", "udp"):
            r.error(where("proto"), f"{path}.proto",
                    "ports are ignored by mwan3 unless `proto` is tcp or udp; set `proto: tcp` or `udp`", RULES)
        if rule.sticky and rule.policy in BUILTIN_POLICIES:
            r.error(where("sticky"), f"{path}.sticky",
                    f"sticky needs a real policy, not the built-in `{rule.policy}`", RULES)
        if rule.timeout is not None and not rule.sticky:
            r.warn(where("timeout"), f"{path}.timeout", "only used with `sticky: true`; it has no effect here",
                   RULES)
        versions = set()
        for key in ("src_ip", "dest_ip"):
            v = getattr(rule, key)
            if v:
                version = ipaddress.ip_network(v, strict=False).version
                versions.add(version)
                if rule.family in ("ipv4", "ipv6") and f"ipv{version}" != rule.family:
                    r.error(where(key), f"{path}.{key}",
                            f"{v} is IPv{version} but the rule's family is {rule.family}", RULES)
        if len(versions) > 1:
            r.error(where("dest_ip"), f"{path}.dest_ip",
                    "src_ip and dest_ip are of different IP versions; no packet can match both", RULES)
        if rule.src_iface and rule.src_iface not in {t.mother.lan_network} | _member_targets(t):
            r.warn(where("src_iface"), f"{path}.src_iface",
                   f"`{rule.src_iface}` must be a netifd interface on the mother; mwan3 skips the rule "
                   "while it has no device", RULES)


def _access(t: Topology, r: Reader, at: Locator) -> None:
    """MW009: access entries name routers of this topology; jump hosts exist and do not loop."""
    routers = set(t.routers)
    node = r.src.data.get("access") or {}
    for key, a in t.access.items():
        loc = r.src.key(node, key)
        if key != "defaults" and key not in routers:
            r.error(loc, f"access.{key}", f"no router named `{key}`; use `defaults` or one of "
                    f"{_some(routers)}", ACCESS)
        if a.jump is not None and a.jump not in routers:
            r.error(loc, f"access.{key}.jump", f"no router named `{a.jump}` to jump through", ACCESS)
        if a.jump == key:
            r.error(loc, f"access.{key}.jump", "a router cannot be its own jump host", ACCESS)
    # a chain of jumps must end at a router reached directly (a -> b -> a never connects)
    for start in t.access:
        seen: list[str] = []
        cur: Optional[str] = start
        while cur is not None and cur not in seen:
            seen.append(cur)
            cur = t.access_for(cur).jump if cur != "defaults" else t.access[cur].jump
        if cur is not None and cur == start and len(seen) > 1:
            r.error(r.src.key(node, start), f"access.{start}.jump",
                    f"jump hosts go round in a circle ({' -> '.join(seen + [cur])})", ACCESS)


def tracker_transport(t: Topology, loc: Optional[Location] = None) -> list[Diagnostic]:
    """MW009: profile `instant` installs mwanctl's tracker on the mother, which only the ssh
    transport does. One function for validate (with the location) and compile (as a guard)."""
    if not any(u.tracking.tracker for u in t.uplinks):
        return []
    transport = t.access_for(t.mother.name).transport
    if transport == "ssh":
        return []
    return [Diagnostic(loc, f"access.{t.mother.name}.transport",
                       f"profile `instant` installs mwanctl's tracker on the mother, which needs the ssh "
                       f"transport (the mother uses {transport}); use ssh for the mother or another profile",
                       rule=ACCESS)]


def _tracker(t: Topology, r: Reader, at: Locator) -> None:
    node = r.src.data.get("access") or {}
    key = t.mother.name if t.mother.name in node else "defaults"
    entry: Any = node.get(key) if hasattr(node, "get") else None
    loc = r.src.value(entry, "transport") if hasattr(entry, "get") and "transport" in entry else at.top("access")
    r.diags.extend(tracker_transport(t, loc))


def _dns(t: Topology, r: Reader, at: Locator) -> None:
    """MW007: `dns.policy` names a policy (its members make the servers' failover policies);
    MW008: an IPv6 server needs an IPv6 interface, or no policy could ever reach it."""
    d = t.dns
    if d is None:
        return
    node = r.src.data.get("dns")
    loc = (r.src.value(node, "policy") if hasattr(node, "get") and "policy" in node else d.loc)
    if d.policy in BUILTIN_POLICIES or not any(p.name == d.policy for p in t.policies):
        r.error(loc, "dns.policy", f"no policy `{d.policy}`; name one of "
                f"{', '.join(p.name for p in t.policies) or '(none defined)'}", POLICIES)
    has6 = any(u.ipv6 for u in t.uplinks) or any(w.family == "ipv6" for w in t.mother.wans)
    for s in d.servers:
        if ":" in s and not has6:
            sloc = r.src.value(node, "servers") if hasattr(node, "get") and "servers" in node else d.loc
            r.error(sloc, "dns.servers", f"{s} is an IPv6 server, but no uplink or own WAN carries IPv6 "
                    "(`ipv6: true`, `family: ipv6`)", RULES)


def hooks_transport(t: Topology) -> list[tuple[str, str]]:
    """MW009: hooks are a file mwanctl installs (/etc/hotplug.d/iface/17-mwanctl-hooks), which
    only the ssh transport does: (router, what) for each router that has hooks but another
    transport. One function for validate and compile (as a guard)."""
    out = []
    mother_hooks = bool(t.hooks) or any(u.hooks.mother for u in t.uplinks)
    if mother_hooks and t.access_for(t.mother.name).transport != "ssh":
        out.append((t.mother.name, "up/down hooks on the mother"))
    for u in t.uplinks:
        if u.hooks.router and t.access_for(u.name).transport != "ssh":
            out.append((u.name, f"`uplinks.{u.name}.hooks.wan_online`/`wan_offline`"))
    return out


def _hooks(t: Topology, r: Reader, at: Locator) -> None:
    node = r.src.data.get("access") or {}
    for router, what in hooks_transport(t):
        key = router if hasattr(node, "get") and router in node else "defaults"
        entry: Any = node.get(key) if hasattr(node, "get") else None
        has = entry is not None and hasattr(entry, "get") and "transport" in entry
        loc = r.src.value(entry, "transport") if has else at.top("access")
        transport = t.access_for(router).transport
        r.error(loc, f"access.{router}.transport", f"{what} are installed as a file, which needs the ssh "
                f"transport ({router} uses {transport}); use ssh for {router} or leave the hooks out", ACCESS)


def _sections(t: Topology, r: Reader, at: Locator) -> None:
    """MW010: every UCI section name the compiler generates is unique in its package.
    Compiling needs a consistent topology, so this runs only when every other check passed."""
    from mwanctl.compile.names import generated, section_clashes
    if r.failed:
        return
    r.diags.extend(section_clashes(generated(t)))
