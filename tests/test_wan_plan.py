"""Planning a router whose WAN mwanctl owns: the section is made exactly what the topology says,
the plan says mwanctl owns it, secrets never show, a protocol netifd lacks blocks the router, and
a router without a `wan:` block keeps its WAN section untouched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mwanctl.compile import Compiled, RouterConfig
from mwanctl.compile.templates import Templates
from mwanctl.compile.wan import wan_sections
from mwanctl.errors import Location, TopologyError
from mwanctl.plan import describe, plan_router
from mwanctl.site import prepare
from mwanctl.topology.load import load_topology
from mwanctl.topology.model import SecretRef, Wan
from mwanctl.transports.base import RouterState
from mwanctl.uci.parse import parse

ROOT = Path(__file__).resolve().parents[1]
ROUTER_NETWORK = """
config interface 'loopback'
	option device 'lo'
	option proto 'static'
	option ipaddr '127.0.0.1'
	option netmask '255.0.0.0'

config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'
	option hostname 'old'

config interface 'wan6'
	option device '@wan'
	option proto 'dhcpv6'
"""
LOC = Location("site.yaml", 14, 14)
PPPOE = Wan(proto="pppoe", device="eth0.7", username="user@isp",
            password=SecretRef(env="DSL_PW", path="uplinks.dsl.wan.password_env"), loc=LOC)
HANDLERS = {"stock": json.dumps({n: {} for n in ("static", "dhcp", "dhcpv6", "ppp", "pppoe", "wireguard")}),
            "no-pppoe": json.dumps({n: {} for n in ("static", "dhcp", "ppp", "wireguard")})}


def _cfg(wan: Wan | None, secrets: dict[str, str] | None = None) -> RouterConfig:
    secs = wan_sections(Templates(), wan, secrets or {}) if wan is not None else []
    return RouterConfig("dsl", "uplink", "192.168.1.2", {"network": secs, "firewall": []},
                        wan=("dsl", wan) if wan is not None else None)


def _state(handlers: str | None = "stock") -> RouterState:
    extra = {"proto_handlers": HANDLERS[handlers]} if handlers else {}
    return RouterState({"network": parse(ROUTER_NETWORK, "network"), "firewall": parse("", "firewall")},
                       extra=extra)


def test_the_wan_section_becomes_exactly_the_topologys() -> None:
    plan = plan_router(_cfg(PPPOE, {"password": "hunter2 x"}), _state())
    assert plan.problems == [] and plan.changed
    after = plan.packages["network"].after
    wan = after.get("wan")
    assert wan is not None and wan.options == {"proto": "pppoe", "device": "eth0.7", "username": "user@isp",
                                               "password": "hunter2 x"}
    # the other sections are byte for byte what they were
    before = plan.packages["network"].before
    for name in ("loopback", "wan6"):
        assert after.get(name) == before.get(name)
    assert any("mwanctl owns network.wan on dsl (from uplinks.dsl.wan, proto pppoe)" in n for n in plan.notes)
    shown = "\n".join(describe(plan))
    assert "~ wan (interface)" in shown and "password: (unset) -> <hidden>" in shown
    assert "hunter2" not in shown and "hunter2" not in "\n".join(plan.notes)
    # applying it again is a no-op, and says nothing about ownership
    again = RouterState({"network": after, "firewall": parse("", "firewall")},
                        extra={"proto_handlers": HANDLERS["stock"]})
    replan = plan_router(_cfg(PPPOE, {"password": "hunter2 x"}), again)
    assert not replan.changed and replan.notes == []


def test_without_a_wan_block_the_wan_section_is_never_touched() -> None:
    plan = plan_router(_cfg(None), _state(None))
    assert not plan.packages["network"].ops
    assert plan.notes == [] and plan.problems == []


def test_a_protocol_netifd_lacks_blocks_the_router() -> None:
    plan = plan_router(_cfg(PPPOE, {"password": "pw"}), _state("no-pppoe"))
    [problem] = plan.problems
    assert problem.startswith("site.yaml:14:14: uplinks.dsl.wan.proto: netifd on dsl has no `pppoe`")
    assert "opkg install ppp ppp-mod-pppoe" in problem and problem.endswith("[MW022]")


def test_an_unanswered_question_is_a_warning_only() -> None:
    state = _state(None)
    state.extra["proto_handlers"] = "ERROR: ubus: Access denied"
    plan = plan_router(_cfg(PPPOE, {"password": "pw"}), state)
    assert plan.problems == []
    [warning] = [n for n in plan.notes if "MW022" in n]
    assert "warning: uplinks.dsl.wan.proto: could not ask netifd on dsl" in warning
    assert "Access denied" in warning and "ppp and ppp-mod-pppoe" in warning


def test_an_unchanged_section_with_a_missing_handler_does_not_block_the_rest() -> None:
    plan = plan_router(_cfg(PPPOE, {"password": "pw"}), _state("stock"))
    settled = RouterState({"network": plan.packages["network"].after, "firewall": parse("", "firewall")},
                          extra={"proto_handlers": HANDLERS["no-pppoe"]})
    replan = plan_router(_cfg(PPPOE, {"password": "pw"}), settled)
    assert replan.problems == [] and any("warning:" in n and "MW022" in n for n in replan.notes)


def test_dhcp_and_static_need_no_handler_question() -> None:
    plan = plan_router(_cfg(Wan(proto="static", device="eth1")), _state(None))
    assert plan.problems == [] and not any("MW022" in n for n in plan.notes)


# --- the same through the compiler -------------------------------------------------------------------

def _compiled_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Compiled:
    example = ROOT / "examples" / "pppoe-lte.yaml"
    monkeypatch.setenv("DSL_PASSWORD", "pw of dsl")
    monkeypatch.setenv("LTE_PIN", "1234")
    topo = load_topology(example)
    state = tmp_path / "state" / topo.site
    state.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "golden" / example.stem / "state.json", state / "state.json")
    os.chmod(state / "state.json", 0o600)
    compiled, _ = prepare(topo, tmp_path / "state")
    return compiled


def test_compiled_site_owns_exactly_the_wans_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _compiled_example(tmp_path, monkeypatch)
    dsl, lte, cable = (compiled.routers[n] for n in ("dsl", "lte", "cable"))
    assert dsl.wan is not None and dsl.wan[1].proto == "pppoe" and lte.wan is not None and cable.wan is None
    assert [s.name for s in cable.sections["network"]] == ["mw_cable", "mw_cable_peer"]
    # the cable router's own WAN stays byte for byte; the dsl router's becomes the topology's
    for router, changed in ((cable, False), (dsl, True)):
        plan = plan_router(router, _state())
        before, after = plan.packages["network"].before.get("wan"), plan.packages["network"].after.get("wan")
        assert (before != after) == changed, router.name
        assert any(op.section == "wan" for op in plan.packages["network"].ops) == changed
    # the derived tunnel MTU reached both ends of dsl's tunnel
    mother = compiled.routers["mother"].sections["network"]
    assert [s.options["mtu"] for s in mother if s.name in ("mw_dsl", "mw_lte", "mw_cable")] == ["1412", "1350", "1420"]


def test_secrets_missing_stop_the_compile_with_their_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSL_PASSWORD", raising=False)
    monkeypatch.delenv("LTE_PIN", raising=False)
    topo = load_topology(ROOT / "examples" / "pppoe-lte.yaml")
    with pytest.raises(TopologyError) as e:
        prepare(topo, tmp_path / "state")
    assert [str(d) for d in e.value.diagnostics] == [
        f"{topo.file}:19:21: uplinks.dsl.wan.password_env: environment variable DSL_PASSWORD is not set [MW023]",
        f"{topo.file}:27:16: uplinks.lte.wan.pin_env: environment variable LTE_PIN is not set [MW023]"]


def test_a_wan_interface_outside_the_wan_zone_is_warned_about(tmp_path: Path) -> None:
    """wan-dhcp-static's `fiber` uplink names its WAN interface `fiber`: OpenWrt's stock `wan`
    zone lists only `wan` and `wan6`, so the tunnel's traffic would not be masqueraded out of it."""
    topo = load_topology(ROOT / "tests" / "topologies" / "wan-dhcp-static.yaml")
    state = tmp_path / "state" / topo.site
    state.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "golden" / "wan-dhcp-static" / "state.json", state / "state.json")
    os.chmod(state / "state.json", 0o600)
    compiled, _ = prepare(topo, tmp_path / "state")
    stock = ROOT / "tests" / "data" / "stock"
    router_state = RouterState({p: parse((stock / p).read_text(), p) for p in ("network", "firewall")},
                               extra={"proto_handlers": HANDLERS["stock"]})
    cable = plan_router(compiled.routers["cable"], router_state)     # interface `wan`: in the zone
    assert not [n for n in cable.notes if "firewall zone" in n]
    fiber = plan_router(compiled.routers["fiber"], router_state)
    [warning] = [n for n in fiber.notes if "firewall zone" in n]
    assert "warning: uplinks.fiber.wan.interface: firewall zone `wan` on fiber does not list network `fiber`" in warning
    assert "list network 'fiber'" in warning and warning.endswith("[MW022]") and fiber.problems == []


def test_validate_says_which_wans_mwanctl_owns_and_the_tunnel_mtu(capsys: pytest.CaptureFixture[str]) -> None:
    from mwanctl.cli import main
    assert main(["validate", str(ROOT / "examples" / "pppoe-lte.yaml")]) == 0   # no secrets needed
    out = capsys.readouterr().out
    assert "  dsl: WAN pppoe on network.wan (owned by mwanctl), MTU 1492 (default); tunnel MTU 1412" in out
    assert "  lte: WAN qmi on network.wan (owned by mwanctl), MTU 1430; tunnel MTU 1350" in out
    assert "cable: WAN" not in out
