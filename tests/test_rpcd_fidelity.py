"""Where the stand-in (tests/rpcd_server.py) must follow the real rpcd/uhttpd beyond the replayed
transcript: the behaviours the vectors' README records "seen the same day", each checked against
rpcd's uci.c/file.c and uhttpd's ubus.c, one test each, plus the recorded late confirm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

try:
    from tests import rpcd_server as rs
except ImportError:  # tests/ is not a package
    import rpcd_server as rs  # type: ignore[no-redef]

LATE = json.loads((Path(__file__).parent / "vectors" / "rpcd" / "late-confirm.json").read_text())
ACL_FILE = Path(__file__).parent.parent / "mwanctl" / "data" / "rpcd-acl-mwanctl.json"


class Client:
    """Calls straight into the emulator's JSON-RPC handler (no HTTP needed for these facts)."""

    def __init__(self, rpcd: rs.Rpcd):
        self.rpcd, self.sid = rpcd, rs.NULL_SID

    def call(self, obj: str, method: str, args: dict[str, Any] | None = None, sid: str | None = None) -> Any:
        req = {"jsonrpc": "2.0", "id": 1, "method": "call",
               "params": [sid or self.sid, obj, method, args or {}]}
        reply = json.loads(self.rpcd.handle(json.dumps(req).encode()))
        return reply.get("result", reply.get("error"))

    def login(self, user: str = "root", password: str = "rigpass") -> str:
        res = self.call("session", "login", {"username": user, "password": password}, sid=rs.NULL_SID)
        self.sid = res[1]["ubus_rpc_session"]
        return self.sid


@pytest.fixture
def c(tmp_path: Path) -> Client:
    rs.write_files(tmp_path / "config", rs.RECORDED_FILES)
    cl = Client(rs.Rpcd(tmp_path / "config", time_scale=0.05, mwan3_status={}))
    cl.login()
    return cl


def changes(c: Client, config: str) -> list[Any]:
    return c.call("uci", "changes", {"config": config})[1]["changes"]


def test_an_unknown_object_is_32000_before_any_acl_check(c: Client) -> None:
    assert c.call("nosuch", "status", sid=rs.NULL_SID)["code"] == -32000
    assert c.call("network.interface.nosuch", "status", sid="0123456789abcdef0123456789abcdef")["code"] == -32000
    assert c.call("uci", "get", {"config": "network"}, sid=rs.NULL_SID)["code"] == -32002  # known object


def test_file_exec_of_a_missing_program_is_4_and_a_bare_name_is_found_on_path(tmp_path: Path) -> None:
    rs.write_files(tmp_path / "config", rs.RECORDED_FILES)
    groups = {**rs.DEFAULT_ACL_GROUPS, **json.loads(ACL_FILE.read_text())}
    c = Client(rs.Rpcd(tmp_path / "config", users=[rs.User("deploy", "pw", ["mwanctl"], ["mwanctl"])],
                       acl_groups=groups, wg_dump="wg0\tX\tY\t1\toff\n", mwan3_status={}))
    c.login("deploy", "pw")
    # missing: 4 even though the ACL would not allow it anyway (the lookup comes first)
    assert c.call("file", "exec", {"command": "/usr/bin/nosuch", "params": []}) == [4]
    # a bare `wg` is looked up in PATH, then the ACL is matched against /usr/bin/wg + args
    assert c.call("file", "exec", {"command": "wg", "params": ["show", "all", "dump"]})[1]["stdout"].startswith("wg0")
    assert c.call("file", "exec", {"command": "wg", "params": ["show"]}) == [6]   # not in the ACL
    no_wg = Client(rs.Rpcd(tmp_path / "config", programs=frozenset({"/bin/date"})))
    no_wg.login()
    assert no_wg.call("file", "exec", {"command": "/usr/bin/wg", "params": ["show", "all", "dump"]}) == [4]


