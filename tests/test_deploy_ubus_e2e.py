"""`mwanctl deploy` and `status` through the ubus transport (rpcd JSON-RPC over HTTP), end to end:
the CLI against rpcd stand-ins that replay the recorded real rpcd's behaviour, logged in as a user
holding only the shipped mwanctl ACL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.uci.parse import parse

try:
    from tests import rpcd_server as rs
except ImportError:  # pragma: no cover
    import rpcd_server as rs  # type: ignore[no-redef]

HERE = Path(__file__).parent
STOCK = HERE / "data" / "stock"
ACL = HERE.parent / "mwanctl" / "data" / "rpcd-acl-mwanctl.json"


def _server(tmp: Path, name: str, packages: tuple[str, ...], status: dict | None) -> rs.RpcdServer:
    conf = tmp / name / "config"
    rs.write_files(conf, {p: (STOCK / p).read_text() for p in packages})
    groups = {**rs.DEFAULT_ACL_GROUPS, **json.loads(ACL.read_text())}
    rpcd = rs.Rpcd(conf, users=[rs.User("deploy", "s3cret", ["mwanctl"], ["mwanctl"])], acl_groups=groups,
                   time_scale=0.1, mwan3_status=status, wg_from_config=True)
    return rs.RpcdServer(rpcd)


@pytest.fixture
def site(tmp_path, monkeypatch):
    status = json.loads((HERE / "vectors" / "mwan3" / "mwan3-status-both-online.json").read_text()
                        .replace('"wanA"', '"mw_dsl"').replace('"wanB"', '"mw_lte"')
                        .replace('"balanced"', '"mw_balanced"'))
    servers = {"mother": _server(tmp_path, "mother", ("network", "firewall", "mwan3"), status),
               "dsl": _server(tmp_path, "dsl", ("network", "firewall"), None),
               "lte": _server(tmp_path, "lte", ("network", "firewall"), None)}
    for s in servers.values():
        s.__enter__()
    monkeypatch.setenv("ROUTER_PW", "s3cret")
    access = "".join(f"  {n}:\n    ubus_url: {s.url}\n" for n, s in servers.items())
    topo = tmp_path / "t.yaml"
    topo.write_text("site: lab\nmother: {host: 192.0.2.1}\nuplinks:\n"
                    "  - {name: dsl, host: 192.0.2.10, weight: 3}\n  - {name: lte, host: 192.0.2.11, weight: 2}\n"
                    "access:\n  defaults:\n    transport: ubus\n    user: deploy\n    password_env: ROUTER_PW\n"
                    "    confirm_timeout: 30\n" + access)
    yield topo, servers, ["--state-dir", str(tmp_path / "state")]
    for s in servers.values():
        s.__exit__(None, None, None)


def test_deploy_over_ubus_then_nothing_to_do_then_status(site, capsys):
    topo, servers, pre = site
    assert main(pre + ["plan", str(topo)]) == 2
    code = main(pre + ["deploy", str(topo), "--yes"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "mother: applied and confirmed" in out
    mother = servers["mother"].rpcd
    net = parse((mother.confdir / "network").read_text(), "network")
    assert net.get("mw_dsl").options["proto"] == "wireguard"
    assert mother.pending is None                          # confirmed: no rollback armed
    assert ("config.change", "mwan3") in mother.events     # rpcd's apply announced the change
    code = main(pre + ["deploy", str(topo), "--yes"])
    out, err = capsys.readouterr()
    assert code == 0 and "nothing to do" in out, out + err
    code = main(pre + ["--no-color", "status", str(topo), "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert {u["name"]: u["state"] for u in doc["uplinks"]} == {"dsl": "online", "lte": "online"}
    assert doc["uplinks"][0]["shares"]["mw_balanced"] == pytest.approx(0.6)


def test_wrong_password_is_one_line(site, capsys, monkeypatch):
    topo, servers, pre = site
    monkeypatch.setenv("ROUTER_PW", "wrong")
    code = main(pre + ["plan", str(topo)])
    out, err = capsys.readouterr()
    assert code == 4
    errors = [line for line in err.splitlines() if line.startswith("mwanctl: error:")]
    assert errors and all("Traceback" not in e for e in errors)
    assert any("password" in e.lower() or "login" in e.lower() for e in errors), err
