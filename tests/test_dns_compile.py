"""`dns:`: what validate refuses, what compile writes into mwan3, what a plan does to dhcp, and
how `status`'s dns probe is read (the probe itself runs in tests/test_dns_netns.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mwanctl.compile import dns
from mwanctl.compile.mwan3 import member_name
from mwanctl.dnsview import PROBE_NAME, parse_probe
from mwanctl.errors import TopologyError
from mwanctl.plan import plan_router
from mwanctl.site import prepare
from mwanctl.topology import parse_topology
from mwanctl.topology.load import diagnose_text
from mwanctl.transports.base import RouterState
from mwanctl.uci.diff import apply_ops
from mwanctl.uci.parse import parse
from mwanctl.uci.render import export

HERE = Path(__file__).parent
REPO = HERE.parent
STOCKLIKE = (HERE / "data" / "dhcp" / "stocklike").read_text()
AFTER = HERE / "data" / "dhcp" / "stocklike.after-dns"
BASE = """site: x
mother: {host: 192.0.2.1}
uplinks:
  - {name: a, host: 192.0.2.2}
  - {name: b, host: 192.0.2.3, weight: 2}
  - {name: c, host: 192.0.2.4, tier: 2}
"""


def _errors(text: str) -> list[tuple[str, str, str]]:
    _, diags = diagnose_text(text)
    return [(d.field, d.rule or "", d.message) for d in diags if d.severity == "error"]


def test_defaults_and_absence() -> None:
    assert parse_topology(BASE).dns is None
    d = parse_topology(BASE + "dns: {}\n").dns
    assert d is not None and d.servers == ("1.1.1.1", "9.9.9.9") and d.policy == "balanced"
    d = parse_topology(BASE + "default_policy: mine\npolicies: [{name: mine, members: [a, b]}]\ndns: {}\n").dns
    assert d is not None and d.policy == "mine"


@pytest.mark.parametrize("body,field,rule,words", [
    ("dns: {servers: [dns.example]}", "dns.servers", "MW105", "not an IP address"),
    ("dns: {servers: [1.1.1.1, 1.1.1.1]}", "dns.servers", "MW002", "listed twice"),
    ("dns: {servers: [0.0.0.0]}", "dns.servers", "MW105", "cannot be a DNS server"),
    ("dns: {servers: []}", "dns.servers", "MW102", "empty"),
    ("dns: {servers: ['2620:fe::fe']}", "dns.servers", "MW008", "no uplink or own WAN carries IPv6"),
    ("dns: {policy: nope}", "dns.policy", "MW007", "no policy `nope`"),
    ("dns: {policy: default}", "dns.policy", "MW007", "no policy `default`"),
    ("dns: {servers: 1.1.1.1, extra: 1}", "dns.extra", "MW101", ""),
])
def test_refused(body: str, field: str, rule: str, words: str) -> None:
    errs = _errors(BASE + body + "\n")
    assert any(f == field and r == rule and words in m for f, r, m in errs), errs


def test_a_user_rule_named_like_a_dns_rule_is_a_clash() -> None:
    errs = _errors(BASE + "dns: {}\nrules: [{name: dns1, proto: udp, policy: balanced}]\n")
    assert [r for _, r, _ in errs] == ["MW010", "MW010"], errs
    assert all("mw_dns1" in m for _, _, m in errs)


def test_each_server_prefers_another_uplink_within_its_tier() -> None:
    t = parse_topology(BASE + "dns: {servers: [9.9.9.9, 1.1.1.1, 8.8.8.8]}\n")
    pols = dns.policies(t, t.dns)
    order = [[(m.target, m.tier, m.weight) for m in p.members] for p in pols]
    assert order == [[("a", 1, 1), ("b", 2, 2), ("c", 3, 1)],
                     [("b", 1, 2), ("a", 2, 1), ("c", 3, 1)],
                     [("a", 1, 1), ("b", 2, 2), ("c", 3, 1)]]
    assert [(r.name, r.policy, r.dest_ip, r.family) for r in dns.rules(t.dns)] == [
        ("dns1", "dns1_p", "9.9.9.9", "ipv4"), ("dns2", "dns2_p", "1.1.1.1", "ipv4"),
        ("dns3", "dns3_p", "8.8.8.8", "ipv4")]


def test_mwan3_sections(tmp_path: Path) -> None:
    t = parse_topology(BASE + "dns: {}\nrules: [{name: web, proto: tcp, dest_port: '443', policy: balanced}]\n")
    compiled, _ = prepare(t, tmp_path / "state")
    mother = compiled.routers["mother"]
    secs = mother.sections["mwan3"]
    rules = [s.name for s in secs if s.type == "rule"]
    assert rules == ["mw_dns1", "mw_dns2", "mw_web", "mw_default_v4"]     # before the user's
    pol = {s.name: s for s in secs if s.type == "policy"}
    assert pol["mw_dns2_p"].options["use_member"] == ("mw_b_m1_w2", "mw_a_m2_w1", "mw_c_m3_w1")
    members = {s.name for s in secs if s.type == "member"}
    for p in pol.values():
        assert set(p.options["use_member"]) <= members          # every member it names exists
    assert member_name("mw_a", 2, 1) in members
    assert "dhcp" in mother.packages and mother.sections["dhcp"] == [] and mother.dns == t.dns
    assert "dhcp" not in prepare(parse_topology(BASE), tmp_path / "s2")[0].routers["mother"].packages


def _plan(text: str, dhcp: str | None, tmp_path: Path):
    compiled, _ = prepare(parse_topology(text), tmp_path / "state")
    m = compiled.routers["mother"]
    state = RouterState(packages={p: parse("", p) for p in m.packages})
    state.packages["dhcp"] = parse(dhcp, "dhcp") if dhcp is not None else None
    return m, plan_router(m, state)


def test_plan_sets_the_dnsmasq_section_and_keeps_domain_forwards(tmp_path: Path) -> None:
    m, plan = _plan(BASE + "dns: {}\n", STOCKLIKE, tmp_path)
    assert plan.problems == [] and plan.apply is not None
    ops = plan.packages["dhcp"].ops
    assert {(o.kind, o.option) for o in ops} == {("set", "noresolv"), ("set", "localuse"),
                                                 ("set", "allservers"), ("set_list", "server")}
    assert all(re.fullmatch(r"cfg[0-9a-f]{6}", o.section or "") for o in ops)   # the anonymous section
    after = export(plan.packages["dhcp"].after)
    if os.environ.get("MWANCTL_UPDATE_GOLDEN"):
        AFTER.write_text(after)
    assert after == AFTER.read_text()
    sec = plan.packages["dhcp"].after.of_type("dnsmasq")[0]
    assert sec.options["server"] == ("/mycompany.lan/192.168.1.53", "1.1.1.1", "9.9.9.9")   # 8.8.8.8 went
    assert "dnsmasq" in plan.apply.reload
    assert plan.apply.reload.index("mwan3") < plan.apply.reload.index("dnsmasq")
    # the sections mwanctl does not own are untouched, byte for byte
    assert after.split("config dhcp 'lan'")[1].rstrip() == STOCKLIKE.split("config dhcp 'lan'")[1].rstrip()
    # applied: nothing more to do
    state = RouterState(packages={p: parse("", p) for p in m.packages})
    state.packages["dhcp"] = plan.packages["dhcp"].after
    assert not plan_router(m, state, packages_=("dhcp",)).changed


def test_plan_without_dnsmasq_is_a_problem(tmp_path: Path) -> None:
    _, plan = _plan(BASE + "dns: {}\n", "config dhcp 'lan'\n\toption interface 'lan'\n", tmp_path)
    assert any("needs dnsmasq" in p for p in plan.problems)
    _, plan = _plan(BASE + "dns: {}\n", None, tmp_path)
    assert any("needs dnsmasq" in p for p in plan.problems)


def test_ops_are_uci_batch_lines_uci_accepts() -> None:
    t = parse_topology(BASE + "dns: {servers: [9.9.9.9]}\n")
    before = parse(STOCKLIKE, "dhcp")
    ops, problems = dns.dnsmasq_ops(before, t.dns, "mother")
    after = apply_ops(before, "dhcp", ops)      # the libuci-faithful engine runs the batch lines
    assert problems == [] and after.of_type("dnsmasq")[0].options["allservers"] == "1"


# --- the status probe's text --------------------------------------------------------------

PROBE_OK = """server 1.1.1.1
server 9.9.9.9
noresolv
rule mw_dns1 1.1.1.1 mw_dns1_p
rule mw_dns2 9.9.9.9/32 mw_dns2_p
rule mw_default_v4 0.0.0.0/0 mw_balanced
answer 1.1.1.1 ok 3
answer 9.9.9.9 fail 300
"""


def test_probe_view() -> None:
    v = parse_probe(PROBE_OK)
    assert [(u.server, u.answered, u.ms, u.rule, u.policy) for u in v.upstreams] == [
        ("1.1.1.1", True, 30, "mw_dns1", "mw_dns1_p"), ("9.9.9.9", False, None, "mw_dns2", "mw_dns2_p")]
    assert v.noresolv and v.problems == ()


def test_probe_problems() -> None:
    text = ("server 1.1.1.1\nresolv 192.168.100.1\nrule mw_x 1.1.1.1 default\n"
            "answer 1.1.1.1 fail 300\nanswer 192.168.100.1 fail 300\n")
    v = parse_probe(text)
    assert [u.server for u in v.upstreams] == ["1.1.1.1", "192.168.100.1"]
    joined = "\n".join(v.problems)
    assert "noresolv is off" in joined
    assert "mw_x sends 1.1.1.1 to `default`" in joined
    assert "forwards to 192.168.100.1, but no mwan3 rule" in joined
    assert "no upstream DNS server answers" in joined


def test_probe_asks_the_documented_name() -> None:
    q = (REPO / "mwanctl" / "remote" / "query.sh").read_text()
    assert f"nslookup -type=a {PROBE_NAME} " in q


def test_dns_needs_no_ssh(tmp_path: Path) -> None:
    """Plain UCI options and mwan3 sections: any transport carries them."""
    t = parse_topology(BASE + "dns: {}\naccess:\n  mother: {transport: ubus}\n")
    compiled, _ = prepare(t, tmp_path / "state")
    assert "dhcp" in compiled.routers["mother"].packages


def test_a_bad_server_is_refused_by_load() -> None:
    with pytest.raises(TopologyError):
        parse_topology(BASE + "dns: {servers: [nope]}\n")
