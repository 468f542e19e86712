"""Which changed option needs nothing, reload, renew or restart (mwanctl.plan.option_action),
against the facts recorded on real netifd + wireguard.sh (tests/vectors/netifd/README.md)."""

from __future__ import annotations

from pathlib import Path

from mwanctl.plan import NONE, RELOAD, RENEW, RESTART, option_action, wireguard_effects
from mwanctl.uci.parse import parse

FACTS = " ".join((Path(__file__).parent / "vectors" / "netifd" / "README.md").read_text().split())

BASE = """
config interface 'mw_a'
\toption proto 'wireguard'
\toption private_key 'ABMTmsQeByamtI2adWpSWF1d9bmF8umHHQ2Zza0zTG4='
\toption listen_port '51820'
\tlist addresses '10.254.0.1/30'
\toption mtu '1420'

config wireguard_mw_a 'mw_a_peer'
\toption description 'mwanctl mother mother (lab3)'
\toption public_key 'P4leTVkQ4oWnKg4XmWwCtFnqUz8KJL+Ovo1CSfW9Djs='
\toption route_allowed_ips '1'
\tlist allowed_ips '10.254.0.2/32'
"""


def effect(after: str) -> tuple[str, list[str]]:
    eff = wireguard_effects(parse(BASE, "network"), parse(after, "network"))
    e = eff.get("mw_a")
    return (e.action, e.reasons) if e else (NONE, [])


def test_the_recorded_facts_are_the_ones_modelled():
    assert "declares `addresses` as a string" in FACTS
    assert "a peer-only change (key, endpoint, allowed_ips, keepalive, description) is not applied by reload" in FACTS
    assert "`wg syncconf` with the current config, no device restart" in FACTS
    assert "(e.g. `listen_port`) makes netifd tear the interface down" in FACTS


def test_description_only_restarts_nothing():
    assert effect(BASE.replace("mother (lab3)", "hub (lab3)")) == (NONE, [])


def test_peer_changes_are_renewed():
    action, why = effect(BASE.replace("10.254.0.2/32", "10.254.0.6/32"))
    assert action == RENEW and why == ["mw_a_peer.allowed_ips: renew"]
    for opt in ("endpoint_port '51821'", "persistent_keepalive '25'", "endpoint_host '192.0.2.1'"):
        assert effect(BASE + f"\toption {opt}\n")[0] == RENEW, opt


def test_list_addresses_is_invisible_to_reload_so_renewed():
    assert effect(BASE.replace("10.254.0.1/30", "10.254.0.5/30"))[0] == RENEW
    assert effect(BASE.replace("\tlist addresses '10.254.0.1/30'\n",
                               "\tlist addresses '10.254.0.1/30'\n\tlist addresses 'fd00::1/64'\n"))[0] == RENEW


def test_declared_parameters_make_netifd_restart():
    assert effect(BASE.replace("'51820'", "'51821'"))[0] == RESTART
    assert effect(BASE.replace("option mtu '1420'", "option mtu '1280'"))[0] == RESTART
    assert effect(BASE.replace("ABMT", "BBMT"))[0] == RESTART
    # a string `option addresses` is in the blob: reload sees it
    assert effect(BASE.replace("list addresses", "option addresses"))[0] == RESTART


def test_netifd_attributes():
    assert option_action("interface", "metric", None, "10") == RELOAD
    assert option_action("interface", "proto", "wireguard", "static") == RESTART
    assert option_action("interface", "auto", None, "0") == RESTART
    assert option_action("interface", "nohostroute", None, "1") == RENEW   # only wireguard.sh reads it


def test_plan_renews_instead_of_restarting():
    from mwanctl.plan import PackagePlan, _apply_plan
    from mwanctl.uci.diff import diff

    before, after = parse(BASE, "network"), parse(BASE.replace("10.254.0.2/32", "10.254.0.6/32"), "network")
    ops = diff(before, after.sections, "network", lambda s: True, keep_order=False)
    plan = _apply_plan({"network": PackagePlan("network", before, after, ops)})
    assert plan.renew_ifaces == ["mw_a"] and plan.restart_ifaces == []
    assert plan.check_peers == {"mw_a": ["P4leTVkQ4oWnKg4XmWwCtFnqUz8KJL+Ovo1CSfW9Djs="]}
