"""A DHCP uplink and a static one come up as mwanctl renders them, in namespaces this test makes.

The WAN sections are compiled by mwanctl (``compile.wan``), exported as `uci export` text and
parsed back (what the router holds), then brought up by the netifd dhcp/static stand-in
(tests/netifd_wan.py): the DHCP side against a real DHCP server (busybox udhcpd) with the
client netifd's dhcp.sh runs (busybox udhcpc, dhcp.sh's flags). Each uplink must end with the
rendered/leased address, its default route at the rendered metric, the rendered MTU and DNS, and
reach the "internet" (an address only the ISP host has) through that default route.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import time
from pathlib import Path

import pytest

from mwanctl.compile.templates import Templates
from mwanctl.compile.wan import wan_sections
from mwanctl.topology.model import Wan
from mwanctl.uci.model import UciPackage
from mwanctl.uci.parse import parse
from mwanctl.uci.render import export
from tests import netifd_wan, netlab

pytestmark = pytest.mark.skipif(netlab.skip_reason() is not None, reason=str(netlab.skip_reason()))

INTERNET = "203.0.113.1"


def _as_router_holds(wan: Wan, secrets: dict[str, str] | None = None) -> UciPackage:
    text = export(UciPackage("network", wan_sections(Templates(), wan, secrets or {})))
    return parse(text, "network")


def _isp(lab: netlab.Lab) -> None:
    lab.add_host("isp")
    lab.run("isp", ["ip", "addr", "add", f"{INTERNET}/32", "dev", "lo"])


def _isp_facing_up(lab: netlab.Lab, isp_address: str) -> None:
    """The ISP and an uplink router `up` whose `wan0` is cabled to the ISP's `isp0`."""
    _isp(lab)
    lab.add_host("up")
    lab.link("isp", "up", isp_address, None, name_a="isp0", name_b="wan0")


def test_dhcp_uplink_comes_up_with_a_real_lease() -> None:
    wan = Wan(proto="dhcp", device="wan0", mtu=1480, metric=7, dns=("9.9.9.9",))
    network = _as_router_holds(wan)
    with netlab.Lab() as lab:
        _isp_facing_up(lab, "198.51.100.1/24")
        server = netifd_wan.start_udhcpd(lab, "isp", "isp0", ("198.51.100.100", "198.51.100.150"),
                                router="198.51.100.1", dns="198.51.100.53")
        cfg = netifd_wan.bring_up(lab, "up", network, "wan")
        assert cfg.proto == "dhcp" and cfg.metric == 7
        addrs = lab.run("up", ["ip", "-4", "-o", "addr", "show", "dev", "wan0"]).stdout
        leased = [ipaddress.IPv4Interface(w) for line in addrs.splitlines()
                  for i, w in enumerate(line.split()) if line.split()[i - 1] == "inet"]
        assert len(leased) == 1
        assert ipaddress.IPv4Address("198.51.100.100") <= leased[0].ip <= ipaddress.IPv4Address("198.51.100.150")
        assert leased[0].network == ipaddress.IPv4Network("198.51.100.0/24")
        assert "default via 198.51.100.1 dev wan0 metric 7" in lab.routes("up")
        assert "mtu 1480" in lab.run("up", ["ip", "-o", "link", "show", "dev", "wan0"]).stdout
        resolv = (lab.hosts["up"].rundir / "resolv.conf.auto").read_text().split()
        assert resolv == ["nameserver", "198.51.100.53", "nameserver", "9.9.9.9"]
        assert lab.ping("up", INTERNET)
        # the server really handed out that lease: SIGUSR1 makes udhcpd write its lease file now
        server.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        leases = ""
        while str(leased[0].ip) not in leases and time.monotonic() < deadline:
            time.sleep(0.2)
            leases = lab.run("isp", ["busybox", "dumpleases", "-f", "/run/udhcpd.leases"]).stdout
        assert str(leased[0].ip) in leases


def test_static_uplink_comes_up_as_rendered() -> None:
    wan = Wan(proto="static", device="wan0", address=ipaddress.IPv4Interface("192.0.2.10/24"),
              gateway=ipaddress.IPv4Address("192.0.2.1"), dns=("192.0.2.53", "9.9.9.9"), mtu=1460)
    network = _as_router_holds(wan)
    sec = network.get("wan")
    assert sec is not None and sec.options["ipaddr"] == "192.0.2.10" and sec.options["netmask"] == "255.255.255.0"
    with netlab.Lab() as lab:
        _isp_facing_up(lab, "192.0.2.1/24")
        netifd_wan.bring_up(lab, "up", network, "wan")
        addrs = lab.run("up", ["ip", "-4", "-o", "addr", "show", "dev", "wan0"]).stdout
        assert "inet 192.0.2.10/24" in addrs
        assert "default via 192.0.2.1 dev wan0" in lab.routes("up")   # metric 0 is not printed
        assert "mtu 1460" in lab.run("up", ["ip", "-o", "link", "show", "dev", "wan0"]).stdout
        resolv = (lab.hosts["up"].rundir / "resolv.conf.auto").read_text()
        assert resolv == "nameserver 192.0.2.53\nnameserver 9.9.9.9\n"
        assert lab.ping("up", INTERNET)


