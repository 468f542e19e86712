"""The proof that rendered output works: every example's ``network`` files make working tunnels.

Why: golden files only prove the bytes did not change; this proves the bytes are right. For each
example the test renders with the example's fixed test keys, parses each router's rendered
``network`` text with the project's UCI parser (as the router would read /etc/config/network),
builds one network namespace per router with the uplinks sitting on the mother's LAN at the
``host`` addresses of the topology, brings WireGuard up from exactly those sections the way
netifd does (``Lab.bring_up_wireguard``), pings every tunnel from both ends and checks the mother
got the per-tunnel default routes with distinct metrics that mwan3 needs.

Then it shows the check can fail: one wrong key, one wrong address, one wrong port in one rendered
section each stop exactly the affected tunnel while the other tunnels (the controls) keep working.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from mwanctl.render import package_text
from mwanctl.site import prepare
from mwanctl.topology.load import load_topology
from mwanctl.topology.model import Topology
from mwanctl.uci.model import UciPackage, UciSection
from mwanctl.uci.parse import parse

try:
    from tests import netlab
    from tests.example_secrets import example_secrets
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import netlab  # type: ignore[no-redef]
    from example_secrets import example_secrets  # type: ignore[no-redef]

pytestmark = pytest.mark.netns

HERE = Path(__file__).resolve().parent
EXAMPLES = sorted((HERE.parent / "examples").glob("*.yaml"))
SWITCH = "lanswitch"   # the namespace holding the mother's LAN bridge
PING_OK = 8.0          # outlasts one lost first handshake (REKEY_TIMEOUT 5 s + jitter)
PING_FAIL = 4.0        # how long a broken tunnel gets to prove it stays broken


@dataclass
class Tunnel:
    """One uplink's tunnel as rendered: addresses of both ends and the mother's route metric."""

    uplink: str
    iface: str
    mother_addrs: list[str]   # without prefix length
    uplink_addrs: list[str]
    metric: int


@dataclass
class Rendered:
    topology: Topology
    networks: dict[str, UciPackage]     # router -> its rendered network package, parsed
    tunnels: list[Tunnel]

    @property
    def mother(self) -> str:
        return self.topology.mother.name


def render(example: Path, tmp: Path) -> Rendered:
    """Compile ``example`` with its fixed test keys; parse each rendered network file back."""
    topo = load_topology(example)
    golden_state = HERE / "golden" / example.stem / "state.json"
    state_dir = tmp / "state"
    (state_dir / topo.site).mkdir(parents=True)
    shutil.copy(golden_state, state_dir / topo.site / "state.json")
    os.chmod(state_dir / topo.site / "state.json", 0o600)
    with example_secrets():      # examples/pppoe-lte.yaml reads its WAN secrets from the environment
        compiled, _ = prepare(topo, state_dir)
    networks = {name: parse(package_text("network", cfg.sections["network"]), "network")
                for name, cfg in compiled.routers.items()}
    mother = networks[topo.mother.name]
    tunnels = []
    for u in topo.uplinks:
        m_if, u_if = _section(mother, u.iface), _section(networks[u.name], u.iface)
        tunnels.append(Tunnel(u.name, u.iface, _addrs(m_if), _addrs(u_if), int(str(m_if.options["metric"]))))
    return Rendered(topo, networks, tunnels)


def _section(pkg: UciPackage, name: str) -> UciSection:
    sec = pkg.get(name)
    assert sec is not None, f"rendered network has no section {name}"
    return sec


def _addrs(sec: UciSection) -> list[str]:
    value = sec.options["addresses"]
    return [a.split("/")[0] for a in (value if isinstance(value, tuple) else value.split())]


def lan_prefix(addrs: list[str]) -> int:
    """The longest prefix (at most /24) whose network holds every LAN address of the topology.

    Why: the examples put every router on one /24, but a topology may spread them wider; one
    network holding them all keeps "the uplinks sit on the mother's LAN" true without routing.
    """
    ips = [ipaddress.IPv4Address(a) for a in addrs]
    for plen in range(24, 0, -1):
        net = ipaddress.IPv4Network((ips[0], plen), strict=False)
        if all(ip in net for ip in ips):
            return plen
    raise AssertionError(f"no IPv4 network holds {addrs}")


def build_lan(lab: netlab.Lab, r: Rendered) -> None:
    """One namespace per router, each with a ``lan`` port on a bridge in the switch namespace."""
    t = r.topology
    lan_addrs: dict[str, list[str]] = {t.mother.name: [t.mother.host]}
    for u in t.uplinks:  # the uplink answers on `host` and, if it differs, on its `endpoint`
        lan_addrs[u.name] = list(dict.fromkeys([u.host, u.endpoint]))
    plen = lan_prefix([a for addrs in lan_addrs.values() for a in addrs])
    lab.add_host(SWITCH)
    lab.run(SWITCH, ["ip", "link", "add", "br0", "type", "bridge"])
    lab.run(SWITCH, ["ip", "link", "set", "br0", "up"])
    for i, (router, addrs) in enumerate(lan_addrs.items()):
        lab.add_host(router)
        port = f"p{i}"
        lab.link(router, SWITCH, f"{addrs[0]}/{plen}", None, name_a="lan", name_b=port)
        lab.run(SWITCH, ["ip", "link", "set", port, "master", "br0"])
        for extra in addrs[1:]:
            lab.run(router, ["ip", "addr", "add", f"{extra}/{plen}", "dev", "lan"])


def bring_up(lab: netlab.Lab, r: Rendered, networks: dict[str, UciPackage] | None = None) -> None:
    """Uplinks (the listeners) first, then the mother, as netifd on each router would."""
    nets = networks or r.networks
    for u in r.topology.uplinks:
        assert lab.bring_up_wireguard(u.name, nets[u.name]) == [u.iface]
    assert lab.bring_up_wireguard(r.mother, nets[r.mother]) == [u.iface for u in r.topology.uplinks]


def ping_tunnels(lab: netlab.Lab, r: Rendered, timeout: float) -> dict[str, tuple[bool, bool]]:
    """Per uplink: (mother -> uplink, uplink -> mother) over every rendered tunnel address, at once."""
    jobs: list[tuple[str, int, str, str]] = []
    for tun in r.tunnels:
        jobs += [(tun.uplink, 0, r.mother, a) for a in tun.uplink_addrs]
        jobs += [(tun.uplink, 1, tun.uplink, a) for a in tun.mother_addrs]
    result = {tun.uplink: [True, True] for tun in r.tunnels}
    with ThreadPoolExecutor(len(jobs)) as pool:  # why: each failing ping waits its whole timeout
        futures = [(up, side, pool.submit(lab.ping, host, addr, timeout=timeout))
                   for up, side, host, addr in jobs]
        for up, side, fut in futures:
            result[up][side] = result[up][side] and fut.result()
    return {up: (a, b) for up, (a, b) in result.items()}


# --------------------------------------------------------------------------- every example works


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_example_brings_up_working_tunnels(example: Path, tmp_path: Path, lab: netlab.Lab) -> None:
    r = render(example, tmp_path)
    assert r.tunnels, "an example without uplinks proves nothing"
    build_lan(lab, r)
    bring_up(lab, r)

    assert ping_tunnels(lab, r, PING_OK) == {t.uplink: (True, True) for t in r.tunnels}

    # the mother: one default route per tunnel at the rendered metric, all metrics distinct
    defaults = [x for x in lab.routes(r.mother) if x.startswith("default ")]
    for t in r.tunnels:
        assert f"default dev {t.iface} proto static scope link metric {t.metric}" in defaults
    metrics = [t.metric for t in r.tunnels]
    assert len(set(metrics)) == len(metrics), metrics
    # the uplinks route only the mother's tunnel address into the tunnel, never a default
    for t in r.tunnels:
        up_routes = lab.routes(t.uplink)
        assert not [x for x in up_routes if x.startswith("default ")]
        for a in t.mother_addrs:
            assert any(x.startswith(f"{a} dev {t.iface} ") for x in up_routes), up_routes
    # every handshake completed: each mother-side peer has a latest-handshake time
    rows = [line.split("\t") for line in lab.wg_dump(r.mother).splitlines()]
    shaken = {row[0] for row in rows if len(row) == 9 and row[5] != "0"}
    assert shaken == {t.iface for t in r.tunnels}
    assert lab.warnings == []


# --------------------------------------------------------------------------- and it can fail

BROKEN_EXAMPLE = HERE.parent / "examples" / "three-weighted.yaml"
BROKEN_UPLINK = "dsl"   # the middle one: cable (lower metric) and lte (higher) are the controls


def _wrong_key(r: Rendered, nets: dict[str, UciPackage]) -> None:
    """The uplink expects a different mother: its peer section holds some other valid key."""
    peer = _section(nets[BROKEN_UPLINK], f"mw_{BROKEN_UPLINK}_peer")
    other = netlab.gen_keypair().public
    assert peer.options["public_key"] != other
    peer.options["public_key"] = other


def _wrong_address(r: Rendered, nets: dict[str, UciPackage]) -> None:
    """The mother's tunnel address is not the one the uplink allows (a /30 outside the pool)."""
    iface = _section(nets[r.mother], f"mw_{BROKEN_UPLINK}")
    assert iface.options["addresses"] != ("198.18.0.2/30",)
    iface.options["addresses"] = ("198.18.0.2/30",)


