"""The test routers' netifd emulation does what real netifd + wireguard.sh do (recorded in
tests/vectors/netifd/README.md): reload ignores peer-only and `list addresses` changes and
rebuilds an interface whose declared parameter changed; renew applies everything in place;
down/up rebuilds. The session facts (a rebuilt device has none; renew keeps it) need real
WireGuard: they are proven in namespaces at the end of this file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors" / "netifd"
FACTS = " ".join((VECTORS / "README.md").read_text().split())
KEY = "ABMTmsQeByamtI2adWpSWF1d9bmF8umHHQ2Zza0zTG4="
PEER = "P4leTVkQ4oWnKg4XmWwCtFnqUz8KJL+Ovo1CSfW9Djs="
NETWORK = f"""
config interface 'wga'
\toption proto 'wireguard'
\toption private_key '{KEY}'
\toption listen_port '51820'
\tlist addresses '10.254.0.1/30'

config wireguard_wga 'wga_peer'
\toption description 'old name'
\toption public_key '{PEER}'
\tlist allowed_ips '10.254.0.2/32'
"""


def boot(router_factory):
    r = router_factory("r1", files={"network": NETWORK})
    assert r.run("ubus mwtest-boot").returncode == 0
    return r


def dump(r) -> dict[str, list[str]]:
    out = r.run("wg show all dump").stdout
    return {f[1]: f for f in (ln.split("\t") for ln in out.splitlines()) if len(f) == 9}


def status(r) -> dict:
    return json.loads(r.run("ubus call network.interface.wga status").stdout)


def addrs(r) -> list[str]:
    return [ln.split()[3] for ln in r.run("ip -o addr show").stdout.splitlines() if " wga " in ln]


def test_reload_ignores_a_peer_only_change_renew_applies_it_in_place(router_factory):
    assert "a peer-only change (key, endpoint, allowed_ips, keepalive, description) is not applied by reload" in FACTS
    assert "no device restart, no downtime (interface uptime keeps counting)" in FACTS
    r = boot(router_factory)
    r.write("/etc/config/network", NETWORK.replace("10.254.0.2/32", "10.254.0.6/32"))
    time.sleep(1.1)
    assert r.run("/etc/init.d/network reload").returncode == 0
    assert dump(r)[PEER][4] == "10.254.0.2/32"           # not applied
    assert r.run("ubus call network.interface.wga renew").returncode == 0
    assert dump(r)[PEER][4] == "10.254.0.6/32"           # applied
    assert status(r)["uptime"] >= 1                     # same device: uptime kept counting


def test_reload_ignores_list_addresses_renew_applies_them(router_factory):
    assert "declares `addresses` as a string, and libuci leaves a `list` option out of the blob" in FACTS
    r = boot(router_factory)
    assert addrs(r) == ["10.254.0.1/30"]
    r.write("/etc/config/network", NETWORK.replace("10.254.0.1/30", "10.254.0.5/30"))
    r.run("/etc/init.d/network reload")
    assert addrs(r) == ["10.254.0.1/30"]
    r.run("ubus call network.interface.wga renew")
    assert addrs(r) == ["10.254.0.5/30"]


def test_a_declared_parameter_makes_reload_rebuild(router_factory):
    assert "Any change of a declared interface parameter (e.g. `listen_port`) makes netifd tear the interface down and set it up again" in FACTS
    r = boot(router_factory)
    time.sleep(1.1)
    r.write("/etc/config/network", NETWORK.replace("'51820'", "'51821'").replace("10.254.0.1/30", "10.254.0.9/30"))
    r.run("/etc/init.d/network reload")
    assert status(r)["uptime"] == 0                     # rebuilt just now
    assert "\t51821\t" in r.run("wg show all dump").stdout
    assert addrs(r) == ["10.254.0.9/30"]                # setup reads the whole config


def test_a_string_addresses_option_is_seen_by_reload(router_factory):
    r = boot(router_factory)
    r.write("/etc/config/network", NETWORK.replace("list addresses '10.254.0.1/30'", "option addresses '10.254.0.5/30'"))
    r.run("/etc/init.d/network reload")
    assert addrs(r) == ["10.254.0.5/30"]


def test_wg_set_peer_remove_and_renew_restores_it(router_factory):
    r = boot(router_factory)
    assert r.run(f"wg set wga peer {PEER} remove").returncode == 0
    assert PEER not in dump(r)
    r.run("ubus call network.interface.wga renew")
    assert PEER in dump(r)


def test_no_handshake_switch(router_factory):
    r = boot(router_factory)
    assert int(dump(r)[PEER][5]) > 0
    r.write("/etc/mwtest/no_handshake", "")
    assert dump(r)[PEER][5] == "0"
