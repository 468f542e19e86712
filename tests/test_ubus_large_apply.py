"""A change too big for one uhttpd request still applies over ubus, atomically.

Why: uhttpd refuses a /ubus request body above 64 KiB (ubus.c ``UH_UBUS_MAX_POST_SIZE``; the rpcd
stand-in does the same). A mother with ~50 uplinks stages more than that in one batch, which
bench/deploy.py found failing with "no JSON-RPC reply". The transport now splits such a batch into
consecutive requests in the same session; nothing is committed before ``uci apply``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mwanctl.transports.ubus import MAX_POST, UbusTransport
from mwanctl.uci.changes import Op

try:
    from tests import rpcd_server as rs
    from tests.test_transport_contract import ACL_FILE, FILES, make_plan
except ImportError:
    import rpcd_server as rs  # type: ignore[no-redef]
    from test_transport_contract import ACL_FILE, FILES, make_plan  # type: ignore[no-redef]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[rs.RpcdServer]:
    rs.write_files(tmp_path / "config", FILES)
    groups = {"unauthenticated": rs.DEFAULT_ACL_GROUPS["unauthenticated"], **json.loads(ACL_FILE.read_text())}
    rpcd = rs.Rpcd(tmp_path / "config", users=[rs.User("deploy", "pw", ["mwanctl"], ["mwanctl"])],
                   acl_groups=groups, time_scale=0.1)
    with rs.RpcdServer(rpcd) as s:
        yield s


def big_ops(n: int) -> list[Op]:
    """``n`` new WireGuard-like interfaces on network, each with a few longish options."""
    ops: list[Op] = []
    for i in range(n):
        name = f"mw_big{i}"
        ops += [Op("add_section", "network", name, None, "interface"),
                Op("set", "network", name, "proto", "wireguard"),
                Op("set", "network", name, "private_key", "A" * 43 + "="),
                Op("set_list", "network", name, "addresses", (f"10.254.{i // 64}.{(i % 64) * 4 + 2}/30",)),
                Op("set", "network", name, "description", f"a description long enough to add up {i:04d}")]
    return ops


def test_the_stand_in_refuses_a_body_over_the_limit(srv: rs.RpcdServer) -> None:
    """The limit is real in the test rig, so the next test cannot pass by accident."""
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "call",
                        "params": [rs.NULL_SID, "session", "access", {"pad": "x" * 1000}]}
                       for i in range(70)]).encode()
    assert len(body) > MAX_POST
    r = httpx.post(srv.url, content=body, headers={"Content-Type": "application/json"})
    assert r.json()["error"]["code"] == -32700


def test_an_apply_bigger_than_one_request_is_split_and_commits_whole(srv: rs.RpcdServer, tmp_path: Path) -> None:
    plan = make_plan({"network": big_ops(400)})
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    t.read_state(["network"])
    before = t.counters.round_trips
    t.apply(plan, 30)
    trips = t.counters.round_trips - before
    # stage went as several requests: more than stage + commit (+ the peer check, none here)
    assert trips > 2
    assert t.counters.bytes_sent > MAX_POST
    t.confirm()
    text = (tmp_path / "config" / "network").read_text()
    assert all(f"config interface 'mw_big{i}'" in text for i in range(400))
    assert t.read_state(["network"]).pending is None


def test_small_batches_stay_one_request(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    t.read_state(["network", "mwan3"])
    assert t.counters.round_trips == 2  # login, then one batch
