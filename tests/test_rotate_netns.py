"""`mwanctl keys rotate` against routers whose tunnels are real (namespaces + wireguard-go).

The routers are dropbear test routers bound to namespaces (tests/netifd_bridge.py): mwanctl
deploys and rotates through SSH exactly as against real routers, netifd's rebuild of an interface
really rebuilds a wireguard-go device from /etc/config/network, and the mother's mwan3 stand-in
really steers the client's flows (tests/rotate_lab.py). A client streams to a target behind the
uplinks while the keys change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from mwanctl.cli import main
from mwanctl.uci.parse import parse

try:
    from tests import netlab, rotate_lab
    from tests.routers import TestRouter
except ImportError:  # pragma: no cover
    import netlab  # type: ignore[no-redef]
    import rotate_lab  # type: ignore[no-redef]
    from routers import TestRouter  # type: ignore[no-redef]

pytestmark = [pytest.mark.netns, pytest.mark.ssh]


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    why = netlab.skip_reason()
    if why:
        pytest.skip(why)
    with netlab.Lab() as lab:
        yield lab


def run(site: Any, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(site.argv(*args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def store(site: Any) -> dict[str, Any]:
    return json.loads((site.state_dir / "lab" / "state.json").read_text())


def key_of(st: dict[str, Any], uplink: str, end: str, which: str = "current") -> dict[str, str] | None:
    return st["tunnels"][uplink][end].get(which)


def router_keys(r: TestRouter, uplink: str) -> tuple[str, str]:
    """(public key of the router's own private key, the peer public key) for one tunnel."""
    net = parse(r.config_text("network"), "network")
    iface, peer = net.get(f"mw_{uplink}"), net.get(f"mw_{uplink}_peer")
    assert iface is not None and peer is not None
    return netlab.public_key_of(str(iface.options["private_key"])), str(peer.options["public_key"])


def assert_store_matches_routers(site: Any, uplinks: list[str]) -> None:
    """New keys current, none pending, and both ends hold exactly them (config and live wg)."""
    st = store(site)
    mother = site.routers["mother"]
    dump = mother.run("wg show all dump").stdout
    epoch = int(mother.run("date +%s").stdout)
    for u in uplinks:
        up_key, m_key = key_of(st, u, "uplink"), key_of(st, u, "mother")
        assert up_key and m_key
        assert key_of(st, u, "uplink", "pending") is None and key_of(st, u, "mother", "pending") is None
        assert router_keys(site.routers[u], u) == (up_key["public"], m_key["public"])
        assert router_keys(mother, u) == (m_key["public"], up_key["public"])
        peers = [ln.split("\t") for ln in dump.splitlines() if ln.startswith(f"mw_{u}\t")]
        own = [p for p in peers if len(p) == 5]
        assert own and own[0][2] == m_key["public"]
        live = [p for p in peers if len(p) == 9]
        assert [p[1] for p in live] == [up_key["public"]]
        assert epoch - int(live[0][5]) < 120, f"no recent handshake on mw_{u}"


def test_keys_rotate_with_two_uplinks_loses_nothing(lab, router_factory, tmp_path, capsys):
    uplinks = ["u1", "u2"]
    site = rotate_lab.build(lab, router_factory, tmp_path, uplinks)
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, err
    rotate_lab.wait_tunnels(lab, uplinks)
    before = store(site)
    ping = rotate_lab.PingStream(lab).start()
    flows = rotate_lab.FlowStream(lab).start()
    time.sleep(1.0)
    t0 = time.monotonic()
    code, out, err = run(site, capsys, "keys", "rotate", str(site.path), "--yes")
    took = time.monotonic() - t0
    time.sleep(1.0)
    p, f = ping.stop(), flows.stop()
    print(f"rotate {took:.1f} s; ping lost {p.lost_count}/{p.sent} {p.lost}; "
          f"new flows lost {f.lost_count}/{f.sent} ({f.note})\n{err}")
    assert code == 0, err
    for u in uplinks:
        assert key_of(store(site), u, "uplink")["public"] != key_of(before, u, "uplink")["public"]
    assert_store_matches_routers(site, uplinks)
    assert f.lost_count == 0, f.lost
    assert p.lost_count == 0, p.lost
