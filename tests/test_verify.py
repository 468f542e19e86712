"""mwanctl.verify: the live state compared with the config, field by field, on real-shaped
output (`wg show all dump` as wg prints it, `ip -o addr`/`ip -o link` as iproute2 prints it)."""

from __future__ import annotations

from mwanctl import verify
from mwanctl.facts import parse_wg_dump
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