def test_add_of_an_existing_name_with_another_type_changes_its_type(c: Client) -> None:
    assert c.call("uci", "add", {"config": "network", "type": "device", "name": "wan"}) == [0, {"section": "wan"}]
    got = c.call("uci", "get", {"config": "network", "section": "wan"})[1]["values"]
    assert got[".type"] == "device" and got["proto"] == "dhcp"  # options kept, like uci_set
    assert changes(c, "network") == [["set", "wan", "device"]]
    c.call("uci", "revert", {"config": "network"})
    assert c.call("uci", "add", {"config": "network", "type": "interface", "name": "wan"}) == [0, {"section": "wan"}]
    assert changes(c, "network") == []  # same type: nothing to stage


def test_a_set_or_order_with_one_bad_item_stages_nothing(c: Client) -> None:
    assert c.call("uci", "set", {"config": "network", "section": "wan",
                                 "values": {"metric": "5", "bad-name": "x"}}) == [2]
    assert changes(c, "network") == []
    assert c.call("uci", "order", {"config": "network", "sections": ["wan", "nosuch", "lan"]}) == [4]
    assert changes(c, "network") == []
    assert c.call("uci", "add", {"config": "network", "type": "interface", "name": "x",
                                 "values": {"ok": "1", "bad-name": "2"}}) == [2]
    assert changes(c, "network") == []


def test_delete_of_options_answers_4_only_when_none_existed(c: Client) -> None:
    assert c.call("uci", "delete", {"config": "network", "section": "wan",
                                    "options": ["proto", "nosuch"]}) == [0]
    assert changes(c, "network") == [["remove", "wan", "proto"]]
    assert c.call("uci", "delete", {"config": "network", "section": "wan", "options": ["nosuch"]}) == [4]
    assert c.call("uci", "delete", {"config": "network", "section": "wan", "option": "nosuch"}) == [4]
    assert changes(c, "network") == [["remove", "wan", "proto"]]


def test_a_plain_apply_while_a_rollback_is_pending_discards_the_snapshot(c: Client, tmp_path: Path) -> None:
    import time
    before = (tmp_path / "config" / "network").read_bytes()
    c.call("uci", "set", {"config": "network", "section": "wan", "values": {"metric": "7"}})
    assert c.call("uci", "apply", {"rollback": True, "timeout": 10}) == [0]
    changed = (tmp_path / "config" / "network").read_bytes()
    assert changed != before
    assert c.call("uci", "apply", {}) == [0]           # plain: no 6, commits nothing
    time.sleep(10 * 0.05 + 0.4)                         # the timer fires...
    assert (tmp_path / "config" / "network").read_bytes() == changed  # ...and restores nothing
    assert c.call("uci", "confirm") == [5]              # and nothing is pending any more


def test_the_recorded_late_confirm_is_5_from_a_new_session(c: Client, tmp_path: Path) -> None:
    """late-confirm.json: apply (rollback, 30 s); 40 s later a fresh login gets a NEW session and
    `uci confirm` answers [5]. The stand-in, at 0.05 s per second, must do the same."""
    recorded = [x for x in LATE["calls"] if isinstance(x.get("request"), dict)]  # batches are lists
    login_after = next(x for x in recorded if x["t"] > 1 and x["request"]["params"][2] == "login")
    confirm = next(x for x in recorded if x["request"]["params"][2] == "confirm")
    first_sid = recorded[0]["response"]["result"][1]["ubus_rpc_session"]
    assert login_after["response"]["result"][1]["ubus_rpc_session"] != first_sid
    import time
    sid = c.sid
    c.call("uci", "set", {"config": "network", "section": "wan", "values": {"metric": "7"}})
    assert c.call("uci", "apply", {"rollback": True, "timeout": 30}) == [0]
    time.sleep(40 * 0.05)
    fresh = Client(c.rpcd)
    assert fresh.login() != sid
    assert fresh.call("uci", "confirm") == confirm["response"]["result"] == [5]
