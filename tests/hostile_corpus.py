"""Malformed and hostile topologies: each must be refused with file:line:col and a rule id.

Shared by tests/test_topology_corpus.py (every case must give exit 1, no internal error) and
bench/validate.py (which times them). Each case names the rule ids it may be refused under:
usually exactly one; a few (where two checks legitimately fire) name more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    rules: frozenset[str]          # at least one of these rule ids must be reported
    line: Optional[int] = None     # when given: an error is reported on this line


def dq(s: str) -> str:
    """``s`` as a YAML double-quoted scalar, every non-printable character escaped."""
    out = []
    for c in s:
        o = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif o < 32 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in (0x2028, 0x2029) or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


HEAD = "site: home\nmother:\n  host: 192.168.1.1\n  lan: {subnet: 192.168.1.0/24}\n"
TWO = "uplinks:\n  - name: dsl\n    host: 192.168.1.2\n  - name: lte\n    host: 192.168.1.3\n"
BASE = HEAD + TWO


def ups(*names: str, extra: str = "") -> str:
    return "uplinks:\n" + "".join(f"  - {{name: {n}, host: 192.168.1.{i + 2}{extra}}}\n"
                                  for i, n in enumerate(names))


def _c(id: str, text: str, *rules: str, line: Optional[int] = None) -> Case:
    return Case(id, text, frozenset(rules), line)


def _collisions() -> list[Case]:
    six = "tunnels: {pool6: 'fd00:254::/48'}\n"
    return [
        _c("uplink-vs-policy", BASE + "policies:\n  - {name: lte, members: [lte]}\n", "MW010", line=8),
        _c("rule-default_v4", BASE + "rules:\n  - {name: default_v4, policy: balanced}\n", "MW010", line=11),
        _c("rule-default_v6", HEAD + ups("dsl", extra=", ipv6: true") + six
           + "rules:\n  - {name: default_v6, policy: balanced}\n", "MW010", line=9),
        _c("uplink-a_peer", HEAD + ups("a", "a_peer"), "MW010", line=7),
        _c("uplink-x6", HEAD + ups("x", "x6", extra=", ipv6: true") + six, "MW010", line=6),
        _c("uplink-x6-only-x-dual", HEAD + "uplinks:\n  - {name: x, host: 192.168.1.2, ipv6: true}\n"
           "  - {name: x6, host: 192.168.1.3}\n" + six, "MW010", line=7),
        _c("uplink-member-name", HEAD + ups("a", "a_m1_w1"), "MW010", line=7),
        _c("uplink-member-weight", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: 2}\n"
           "  - {name: a_m1_w2, host: 192.168.1.3}\n", "MW010"),
        _c("policy-member-tier", HEAD + ups("a", "a_m2_w3")
           + "policies:\n  - {name: p, members: [{uplink: a, tier: 2, weight: 3}]}\n", "MW010"),
        _c("uplink-balanced", HEAD + ups("balanced", "b"), "MW010"),
        _c("policy-vs-rule", BASE + "policies:\n  - {name: web, members: [dsl]}\n"
           "rules:\n  - {name: web, policy: web}\n", "MW010"),
        _c("rule-vs-uplink", BASE + "rules:\n  - {name: dsl, policy: balanced}\n", "MW010"),
        _c("wan-member-vs-uplink", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [wan]\n"
           + ups("wan_m1_w1"), "MW010"),
        _c("policy-member-of-wan", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, weight: 4}]\n"
           + ups("wan_m1_w4"), "MW010"),
        _c("wans-twice", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [wan, wan]\n" + ups("a"),
           "MW002", line=4),
        _c("uplinks-twice", HEAD + ups("dsl", "dsl"), "MW002"),
        _c("uplink-vs-wan", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [dsl]\n" + ups("dsl"), "MW002"),
        _c("uplink-vs-mother", HEAD + ups("mother"), "MW002"),
        _c("policies-twice", BASE + "policies:\n  - {name: p, members: [dsl]}\n  - {name: p, members: [lte]}\n",
           "MW002"),
        _c("rules-twice", BASE + "rules:\n  - {name: r, policy: balanced}\n  - {name: r, policy: balanced}\n",
           "MW002"),
        _c("hosts-twice", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2}\n  - {name: b, host: 192.168.1.2}\n",
           "MW002"),
        _c("endpoint-twice", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, endpoint: 203.0.113.1}\n"
           "  - {name: b, host: 192.168.1.3, endpoint: 203.0.113.1}\n", "MW002"),
        _c("wan-globals", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [globals]\n" + ups("a"), "MW011"),
        _c("wan-mw-prefix", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [mw_x]\n" + ups("a"), "MW011"),
    ]


# Fields whose value is a string the loader reads, as (id, YAML with {v} where the value goes).
_STRING_FIELDS = [
    ("site", "site: {v}\nmother: {host: 192.168.1.1}\n" + ups("a")),
    ("mother.name", "site: s\nmother: {host: 192.168.1.1, name: {v}}\n" + ups("a")),
    ("mother.host", "site: s\nmother: {host: {v}}\n" + ups("a")),
    ("lan.network", "site: s\nmother: {host: 192.168.1.1, lan: {network: {v}}}\n" + ups("a")),
    ("lan.zone", "site: s\nmother: {host: 192.168.1.1, lan: {zone: {v}}}\n" + ups("a")),
    ("lan.subnet", "site: s\nmother: {host: 192.168.1.1, lan: {subnet: {v}}}\n" + ups("a")),
    ("wan.name", "site: s\nmother: {host: 192.168.1.1, wans: [{name: {v}}]}\n" + ups("a")),
    ("uplink.name", HEAD + "uplinks:\n  - {name: {v}, host: 192.168.1.2}\n"),
    ("uplink.host", HEAD + "uplinks:\n  - {name: a, host: {v}}\n"),
    ("uplink.endpoint", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, endpoint: {v}}\n"),
    ("uplink.description", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, description: {v}}\n"),
    ("uplink.mother_zone", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, mother_zone: {v}}\n"),
    ("uplink.wan_zone", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, wan_zone: {v}}\n"),
    ("tracking.target", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tracking: {targets: [1.1.1.1, {v}]}}\n"),
    ("tracking.method", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tracking: {method: {v}}}\n"),
    ("tracking.flush", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tracking: {flush_conntrack: [{v}]}}\n"),
    ("policy.name", HEAD + ups("a") + "policies:\n  - {name: {v}, members: [a]}\n"),
    ("policy.member", HEAD + ups("a") + "policies:\n  - {name: p, members: [{v}]}\n"),
    ("policy.member.uplink", HEAD + ups("a") + "policies:\n  - {name: p, members: [{uplink: {v}}]}\n"),
    ("rule.name", HEAD + ups("a") + "rules:\n  - {name: {v}, policy: balanced}\n"),
    ("rule.policy", HEAD + ups("a") + "rules:\n  - {name: r, policy: {v}}\n"),
    ("rule.proto", HEAD + ups("a") + "rules:\n  - {name: r, proto: {v}, policy: balanced}\n"),
    ("rule.src_ip", HEAD + ups("a") + "rules:\n  - {name: r, src_ip: {v}, policy: balanced}\n"),
    ("rule.dest_ip", HEAD + ups("a") + "rules:\n  - {name: r, dest_ip: {v}, policy: balanced}\n"),
    ("rule.dest_port", HEAD + ups("a") + "rules:\n  - {name: r, proto: tcp, dest_port: {v}, policy: balanced}\n"),
    ("rule.ipset", HEAD + ups("a") + "rules:\n  - {name: r, ipset: {v}, policy: balanced}\n"),
    ("rule.src_iface", HEAD + ups("a") + "rules:\n  - {name: r, src_iface: {v}, policy: balanced}\n"),
    ("default_policy", HEAD + ups("a") + "default_policy: {v}\n"),
    ("access.host", HEAD + ups("a") + "access:\n  a: {host: {v}}\n"),
    ("access.user", HEAD + ups("a") + "access:\n  a: {user: {v}}\n"),
    ("access.key", HEAD + ups("a") + "access:\n  a: {key: {v}}\n"),
    ("access.password_env", HEAD + ups("a") + "access:\n  a: {password_env: {v}}\n"),
    ("access.password_file", HEAD + ups("a") + "access:\n  a: {password_file: {v}}\n"),
    ("access.known_hosts", HEAD + ups("a") + "access:\n  a: {known_hosts: {v}}\n"),
    ("access.jump", HEAD + ups("a") + "access:\n  a: {jump: {v}}\n"),
    ("access.ubus_url", HEAD + ups("a") + "access:\n  a: {transport: ubus, ubus_url: {v}}\n"),
    ("access.ca_file", HEAD + ups("a") + "access:\n  a: {ca_file: {v}}\n"),
]

# Characters no value may carry: each breaks a line-based reader on the router (uci batch,
# wireguard.sh's generated config, a shell) or cannot be encoded.
_BAD_TEXT = [
    ("newline", "a\nb"), ("trailing-newline", "router.lan\n"), ("nul", "a\0b"), ("soh", "a\x01b"),
    ("del", "a\x7fb"), ("nel", "a\x85b"), ("line-separator", "a\u2028b"), ("cr", "a\rb"), ("tab", "a\tb"),
]
# Shell and UCI metacharacters: refused wherever the grammar is a name, host, zone or number.
_META = [("subshell", "$(reboot)"), ("backtick", "`halt`"), ("quote", "a'b"), ("semicolon", "a; reboot")]
_FREE_TEXT = {"uplink.description", "access.key", "access.password_file", "access.known_hosts", "access.ca_file"}


def _grammar() -> list[Case]:
    out = []
    for field, tpl in _STRING_FIELDS:
        for what, value in _BAD_TEXT:
            out.append(_c(f"{field}-{what}", tpl.replace('{v}', dq(value)), "MW107"))
        out.append(_c(f"{field}-70000-chars", tpl.replace('{v}', "x" * 70000), "MW107", "MW105", "MW106"))
        if field not in _FREE_TEXT:
            for what, value in _META:
                rules = ("MW006",) if field == "tracking.target" else ("MW105", "MW106", "MW013")
                out.append(_c(f"{field}-{what}", tpl.replace('{v}', dq(value)), *rules))
    return out


def _addresses() -> list[Case]:
    host = HEAD + "uplinks:\n  - {name: a, host: {v}}\n"
    target = HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tracking: {targets: [{v}]}}\n"
    dest = HEAD + ups("a") + "rules:\n  - {name: r, dest_ip: {v}, policy: balanced}\n"
    return [
        _c("host-empty-scope", host.replace('{v}', dq("fe80::1%")), "MW105"),
        _c("host-scope-space", host.replace('{v}', dq("fe80::1%eth0 x")), "MW105"),
        _c("host-scope-subshell", host.replace('{v}', dq("fe80::1%$(reboot)")), "MW105"),
        _c("host-scope-too-long", host.replace('{v}', dq("fe80::1%" + "e" * 16)), "MW105"),
        _c("host-ipv4-scope", host.replace('{v}', dq("192.168.1.2%eth0")), "MW105"),
        _c("host-trailing-dot-dot", host.replace('{v}', "router..lan"), "MW105"),
        _c("host-label-64", host.replace('{v}', "a" * 64 + ".lan"), "MW105"),
        _c("host-leading-dash", host.replace('{v}', "-router"), "MW105"),
        _c("host-underscore", host.replace('{v}', "my_router"), "MW105"),
        _c("host-all-digits", host.replace('{v}', "1.2.3"), "MW105"),
        _c("host-octet-300", host.replace('{v}', "192.168.1.300"), "MW105"),
        _c("host-space", host.replace('{v}', dq("router lan")), "MW105"),
        _c("host-unicode", host.replace('{v}', "routér.lan"), "MW105"),
        _c("target-scope", target.replace('{v}', dq("fe80::1%eth0")), "MW006"),
        _c("target-hostname-ping", target.replace('{v}', "one.one.one.one"), "MW006"),
        _c("target-network", target.replace('{v}', dq("1.1.1.0/24")), "MW006"),
        _c("dest-scope", dest.replace('{v}', dq("fe80::1%eth0")), "MW105"),
        _c("dest-space", dest.replace('{v}', dq("10.0.0.0/8 ")), "MW105"),
        _c("dest-bad-prefix", dest.replace('{v}', dq("10.0.0.0/33")), "MW105"),
        _c("dest-v4-and-v6", HEAD + ups("a") + "rules:\n  - {name: r, src_ip: 10.0.0.1, dest_ip: '2001:db8::1', "
           "policy: balanced}\n", "MW008"),
        _c("dest-family-mismatch", HEAD + ups("a") + "rules:\n  - {name: r, family: ipv6, dest_ip: 10.0.0.0/8, "
           "policy: balanced}\n", "MW008"),
        _c("subnet-not-network", "site: s\nmother: {host: 192.168.1.1, lan: {subnet: 'fd00::/64'}}\n" + ups("a"),
           "MW105"),
    ]


def _ports() -> list[Case]:
    tpl = HEAD + ups("a") + "rules:\n  - {name: r, proto: tcp, dest_port: {v}, policy: balanced}\n"
    sixteen = ",".join(str(1000 + i) for i in range(16))
    eight_ranges = ",".join(f"{1000 + 10 * i}:{1005 + 10 * i}" for i in range(8))
    cases = [("99999", "99999"), ("65536", "65536"), ("backwards", "'2000:1000'"), ("backwards-dash", "2000-1000"),
             ("16-ports", f"'{sixteen}'"), ("8-ranges", f"'{eight_ranges}'"), ("open-end", "'80:'"),
             ("open-start", "':80'"), ("empty-item", "'80,,443'"), ("leading-space", "' 80'"),
             ("negative", "'-1'"), ("three-part", "'80:443:1'"), ("word", "http"), ("six-digits", "'100000'"),
             ("trailing-comma", "'80,'")]
    out = [_c(f"dest-port-{i}", tpl.replace('{v}', v), "MW013", "MW103", "MW108") for i, v in cases]
    out.append(_c("dest-port-hex", tpl.replace('{v}', "0x50"), "MW108"))
    out.append(_c("dest-port-no-proto", HEAD + ups("a") + "rules:\n  - {name: r, dest_port: 80, policy: balanced}\n",
                  "MW008"))
    return out


def _meaning() -> list[Case]:
    six = "tunnels: {pool6: 'fd00:254::/48'}\n"
    pool = HEAD + ups("a") + "tunnels: {pool: {v}}\n"
    pool6 = HEAD + ups("a", extra=", ipv6: true") + "tunnels: {pool6: {v}}\n"
    out = [
        _c("v6-target-on-v4-uplink", HEAD + ups("a", extra=", tracking: {targets: ['2606:4700:4700::1111']}"),
           "MW006"),
        _c("v6-targets-only-dual", HEAD + ups("a", extra=", ipv6: true, tracking: {targets: ['2620:fe::fe'], "
                                              "reliability: 1}") + six, "MW006"),
        _c("v4-target6-on-v6-wan", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan6, family: ipv6, "
           "tracking: {targets6: [1.1.1.1]}}]\n" + ups("a"), "MW006"),
        _c("v6-target-on-v4-wan", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, "
           "tracking: {targets: ['2620:fe::fe', 1.1.1.1]}}]\n" + ups("a"), "MW006"),
        _c("reliability-over-targets", HEAD + ups("a", extra=", tracking: {targets: [1.1.1.1], reliability: 2}"),
           "MW006"),
        _c("arping-dual-stack", HEAD + ups("a", extra=", ipv6: true, tracking: {method: arping}") + six, "MW006"),
        _c("policy-default", BASE + "policies:\n  - {name: default, members: [dsl]}\n", "MW011"),
        _c("policy-unreachable", BASE + "policies:\n  - {name: unreachable, members: [dsl]}\n", "MW011"),
        _c("policy-blackhole", BASE + "policies:\n  - {name: blackhole, members: [dsl]}\n", "MW011"),
        _c("policy-itself", BASE + "policies:\n  - {name: p, members: [p]}\n", "MW007"),
        _c("policy-other-policy", BASE + "policies:\n  - {name: p, members: [dsl]}\n  - {name: q, members: [p]}\n",
           "MW007"),
        _c("policy-cycle", BASE + "policies:\n  - {name: p, members: [q]}\n  - {name: q, members: [p]}\n", "MW007"),
        _c("policy-empty", BASE + "policies:\n  - {name: p, members: []}\n", "MW007"),
        _c("default-policy-missing", BASE + "default_policy: cheapest\n", "MW007"),
        _c("rule-policy-missing", BASE + "rules:\n  - {name: r, policy: nope}\n", "MW008"),
        _c("sticky-builtin", BASE + "rules:\n  - {name: r, sticky: true, policy: default}\n", "MW008"),
        _c("metric-multiple-of-10", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, metric: 10}]\n"
           + ups("a"), "MW005", line=4),
        _c("metric-wans-equal", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, metric: 5}, "
           "{name: wanb, metric: 5}]\n" + ups("a"), "MW005"),
        _c("metric-tunnel-equals-wan", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, metric: 7}]\n"
           + ups("a", extra=", tunnel: {metric: 7}"), "MW005"),
        _c("metric-index-derived", "site: s\nmother:\n  host: 192.168.1.1\n  wans: [{name: wan, metric: 40}]\n"
           "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {index: 3}}\n", "MW005"),
        _c("index-duplicate", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {index: 3}}\n"
           "  - {name: b, host: 192.168.1.3, tunnel: {index: 3}}\n", "MW004"),
        _c("index-outside-pool", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {index: 64}}\n"
           "tunnels: {pool: 10.254.0.0/24}\n", "MW004"),
        _c("pool6-63-index-5", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, ipv6: true, tunnel: {index: 5}}\n"
           "tunnels: {pool6: 'fd00::/63'}\n", "MW004"),
        _c("pool6-64-two-uplinks", HEAD + ups("a", "b", extra=", ipv6: true") + "tunnels: {pool6: 'fd00::/64'}\n",
           "MW004"),
        _c("pool6-missing", HEAD + ups("a", extra=", ipv6: true"), "MW004"),
        _c("pool-overlaps-lan", HEAD + ups("a") + "tunnels: {pool: 192.168.0.0/16}\n", "MW004"),
        _c("endpoint-in-pool", HEAD + ups("a", extra=", endpoint: 10.254.0.5"), "MW004"),
        _c("pool-too-small", HEAD + ups("a", "b") + "tunnels: {pool: 10.254.0.0/30}\n", "MW004"),
        _c("pool-host-bits", HEAD + ups("a") + "tunnels: {pool: 10.254.0.1/16}\n", "MW105"),
        _c("jump-self", HEAD + ups("a") + "access:\n  a: {jump: a}\n", "MW009"),
        _c("jump-cycle", HEAD + ups("a", "b") + "access:\n  a: {jump: b}\n  b: {jump: a}\n", "MW009"),
        _c("jump-unknown", HEAD + ups("a") + "access:\n  a: {jump: nobody}\n", "MW009"),
        _c("instant-needs-ssh", BASE + "tracking: {profile: instant}\naccess:\n  mother: {transport: ubus}\n",
           "MW009", line=12),
        _c("access-unknown-router", HEAD + ups("a") + "access:\n  modem: {user: root}\n", "MW009"),
        _c("name-too-long-for-mwan3", HEAD + ups("abcdefghijk"), "MW001"),
        _c("name-too-long-dual", HEAD + ups("abcdefghij", extra=", ipv6: true") + six, "MW001"),
        _c("policy-name-too-long", BASE + "policies:\n  - {name: abcdefghijklm, members: [dsl]}\n", "MW001"),
        _c("too-many-uplinks", HEAD + "tunnels: {pool: 10.0.0.0/16}\nuplinks:\n" + "".join(
            f"  - {{name: u{i}, host: 10.1.{i // 200}.{i % 200 + 1}}}\n" for i in range(61)), "MW003"),
    ]
    for what, net in [("loopback", "127.0.0.0/8"), ("everything", "0.0.0.0/0"), ("this-net", "0.0.0.0/16"),
                      ("multicast", "224.0.0.0/24"), ("link-local", "169.254.0.0/16"), ("reserved", "240.0.0.0/8"),
                      ("broadcast", "255.255.255.252/30"), ("slash-31", "10.0.0.0/31"), ("slash-32", "10.0.0.0/32")]:
        out.append(_c(f"pool-{what}", pool.replace('{v}', net), "MW012"))
    for what, net in [("multicast", "'ff00::/64'"), ("link-local", "'fe80::/64'"), ("everything", "'::/0'"),
                      ("loopback", "'::1/128'"), ("top", "'ffff:ffff:ffff:ff00::/56'"), ("slash-65", "'fd00::/65'"),
                      ("mapped", "'::ffff:0:0/96'")]:
        out.append(_c(f"pool6-{what}", pool6.replace('{v}', net), "MW012"))
    for what, v in [("hex", "0x10"), ("octal", "0o17"), ("leading-zero", "007"), ("plus", "+5"), ("tagged", "!!int 5")]:
        out.append(_c(f"int-name-{what}", HEAD + f"uplinks:\n  - {{name: {v}, host: 192.168.1.2}}\n", "MW108"))
    return out


def _structure() -> list[Case]:
    a = ups("a")
    cases = [
        _c("date-invalid-weight", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: 2024-02-30}\n", "MW103"),
        _c("date-name", HEAD + "uplinks:\n  - {name: 2024-02-30, host: 192.168.1.2}\n", "MW105"),
        _c("set-on-scalar", "site: s\nmother: !!set 5\n" + a, "MW100", line=2),
        _c("set-on-mapping", "site: s\nmother: !!set {host: 192.168.1.1}\n" + a, "MW100", line=2),
        _c("int-0x", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: !!int 0x}\n", "MW100", line=6),
        _c("bool-maybe", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, ipv6: !!bool maybe}\n", "MW100", line=6),
        _c("float-word", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: !!float heavy}\n", "MW100"),
        _c("null-tag-value", HEAD + "uplinks:\n  - {name: !!null a, host: 192.168.1.2}\n", "MW100"),
        _c("binary-tag", HEAD + "uplinks:\n  - {name: !!binary YQ==, host: 192.168.1.2}\n", "MW100"),
        _c("timestamp-tag", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, description: !!timestamp 2024-01-01}\n",
           "MW100"),
        _c("python-tag", HEAD + "uplinks:\n  - {name: !!python/object:os.system a, host: 192.168.1.2}\n", "MW100"),
        _c("local-tag", HEAD + "uplinks:\n  - {name: !secret a, host: 192.168.1.2}\n", "MW100"),
        _c("omap-tag", "site: s\nmother: !!omap [{host: 192.168.1.1}]\n" + a, "MW100"),
        _c("seq-as-key", BASE + "? [a, b]\n: c\n", "MW100", line=10),
        _c("map-as-key", BASE + "? {a: b}\n: c\n", "MW100", line=10),
        _c("nested-300-flow", "site: s\nx: " + "[" * 300 + "]" * 300 + "\n", "MW100", line=2),
        _c("nested-300-maps", "site: s\nx: " + "{a: " * 300 + "1" + "}" * 300 + "\n", "MW100", line=2),
        _c("nested-100000", "site: s\nx: " + "[" * 100000 + "]" * 100000 + "\n", "MW100", line=2),
        _c("nested-block-80", "site: s\nx:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(80))
           + "  " * 81 + "v\n", "MW100"),
        _c("duplicate-key", BASE + "site: again\n", "MW100", line=10),
        _c("duplicate-nested-key", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, host: 192.168.1.3}\n", "MW100"),
        _c("two-documents", BASE + "---\nsite: b\n", "MW100", line=10),
        _c("undefined-alias", BASE + "tracking: *nothing\n", "MW100", line=10),
        _c("alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join('*' + chr(97 + i) for _ in range(10))}]\n" for i in range(7))
           + "site: s\n", "MW100"),
        _c("recursive-alias-targets", HEAD + "uplinks:\n  - name: a\n    host: 192.168.1.2\n"
           "    tracking: {targets: &t [1.1.1.1, *t]}\n", "MW103"),
        _c("merge-scalar", HEAD + "uplinks:\n  - {<<: 5, name: a, host: 192.168.1.2}\n", "MW100"),
        _c("merge-unknown-key", "base: &b {weigth: 2}\n" + HEAD
           + "uplinks:\n  - {<<: *b, name: a, host: 192.168.1.2}\n", "MW101"),
        _c("tab-indent", "site: s\nmother:\n\thost: 192.168.1.1\n" + a, "MW100", line=3),
        _c("unclosed-flow", "site: s\nmother: {host: 192.168.1.1\n" + a, "MW100"),
        _c("unclosed-quote", "site: \"s\nmother: {host: 192.168.1.1}\n" + a, "MW100"),
        _c("bad-escape", "site: \"\\q\"\nmother: {host: 192.168.1.1}\n" + a, "MW100", line=1),
        _c("surrogate-escape", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, description: \"x\\ud800y\"}\n",
           "MW100", "MW107"),
        _c("empty-file", "", "MW102"),
        _c("only-comment", "# nothing\n", "MW102"),
        _c("top-level-list", "- site: s\n", "MW100", line=1),
        _c("top-level-scalar", "hello\n", "MW100", line=1),
        _c("uplinks-scalar", HEAD + "uplinks: 5\n", "MW103", line=5),
        _c("uplinks-mapping", HEAD + "uplinks: {a: 1}\n", "MW103", line=5),
        _c("uplinks-empty", HEAD + "uplinks: []\n", "MW102"),
        _c("uplink-string", HEAD + "uplinks: [dsl]\n", "MW103"),
        _c("uplink-no-host", HEAD + "uplinks: [{name: a}]\n", "MW102"),
        _c("uplink-no-name", HEAD + "uplinks: [{host: 192.168.1.2}]\n", "MW102"),
        _c("uplink-null-name", HEAD + "uplinks:\n  - {name: , host: 192.168.1.2}\n", "MW102"),
        _c("mother-list", "site: s\nmother: []\n" + a, "MW103", line=2),
        _c("mother-missing", "site: s\n" + a, "MW102"),
        _c("tunnels-5", BASE + "tunnels: 5\n", "MW103", line=10),
        _c("tunnels-true", BASE + "tunnels: true\n", "MW103", line=10),
        _c("tunnels-list", BASE + "tunnels: [pool]\n", "MW103", line=10),
        _c("tracking-5", BASE + "tracking: 5\n", "MW103"),
        _c("tracking-list", BASE + "tracking: [1]\n", "MW103"),
        _c("targets-mapping", BASE + "tracking: {targets: {a: 1}}\n", "MW103"),
        _c("targets-nested-list", BASE + "tracking: {targets: [[1.1.1.1]]}\n", "MW103"),
        _c("policies-mapping", BASE + "policies: {a: 1}\n", "MW103"),
        _c("policy-string", BASE + "policies: [p]\n", "MW103"),
        _c("members-string", BASE + "policies:\n  - {name: p, members: dsl}\n", "MW103"),
        _c("member-number", BASE + "policies:\n  - {name: p, members: [[1]]}\n", "MW103"),
        _c("member-no-uplink", BASE + "policies:\n  - {name: p, members: [{tier: 1}]}\n", "MW102"),
        _c("rules-5", BASE + "rules: 5\n", "MW103"),
        _c("access-list", BASE + "access: []\n", "MW103"),
        _c("access-entry-5", BASE + "access:\n  dsl: 5\n", "MW103"),
        _c("wans-5", "site: s\nmother: {host: 192.168.1.1, wans: 5}\n" + a, "MW103"),
        _c("wan-number", "site: s\nmother: {host: 192.168.1.1, wans: [5]}\n" + a, "MW103", "MW108"),
        _c("lan-5", "site: s\nmother: {host: 192.168.1.1, lan: 5}\n" + a, "MW103"),
        _c("tunnel-5", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: 5}\n", "MW103"),
        _c("weight-float", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: 1.5}\n", "MW103"),
        _c("weight-huge", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: " + "9" * 400 + "}\n", "MW104"),
        _c("weight-inf", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: .inf}\n", "MW103"),
        _c("weight-nan", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: .nan}\n", "MW103"),
        _c("weight-bool", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, weight: true}\n", "MW103"),
        _c("port-negative", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {port: -1}}\n", "MW104"),
        _c("port-99999", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {port: 99999}}\n", "MW104"),
        _c("ipv6-yes", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, ipv6: yes}\n", "MW103"),
        _c("unknown-top-key", BASE + "uplink: []\n", "MW101", line=10),
        _c("unknown-key-unicode", BASE + "sïte: x\n", "MW101"),
        _c("unknown-key-control", BASE + "\"a\\x01b\": 1\n", "MW101"),
        _c("key-70000", BASE + "x" * 70000 + ": 1\n", "MW101", "MW100"),
        _c("password-file-nul", BASE + "access:\n  dsl: {password_file: \"/etc/x\\0y\"}\n", "MW107", line=11),
        _c("confirm-timeout-short", BASE + "access:\n  dsl: {confirm_timeout: 5}\n", "MW104"),
        _c("fingerprint-bad", BASE + "access:\n  dsl: {transport: ubus, tls_fingerprint: 'md5:00'}\n", "MW105"),
        _c("transport-bad", BASE + "access:\n  dsl: {transport: telnet}\n", "MW106"),
        _c("profile-bad", BASE + "tracking: {profile: quick}\n", "MW106"),
        _c("family-bad", BASE + "rules:\n  - {name: r, family: ipv5, policy: balanced}\n", "MW106"),
        _c("last-resort-bad", BASE + "policies:\n  - {name: p, members: [dsl], last_resort: drop}\n", "MW106"),
        _c("mtu-small", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tunnel: {mtu: 576}}\n", "MW104"),
        _c("tier-257", HEAD + "uplinks:\n  - {name: a, host: 192.168.1.2, tier: 257}\n", "MW104"),
    ]
    return cases


def corpus() -> list[Case]:
    cases = _collisions() + _grammar() + _addresses() + _ports() + _meaning() + _structure()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    return cases


NOT_UTF8 = b"site: s\nmother: {host: 192.168.1.1}\nuplinks:\n  - {name: a, host: 192.168.1.2, description: \xff\xfe}\n"
