"""mwanctl.verify: the live state compared with the config, field by field, on real-shaped
output (`wg show all dump` as wg prints it, `ip -o addr`/`ip -o link` as iproute2 prints it),
and when mwan3's "online" proves a tunnel (`ubus call mwan3 status` as real mwan3 printed it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mwanctl import verify
from mwanctl.facts import Mwan3Interface, parse_mwan3_status, parse_wg_dump
from mwanctl.uci.parse import parse

NET = parse("""
config interface 'mw_u1'
\toption proto 'wireguard'
\toption private_key 'cFSQAEmeXIxYKwhQT33ExtZVNcRkiA55CrdndW77wVo='
\tlist addresses '10.254.0.2/30'
\toption mtu '1420'

config wireguard_mw_u1 'mw_u1_peer'
\toption public_key 'DmPnfTYIqjc05yRCY/BtCgilESE9SM+HjvLyJMn9kQo='
\toption endpoint_host '192.0.2.10'
\toption endpoint_port '51820'
\toption persistent_keepalive '25'
\tlist allowed_ips '0.0.0.0/0'
""", "network")
KEY = "DmPnfTYIqjc05yRCY/BtCgilESE9SM+HjvLyJMn9kQo="


def dump(endpoint: str = "192.0.2.10:51820", allowed: str = "0.0.0.0/0", ka: str = "25", hs: str = "1700000000") -> str:
    return (f"mw_u1\t(hidden)\tPUB\t41234\toff\n"
            f"mw_u1\t{KEY}\t(none)\t{endpoint}\t{allowed}\t{hs}\t100\t200\t{ka}\n")


ADDR = ("5: mw_u1    inet 10.254.0.2/30 scope global mw_u1\\       valid_lft forever preferred_lft forever\n"
        "5: mw_u1    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever\n")
LINK = "5: mw_u1: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN mode DEFAULT\\    link/none \n"


def diffs(d: str, addr: str = ADDR, link: str = LINK) -> list[str]:
    return verify.live_differences(NET, "mw_u1", parse_wg_dump(d, "m"), verify.parse_ip_addr(addr),
                                   verify.parse_ip_link(link))


def test_equal_state_has_no_differences():
    assert diffs(dump()) == []


def test_each_field_is_compared():
    assert diffs(dump(endpoint="192.0.2.11:51820")) == ["peer mw_u1_peer endpoint 192.0.2.11:51820 (config 192.0.2.10:51820)"]
    assert diffs(dump(allowed="10.0.0.0/8")) == ["peer mw_u1_peer allowed IPs 10.0.0.0/8 (config 0.0.0.0/0)"]
    assert diffs(dump(ka="off")) == ["peer mw_u1_peer keepalive off (config 25)"]
    assert diffs(dump(), addr=ADDR.replace("10.254.0.2/30", "10.254.0.6/30")) == \
        ["addresses 10.254.0.6/30 (config 10.254.0.2/30)"]
    assert diffs(dump(), link=LINK.replace("mtu 1420", "mtu 1280")) == ["MTU 1280 (config 1420)"]
    assert diffs(dump().splitlines()[0] + "\n") == ["peer mw_u1_peer not live"]


def test_handshake_freshness():
    peer = parse_wg_dump(dump(hs="1000"), "m")["mw_u1"].peers[KEY]
    assert verify.fresh(peer, 1000) and not verify.fresh(peer, 1001)
    assert verify.alive(peer, 1179) and not verify.alive(peer, 1180)
    never = parse_wg_dump(dump(hs="0"), "m")["mw_u1"].peers[KEY]
    assert not verify.fresh(never, 0) and not verify.alive(never, 10)


# -- mwan3: "online" is proof only after a tracking round since the deploy began ---------------
VECTORS = Path(__file__).parent / "vectors" / "mwan3"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def iface(raw: dict[str, Any], name: str, **changes: Any) -> Mwan3Interface:
    """One interface of a recorded `ubus call mwan3 status`, with ``changes`` to its fields."""
    data = {"interfaces": {name: {**raw["interfaces"][name], **changes}}}
    return parse_mwan3_status(json.dumps(data), "m").interfaces[name]


OUTAGE = recorded("failover/fast1/mwan3-status-during-outage.json")   # mw_up1 cut, mw_up2 fine
NOW = 505.4            # the mother's uptime at that status (its netifd uptime: 505)


def test_a_recorded_good_round_after_the_deploy_proves_the_tunnel():
    up2 = iface(OUTAGE, "mw_up2")                  # age 1, online 35, turn 34: up / skipped
    assert verify.tracking_proof(up2, 500.5, NOW, 25) == ""
    # the round ended at 504 (or at 503, were the uptime read in the second after the status):
    # a deploy begun at 503.0 or earlier is behind it; one begun later may not be
    assert verify.tracking_proof(up2, 503.0, NOW, 25) == ""
    assert verify.tracking_proof(up2, 503.01, NOW, 25) == (
        "no tracking target answered within 25 s: mwan3track's last round ended before the deploy began")


def test_the_first_round_in_the_second_of_the_connect_counts():
    both = recorded("mwan3-status-both-online.json")   # age 4 = online 4, turn 1: as recorded
    assert verify.tracking_proof(iface(both, "wanA"), 100.0, 300.2, 25) == ""


def test_initial_state_online_before_any_round_is_not_proof():
    """What firstconnect leaves after an ifup of the restarted interface (initial_state online):
    STATUS online and ONLINE now, the last round's files of before the restart untouched."""
    restarted = iface(OUTAGE, "mw_up2", online=0, age=3)
    why = verify.tracking_proof(restarted, 500.0, NOW, 25)
    assert why.startswith("no tracking target answered within 25 s: mwan3track finished no round since")
    # a stale round in the very second of the connect that was not the first one after it
    assert "no round since" in verify.tracking_proof(iface(OUTAGE, "mw_up2", online=2, age=2), 400.0, NOW, 25)
    # a brand-new interface: no TIME/TURN/TRACK_ files yet (the plugin reads 0 and "unknown")
    new = iface(OUTAGE, "mw_up2", online=0, age=0, turn=0, score=0,
                track_ip=[{"ip": "198.51.100.1", "status": "unknown", "latency": 0, "packetloss": 0}])
    assert "no round since" in verify.tracking_proof(new, 500.0, NOW, 25)