def _wrong_port(r: Rendered, nets: dict[str, UciPackage]) -> None:
    """The mother sends the handshake to a port the uplink does not listen on."""
    peer = _section(nets[r.mother], f"mw_{BROKEN_UPLINK}_peer")
    peer.options["endpoint_port"] = str(int(str(peer.options["endpoint_port"])) + 1)


BREAKAGES: dict[str, Callable[[Rendered, dict[str, UciPackage]], None]] = {
    "wrong key": _wrong_key,
    "wrong address": _wrong_address,
    "wrong port": _wrong_port,
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_one_wrong_value_stops_exactly_that_tunnel(case: str, tmp_path: Path, lab: netlab.Lab) -> None:
    r = render(BROKEN_EXAMPLE, tmp_path)
    assert BROKEN_UPLINK in {t.uplink for t in r.tunnels} and len(r.tunnels) >= 3
    # mutate a re-parse of the rendered text, so the good copy stays untouched
    nets = {name: parse(package_text("network", pkg.sections), "network") for name, pkg in r.networks.items()}
    BREAKAGES[case](r, nets)
    build_lan(lab, r)
    bring_up(lab, r, nets)

    # all pings run at once with the same timeout: a control that pings rules out a slow lab
    got = ping_tunnels(lab, r, PING_FAIL)
    want = {t.uplink: (t.uplink != BROKEN_UPLINK,) * 2 for t in r.tunnels}
    assert got == want
