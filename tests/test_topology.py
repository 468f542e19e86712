"""Topology loading and validation: every problem reported at once, each with file:line:col."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.errors import TopologyError
from mwanctl.topology.load import diagnose, parse_topology

HERE = Path(__file__).parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
EXAMPLES = sorted((HERE.parent / "examples").glob("*.yaml"))
UPDATE = bool(os.environ.get("MWANCTL_UPDATE_GOLDEN"))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_topology_reports_expected_diagnostics(path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE.parent)
    code = main(["validate", str(path.relative_to(HERE.parent))])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    expected = path.with_suffix(".err")
    if UPDATE:
        expected.write_text(err)
    assert err == expected.read_text()
    # every error line names file:line:col and a field
    for line in err.splitlines()[:-1]:
        assert line.startswith(str(path.relative_to(HERE.parent)) + ":"), line


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid(path: Path) -> None:
    topo, diags = diagnose(path)
    assert topo is not None, [str(d) for d in diags]
    assert not [d for d in diags if d.severity == "error"]


def test_minimal_topology_gets_defaults() -> None:
    t = parse_topology("site: home\nmother: {host: 192.168.1.1}\nuplinks:\n"
                       "  - {name: dsl, host: 192.168.1.2, weight: 3}\n  - {name: lte, host: 192.168.1.3}\n")
    assert [u.iface for u in t.uplinks] == ["mw_dsl", "mw_lte"]
    assert t.uplinks[1].weight == 1 and t.uplinks[0].tier == 1
    assert str(t.pool.ipv4) == "10.254.0.0/16"
    assert t.uplinks[0].tunnel.port == 51820 and t.uplinks[0].tunnel.mtu == 1420
    assert t.uplinks[0].tracking.profile == "balanced" and t.uplinks[0].tracking.targets == ("1.1.1.1", "9.9.9.9")
    assert t.default_policy == "balanced"
    assert [m.target for m in t.policy("balanced").members] == ["dsl", "lte"]
    assert t.routers == ["dsl", "lte", "mother"]   # uplinks first, mother last


def test_more_uplinks_than_mwan3_can_mark() -> None:
    ups = "".join(f"  - {{name: u{i}, host: 10.1.{i // 200}.{i % 200 + 1}}}\n" for i in range(61))
    with pytest.raises(TopologyError) as exc:
        parse_topology(f"site: big\nmother: {{host: 10.0.0.1}}\nuplinks:\n{ups}")
    msgs = [d.message for d in exc.value.diagnostics]
    assert any("61 mwan3 interfaces" in m and "60" in m for m in msgs), msgs


def test_sixty_uplinks_are_allowed() -> None:
    ups = "".join(f"  - {{name: u{i}, host: 10.1.{i // 200}.{i % 200 + 1}}}\n" for i in range(60))
    t = parse_topology(f"site: big\nmother: {{host: 10.0.0.1}}\nuplinks:\n{ups}")
    assert len(t.uplinks) == 60


def test_hostile_description_is_accepted_verbatim() -> None:
    desc = "it's $(reboot) `halt`; rm -rf / \"quoted\" | & > <"
    t = parse_topology("site: home\nmother: {host: 192.168.1.1}\nuplinks:\n"
                       f"  - name: dsl\n    host: 192.168.1.2\n    description: '{desc.replace(chr(39), chr(39) * 2)}'\n")
    assert t.uplinks[0].description == desc


def test_tracking_warning_does_not_fail_validation(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("site: home\nmother: {host: 192.168.1.1}\nuplinks:\n  - name: dsl\n    host: 192.168.1.2\n"
                 "    tracking: {targets: [1.1.1.1]}\n")
    assert main(["validate", str(p)]) == 0
    out, err = capsys.readouterr()
    assert "warning: uplinks.dsl.tracking: only one tracking target" in err
    # the detection bounds are shown per uplink (balanced: 3 rounds of one 2 s probe + 2 waits of 2 s at
    # best; at worst also one interval, per-round overhead and the hotplug: see tracking.timing)
    assert "dsl: tier 1, weight 1, tracking balanced (1 target(s)): outage noticed within 10 s-16.7 s" in out


def test_missing_file_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read topology file" in err and "Traceback" not in err


def _keys(topo, slots):
    from mwanctl.keys import KeyPair, TunnelKeys
    pair = KeyPair("cHJpdmF0ZS1tb3RoZXItMDAwMDAwMDAwMDAwMDAwMDA=", "pub", "2026-01-01T00:00:00Z")
    return {u.name: TunnelKeys(slots[u.name], pair, pair) for u in topo.uplinks}


def test_pools_at_the_top_of_their_range_render_inside_them() -> None:
    """The last slots of a pool at the top of usable space stay inside the pool (no overflow,
    nothing outside it), and the IPv6 pool bounds the slots too (a /63 holds two)."""
    import ipaddress

    from mwanctl.compile import compile_site
    from mwanctl.site import pool_slots
    text = ("site: top\nmother: {host: 192.168.1.1}\ntunnels: {pool: 223.255.255.248/29, pool6: 'fdff:ffff:ffff:fffe::/63'}\n"
            "uplinks:\n  - {name: a, host: 192.168.1.2, ipv6: true, tunnel: {index: 1}}\n"
            "  - {name: b, host: 192.168.1.3, ipv6: true}\n")
    topo = parse_topology(text)
    assert pool_slots(topo) == 2
    compiled = compile_site(topo, _keys(topo, {"a": 1, "b": 0}))
    net = {s.name: s for s in compiled.routers["mother"].sections["network"]}
    for name in ("mw_a", "mw_b"):
        v4 = ipaddress.ip_interface(net[name].options["addresses"][0])
        assert v4.ip in topo.pool.ipv4
        v6 = ipaddress.ip_interface(net[name + "6"].options["ip6addr"][0])
        assert v6.ip in topo.pool.ipv6
    with pytest.raises(TopologyError) as exc:
        parse_topology(text.replace("index: 1", "index: 5"))
    assert [d.rule for d in exc.value.diagnostics] == ["MW004"]


def test_a_template_override_that_makes_names_clash_is_refused_at_compile_with_locations(tmp_path: Path) -> None:
    """The section-name rule (MW010) is one function: validation runs it on the built-in blueprints,
    compile_site again on the ones in use, so an override cannot slip a clash past it."""
    from mwanctl.compile import compile_site
    from mwanctl.compile.templates import Templates
    d = tmp_path / "tpl"
    d.mkdir()
    base = (HERE.parent / "uci_templates" / "network-mother-tunnel6.uci").read_text()
    (d / "network-mother-tunnel6.uci").write_text(base.replace("config interface ${iface6}",
                                                               "config interface ${iface}"))
    topo = parse_topology("site: s\nmother: {host: 192.168.1.1}\ntunnels: {pool6: 'fd00::/48'}\n"
                          "uplinks:\n  - {name: a, host: 192.168.1.2, ipv6: true}\n", "t.yaml")
    with pytest.raises(TopologyError) as exc:
        compile_site(topo, _keys(topo, {"a": 0}), Templates(d))
    assert {d.rule for d in exc.value.diagnostics} == {"MW010"}
    assert all(d.location is not None and d.location.line == 5 for d in exc.value.diagnostics)


def test_port_ranges_written_with_a_dash_reach_mwan3_as_iptables_ranges() -> None:
    """`80-443` (fw4's spelling) means the range; mwan3 hands ports to iptables' multiport, which
    reads `80:443`, so that is what is written."""
    from mwanctl.compile import compile_site
    topo = parse_topology("site: s\nmother: {host: 192.168.1.1}\nuplinks:\n  - {name: a, host: 192.168.1.2}\n"
                          "rules:\n  - {name: web, proto: tcp, dest_port: '80-443,8000:8080,22', src_port: 1024-65535,"
                          " policy: balanced}\n")
    assert topo.rules[0].dest_port == "80:443,8000:8080,22"
    rule = next(s for s in compile_site(topo, _keys(topo, {"a": 0})).routers["mother"].sections["mwan3"]
                if s.name == "mw_web")
    assert rule.options["dest_port"] == "80:443,8000:8080,22"
    assert rule.options["src_port"] == "1024:65535"