def test_targets_that_did_not_answer_are_named():
    up1 = iface(OUTAGE, "mw_up1")                  # offline: both targets down, lost 8
    assert verify.tracking_proof(up1, 400.0, NOW, 25) == (
        "mwan3 tracking reports it offline: no tracking target answered (198.51.100.1 down, 198.51.100.2 down)")
    # mwan3track's first failed round after initial_state online: disconnecting (down > 1)
    assert verify.tracking_proof(iface(OUTAGE, "mw_up1", status="disconnecting"), 400.0, NOW, 25).startswith(
        "mwan3 tracking reports it disconnecting: no tracking target answered")
    # online, but the round read lost pings (read between a failed round's files)
    assert verify.tracking_proof(iface(OUTAGE, "mw_up2", lost=1), 400.0, NOW, 25).startswith(
        "no tracking target answered in mwan3track's last round")


def test_unknown_uptime_checks_the_connect_only():
    assert verify.tracking_proof(iface(OUTAGE, "mw_up2"), None, None, 25) == ""
    assert "no round since" in verify.tracking_proof(iface(OUTAGE, "mw_up2", online=0), None, None, 25)
    assert verify.tracking_proof(None, 1.0, 2.0, 25) == "mwan3 reports nothing about it"


# -- how long verification waits for mwan3track ---------------------------------------------------

def test_round_wait_covers_a_skipped_round_a_sleep_and_a_whole_round() -> None:
    # two targets, one packet each, 4 s timeout: a round takes up to 8 s; interval 10
    opts = {"track_ip": ("1.1.1.1", "9.9.9.9"), "count": "1", "timeout": "4", "interval": "10",
            "failure_interval": "10"}
    assert verify.round_wait(opts) == 2 * 8 + 10 + 1 + 2 * verify.ROUND_OVERHEAD
    # options left out are mwan3track's defaults (count 1, timeout 4, interval 10), one target
    assert verify.round_wait({"track_ip": "8.8.8.8"}) == 2 * 4 + 10 + 1 + 2 * verify.ROUND_OVERHEAD
    # three packets a second apart per target
    assert verify.round_wait({**opts, "count": "3"}) == 2 * 12 + 10 + 1 + 2 * verify.ROUND_OVERHEAD


def _deployment(tracking: str) -> Any:
    from mwanctl.compile import compile_site
    from mwanctl.deploy import Deployment
    from mwanctl.keys import KeyPair, TunnelKeys
    from mwanctl.topology.load import parse_topology
    topo = parse_topology("site: t\nmother: {host: 192.168.1.1}\nuplinks:\n  - {name: dsl, host: 192.168.1.2}\n"
                          + tracking)
    keys = {"dsl": TunnelKeys(0, KeyPair("cHJpdmF0ZS1tb3RoZXItMDAwMDAwMDAwMDAwMDAwMDA=", "pub-m", "2026-01-01T00:00:00Z"),
                              KeyPair("cHJpdmF0ZS11cGxpbmstMDAwMDAwMDAwMDAwMDAwMDA=", "pub-u", "2026-01-01T00:00:00Z"))}
    return Deployment(compile_site(topo, keys), connect=lambda r: None)  # type: ignore[arg-type,return-value]


def test_the_verify_window_holds_one_round_of_the_slowest_tracked_tunnel() -> None:
    # the default profile's rounds fit the 25 s window
    assert _deployment("").verify_timeout == 25
    # `conservative` (interval 10, timeout 4, two targets) needs 2*8 + 10 + 1 + overhead + a poll
    assert _deployment("tracking: {profile: conservative}\n").verify_timeout == 29
    # a minute between rounds: a working deploy must not be rolled back for want of a round
    slow = _deployment("tracking: {interval: 60, failure_interval: 60}\n")
    assert slow.verify_timeout >= 60 + 2 * 2 * 2