def test_a_dhcp_uplink_without_a_server_does_not_come_up() -> None:
    """The harness can fail: no server, no lease, no route (the failure the test above excludes)."""
    network = _as_router_holds(Wan(proto="dhcp", device="wan0"))
    with netlab.Lab() as lab:
        _isp_facing_up(lab, "198.51.100.1/24")
        with pytest.raises(netifd_wan.WanError, match="no DHCP lease"):
            netifd_wan.bring_up(lab, "up", network, "wan", timeout=4)
        assert not any(r.startswith("default") for r in lab.routes("up"))
        assert not lab.ping("up", INTERNET, count=1, timeout=2)


# --------------------------------------------------------------------------- the whole site

WAN_SITE = Path(__file__).resolve().parent / "topologies" / "wan-dhcp-static.yaml"


def _uplink_forwards(lab: netlab.Lab, host: str, wan_dev: str) -> None:
    """What the uplink's firewall does with the rendered zones (fw4 is not emulated): forward
    from the tunnel zone to the WAN zone, masquerading on the WAN device."""
    lab.run(host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    lab.run(host, ["nft", (f"add table ip mwtest_nat; add chain ip mwtest_nat post {{ type nat hook "
                           f"postrouting priority 100; }}; add rule ip mwtest_nat post oifname {wan_dev} masquerade")])


def test_rendered_site_reaches_the_internet_through_each_uplinks_wan(tmp_path: Path, lab: netlab.Lab) -> None:
    """tests/topologies/wan-dhcp-static.yaml as `render` writes it: `cable` gets its WAN by DHCP
    from a real udhcpd, `fiber` its static one; the mother's traffic through each tunnel leaves
    by that uplink's WAN and comes back."""
    from tests.test_rendered_wireguard import bring_up as bring_up_tunnels
    from tests.test_rendered_wireguard import build_lan, render

    r = render(WAN_SITE, tmp_path)
    cable, fiber = r.networks["cable"], r.networks["fiber"]
    assert [s.name for s in cable.sections] == ["wan", "mw_cable", "mw_cable_peer"]
    assert [s.name for s in fiber.sections] == ["fiber", "mw_fiber", "mw_fiber_peer"]
    build_lan(lab, r)
    _isp(lab)
    lab.link("isp", "cable", "198.51.100.1/24", None, name_a="to_cable", name_b="eth1")
    lab.link("isp", "fiber", "192.0.2.1/24", None, name_a="to_fiber", name_b="eth0.7")
    netifd_wan.start_udhcpd(lab, "isp", "to_cable", ("198.51.100.100", "198.51.100.150"),
                            router="198.51.100.1", dns="198.51.100.53")
    netifd_wan.bring_up(lab, "cable", cable, "wan")
    netifd_wan.bring_up(lab, "fiber", fiber, "fiber")
    # as rendered: the DHCP default route at metric 10, the lease's DNS ignored (peerdns 0)
    assert "default via 198.51.100.1 dev eth1 metric 10" in lab.routes("cable")
    assert (lab.hosts["cable"].rundir / "resolv.conf.auto").read_text() == \
        "nameserver 9.9.9.9\nnameserver 149.112.112.112\n"
    assert "inet 192.0.2.10/24" in lab.run("fiber", ["ip", "-4", "-o", "addr", "show", "dev", "eth0.7"]).stdout
    assert "mtu 1460" in lab.run("fiber", ["ip", "-o", "link", "show", "dev", "eth0.7"]).stdout
    bring_up_tunnels(lab, r)
    # the tunnel MTU derived from fiber's WAN MTU (1460 - 80) is what the tunnel got
    assert "mtu 1380" in lab.run("fiber", ["ip", "-o", "link", "show", "dev", "mw_fiber"]).stdout
    for host, dev in (("cable", "eth1"), ("fiber", "eth0.7")):
        _uplink_forwards(lab, host, dev)
    # count, at the ISP, the echo requests arriving from each uplink's WAN address on its own link
    lab.run("isp", ["nft", ("add table inet count; add chain inet count in { type filter hook input priority 0; }; "
                            "add rule inet count in iifname to_cable ip saddr 198.51.100.0/24 icmp type echo-request "
                            "counter; add rule inet count in iifname to_fiber ip saddr 192.0.2.10 icmp type "
                            "echo-request counter")])
    for iface in ("mw_cable", "mw_fiber"):
        r_ping = lab.run("mother", ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-w", "10", "-I", iface,
                                    INTERNET], check=False, timeout=20)
        assert "3 received" in r_ping.stdout, (iface, r_ping.stdout)
    counts = [int(x) for x in re.findall(r"counter packets (\d+)", lab.run("isp", ["nft", "list", "table", "inet",
                                                                                    "count"]).stdout)]
    assert counts == [3, 3], counts
