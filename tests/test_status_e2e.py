"""`mwanctl status` end to end: CLI -> SSH -> a dropbear mother whose `ubus` and `wg` stand-ins
return mwan3 2.12.2's recorded `ubus call mwan3 status` (interface and policy names mapped to the
topology's: wanA -> mw_a, wanB -> mw_b, balanced -> mw_balanced) and a `wg show all dump`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.keys import KeyStore

try:
    from tests.e2e import write_site
except ImportError:  # pragma: no cover
    from e2e import write_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
VECTORS = Path(__file__).parent / "vectors" / "mwan3"


def recorded(name: str) -> str:
    text = (VECTORS / name).read_text()
    return text.replace('"wanA"', '"mw_a"').replace('"wanB"', '"mw_b"').replace('"balanced"', '"mw_balanced"')


def dump(store: KeyStore, handshake_age: int) -> str:
    now = int(time.time())
    lines = []
    for i, name in enumerate(("a", "b")):
        lines.append(f"mw_{name}\t(hidden)\t{store.pair(name, 'mother').public}\t0\toff")
        lines.append("\t".join([f"mw_{name}", store.pair(name, "uplink").public, "(none)",
                                f"192.0.2.{10 + i}:51820", "0.0.0.0/0", str(now - handshake_age),
                                str(1000000 * (i + 1)), str(200000 * (i + 1)), "25"]))
    return "\n".join(lines) + "\n"


@pytest.fixture
def site(router_factory, tmp_path):
    mother = router_factory("mother")
    s = write_site(tmp_path, {"mother": mother}, ["a", "b"])
    # weights 3 and 2 as in the recording
    s.path.write_text(s.path.read_text().replace("    weight: 1\n", "    weight: 3\n", 1))
    assert main(s.argv("render", str(s.path), "-o", str(tmp_path / "out"))) == 0   # creates the keys
    s.store = KeyStore.open("lab", s.state_dir)
    return s


def put(site, status_file: str, handshake_age: int = 12) -> None:
    m = site.routers["mother"]
    m.run("mkdir -p /etc/mwtest")
    m.write("/etc/mwtest/mwan3_status.json", recorded(status_file))
    m.write("/etc/mwtest/wg_dump.txt", dump(site.store, handshake_age))


def status(site, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(site.argv("--no-color", "status", str(site.path), *extra))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_both_online_table_json_and_exit_0(site, capsys):
    put(site, "mwan3-status-both-online.json")
    code, out, err = status(site, capsys)
    assert code == 0, out + err
    assert "2/2 uplinks online" in out
    assert "60%" in out and "40%" in out                # computed, although the plugin says 100/0
    code, out, err = status(site, capsys, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "mwanctl.status/2" and doc["exit_code"] == 0
    rows = {u["name"]: u for u in doc["uplinks"]}
    assert rows["a"]["state"] == "online" and rows["a"]["shares"]["mw_balanced"] == pytest.approx(0.6)
    assert rows["b"]["shares"]["mw_balanced"] == pytest.approx(0.4)
    assert rows["a"]["wireguard"]["handshake_age"] is not None and rows["a"]["wireguard"]["handshake_age"] < 60
    assert rows["b"]["wireguard"]["rx_bytes"] == 2000000
    # the interface lines' private-key column is never carried into the output
    assert "(hidden)" not in out and site.store.pair("a", "mother").private not in out


def test_one_offline_is_degraded_exit_1(site, capsys):
    put(site, "mwan3-status-wanA-offline.json")
    code, out, err = status(site, capsys)
    assert code == 1, out + err
    assert "1/2 uplinks online" in out and "a offline" in out
    doc = json.loads(status(site, capsys, "--json")[1])
    assert {u["name"]: u["state"] for u in doc["uplinks"]} == {"a": "offline", "b": "online"}
    assert doc["uplinks"][1]["shares"]["mw_balanced"] == 1.0


def test_stale_handshake_while_online_is_flagged(site, capsys):
    put(site, "mwan3-status-both-online.json", handshake_age=900)
    code, out, err = status(site, capsys, "--json")
    doc = json.loads(out)
    kinds = {p["kind"] for p in doc["problems"]}
    assert "stale-handshake" in kinds and code == 1


def test_mismatch_when_router_has_other_peer_key(site, capsys):
    put(site, "mwan3-status-both-online.json")
    m = site.routers["mother"]
    text = m.read("/etc/mwtest/wg_dump.txt").decode().replace(site.store.pair("b", "uplink").public,
                                                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    m.write("/etc/mwtest/wg_dump.txt", text)
    code, out, err = status(site, capsys, "--json")
    doc = json.loads(out)
    assert code == 1
    assert [p["uplink"] for p in doc["problems"] if p["kind"] == "mismatch"] == ["b"]


def test_mother_unreachable_is_unknown_exit_3(site, capsys):
    site.routers["mother"].stop()
    code, out, err = status(site, capsys, "--json")
    assert code == 3
    doc = json.loads(out)
    assert doc["reachable"] is False and doc["exit_code"] == 3 and doc["error"]


def test_mwan3_probe_failing_still_prints_one_json_object_exit_3(site, capsys):
    """Issue 9: reachable mother, `ubus call mwan3 status` fails (mwan3 not running): the cron
    recipe used to write an empty file."""
    m = site.routers["mother"]
    m.run("mkdir -p /etc/mwtest && rm -f /etc/mwtest/mwan3_status.json")
    m.write("/etc/mwtest/wg_dump.txt", dump(site.store, 12))
    code, out, err = status(site, capsys, "--json")
    assert code == 3
    doc = json.loads(out)                       # exactly one object on stdout
    assert doc["schema"] == "mwanctl.status/2" and doc["exit_code"] == 3 and doc["reachable"] is True
    assert "mwan3" in doc["error"] and "Not found" in doc["error"]
    assert [p["kind"] for p in doc["problems"]] == ["probe-failed"]
    code, out, err = status(site, capsys)         # the table says the same
    assert code == 3 and "status unknown:" in out
    m.write("/etc/mwtest/mwan3_status.json", "this is not json")
    code, out, err = status(site, capsys, "--json")
    assert code == 3 and json.loads(out)["error"]


def test_unreadable_topology_still_prints_one_json_object_exit_3(site, capsys):
    site.path.write_text(site.path.read_text() + "\nbogus_key: 1\n")
    code, out, err = status(site, capsys, "--json")
    doc = json.loads(out)
    assert code == 3 and doc["exit_code"] == 3 and doc["router"] is None and "bogus_key" in doc["error"]
    assert "bogus_key" in err


def test_disabled_uplink(site, capsys):
    put(site, "mwan3-status-wanB-disabled.json")
    code, out, err = status(site, capsys, "--json")
    doc = json.loads(out)
    assert {u["name"]: u["state"] for u in doc["uplinks"]}["b"] == "disabled"
    assert code == 1


def test_uplinks_option_asks_each_uplink_router_about_its_wan(router_factory, tmp_path, capsys):
    rs = {"mother": router_factory("mother"), "a": router_factory("a"), "b": router_factory("b")}
    s = write_site(tmp_path, rs, ["a", "b"])
    assert main(s.argv("render", str(s.path), "-o", str(tmp_path / "out"))) == 0
    capsys.readouterr()
    s.store = KeyStore.open("lab", s.state_dir)
    put(s, "mwan3-status-both-online.json")
    for name, up in (("a", True), ("b", False)):
        rs[name].run("mkdir -p /etc/mwtest")
        wan = {"up": up, "ipv4-address": [{"address": "203.0.113.7", "mask": 24}] if up else []}
        rs[name].write("/etc/mwtest/iface_wan_status.json", json.dumps(wan))
    code, out, err = status(s, capsys, "--json", "--uplinks")
    doc = json.loads(out)
    wans = {u["name"]: u["wan"] for u in doc["uplinks"]}
    assert wans["a"]["up"] is True and wans["a"]["address"] == "203.0.113.7"
    assert wans["b"]["up"] is False
    assert any(p["kind"] == "wan-down" and p["uplink"] == "b" for p in doc["problems"])
