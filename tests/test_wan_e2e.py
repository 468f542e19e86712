"""`mwanctl plan`/`deploy` of an uplink WAN over SSH to dropbear test routers.

The router's netifd is asked which protocols it has (`ubus call network get_proto_handlers`,
answered by the ubus stand-in: a stock image's set, or what the test pins): a PPPoE WAN on a
router without the PPPoE handler is refused before anything is sent (MW022); with it, the plan
says mwanctl owns `network.wan`, masks the password, and the deploy writes the section the
router's netifd reads, the password included, without printing it anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.uci.parse import parse

try:
    from tests.e2e import start_site
except ImportError:  # pragma: no cover
    from e2e import start_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
PASSWORD = "pppoe pw 'quoted' $(not run)"
WAN_BLOCK = "wan:\n  proto: pppoe\n  device: wan\n  username: 0123@isp.example\n  password_env: MWTEST_DSL_PW\n"


def run(site, capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(site.argv(*args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert PASSWORD not in out + err and "quoted" not in out + err
    return code, out, err


def test_pppoe_wan_refused_without_its_handler_then_deployed(router_factory, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MWTEST_DSL_PW", PASSWORD)
    site = start_site(router_factory, tmp_path, ["dsl"], uplink_extra={"dsl": WAN_BLOCK})
    dsl = site.routers["dsl"]
    dsl.write("/etc/mwtest/proto_handlers.json",
              json.dumps({n: {} for n in ("static", "dhcp", "dhcpv6", "ppp", "wireguard")}))
    before = dsl.config_text("network")

    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 1, out + err
    assert "uplinks.dsl.wan.proto: netifd on dsl has no `pppoe` protocol handler" in err
    assert "opkg install ppp ppp-mod-pppoe" in err and "[MW022]" in err
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 1 and "[MW022]" in err
    assert dsl.config_text("network") == before                       # nothing was sent
    assert any("get_proto_handlers" in c for c in dsl.calls())

    dsl.write("/etc/mwtest/proto_handlers.json",
              json.dumps({n: {} for n in ("static", "dhcp", "dhcpv6", "ppp", "pppoe", "wireguard")}))
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2, out + err
    assert "~ wan (interface)" in out and "proto: 'dhcp' -> 'pppoe'" in out
    assert "password: (unset) -> <hidden>" in out
    assert "note: mwanctl owns network.wan on dsl (from uplinks.dsl.wan, proto pppoe)" in out
    assert "mwanctl owns network.wan" not in out.split("mother")[-1]   # the other routers: no such note

    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, out + err
    wan = parse(dsl.config_text("network"), "network").get("wan")
    assert wan is not None and wan.options == {"proto": "pppoe", "device": "wan", "username": "0123@isp.example",
                                               "password": PASSWORD}
    # wan6 and the rest of the router's own network file are as they were
    old, new = parse(before, "network"), parse(dsl.config_text("network"), "network")
    assert [s for s in new.sections if s.name not in ("wan",) and not (s.name or "").startswith("mw_")] == \
        [s for s in old.sections if s.name != "wan"]
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 0 and "mwanctl owns" not in out


def test_a_wan_that_does_not_come_up_again_is_rolled_back(router_factory, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The WAN worked (stock DHCP); the new PPPoE login is refused (netifd: AUTH_FAILED). The
    tunnel would still handshake over the LAN, so the deploy must see the WAN itself: the uplink
    is rolled back, the mother never applied."""
    monkeypatch.setenv("MWTEST_DSL_PW", PASSWORD)
    monkeypatch.setattr("mwanctl.deploy.WAN_UP_TIMEOUT", 3)
    site = start_site(router_factory, tmp_path, ["dsl"], uplink_extra={"dsl": WAN_BLOCK})
    dsl, mother = site.routers["dsl"], site.routers["mother"]
    dsl.write("/etc/mwtest/proto_fails.json", json.dumps({"pppoe": "AUTH_FAILED"}))
    before = {n: r.config_text("network") for n, r in site.routers.items()}

    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 5, out + err
    assert ("dsl: not confirmed: network.wan was up before and did not come up again within 3 s "
            "(netifd reports wan down: AUTH_FAILED); rolled back to its old config") in err
    assert "mother: not applied because dsl failed" in err
    assert {n: r.config_text("network") for n, r in site.routers.items()} == before
    assert mother.config_text("network") == before["mother"]
