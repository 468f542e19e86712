"""Replay every call of the recorded real rpcd/uhttpd transcript against tests/rpcd_server.py.

Equal responses (session ids normalised) are the proof that the stand-in answers as real rpcd does,
which is what makes the ubus transport's tests meaningful.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    from tests import rpcd_server as rs
except ImportError:  # tests/ is not a package
    import rpcd_server as rs  # type: ignore[no-redef]

TRANSCRIPT = Path(__file__).parent / "vectors" / "rpcd" / "transcript.json"
CALLS: list[dict[str, Any]] = json.loads(TRANSCRIPT.read_text())["calls"]
SCALE = 0.25  # the stand-in's clock runs 4x faster: the recorded 4 s rollback takes 1 s here

# Waits the recording had between calls (the title says what it waited for), in recorded seconds.
WAIT_BEFORE = {39: 5.0}  # "uci changes after automatic rollback": apply had timeout 4


def _normalise(obj: Any, sids: dict[str, str]) -> Any:
    """Replace session ids by the recorded ones they stand for."""
    if isinstance(obj, str):
        return sids.get(obj, obj)
    if isinstance(obj, list):
        return [_normalise(x, sids) for x in obj]
    if isinstance(obj, dict):
        return {k: _normalise(v, sids) for k, v in obj.items()}
    return obj


@pytest.fixture
def server(tmp_path: Path) -> Iterator[rs.RpcdServer]:
    rs.write_files(tmp_path / "config", rs.RECORDED_FILES)
    rpcd = rs.Rpcd(tmp_path / "config", time_scale=SCALE)
    with rs.RpcdServer(rpcd) as srv:
        yield srv


def _login_sid(call: dict[str, Any]) -> str | None:
    res = call["response"].get("result")
    if call["request"]["params"][1:3] == ["session", "login"] and isinstance(res, list) and len(res) == 2:
        return str(res[1]["ubus_rpc_session"])
    return None


def test_transcript_replays_identically(server: rs.RpcdServer) -> None:
    recorded_to_live: dict[str, str] = {}
    live_to_recorded: dict[str, str] = {}
    mismatches = []
    with httpx.Client() as client:
        for call in CALLS:
            time.sleep(WAIT_BEFORE.get(call["n"], 0.0) * SCALE)
            request = _normalise(call["request"], recorded_to_live)
            reply = client.post(server.url, content=json.dumps(request)).json()
            recorded_sid = _login_sid(call)
            if recorded_sid is not None and "result" in reply and len(reply["result"]) == 2:
                live = reply["result"][1]["ubus_rpc_session"]
                recorded_to_live[recorded_sid] = live
                live_to_recorded[live] = recorded_sid
            got = _normalise(reply, live_to_recorded)
            if got != call["response"]:
                mismatches.append(f"#{call['n']} {call['title']}:\n  want {call['response']}\n  got  {got}")
    assert not mismatches, "\n".join(mismatches)


def test_transcript_covers_the_behaviours_the_transport_relies_on() -> None:
    """Guard against a truncated vector file silently weakening the replay."""
    titles = " | ".join(c["title"] for c in CALLS)
    for needle in ("wrong password", "apply rollback=true", "uci confirm", "automatic rollback",
                   "commit during pending apply", "reader: uci set", "destroyed SID"):
        assert needle in titles


def _call(client: httpx.Client, url: str, sid: str, obj: str, method: str, args: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": "call", "params": [sid, obj, method, args]}
    return client.post(url, json=body).json()


def _login(client: httpx.Client, url: str, user: str = "root", timeout: int | None = None) -> str:
    args: dict[str, Any] = {"username": user, "password": "rigpass"}
    if timeout is not None:
        args["timeout"] = timeout
    return str(_call(client, url, rs.NULL_SID, "session", "login", args)["result"][1]["ubus_rpc_session"])


def test_idle_timeout_expires_session(server: rs.RpcdServer) -> None:
    """§4.4: the timeout is an idle timeout, re-armed by every use; expiry gives -32002."""
    with httpx.Client() as c:
        sid = _login(c, server.url, timeout=2)  # 0.5 s at SCALE
        for _ in range(3):
            time.sleep(0.3)
            assert _call(c, server.url, sid, "uci", "configs", {})["result"][0] == 0
        time.sleep(0.8)
        assert _call(c, server.url, sid, "uci", "configs", {})["error"]["code"] == -32002


def test_rollback_restores_files_byte_for_byte(server: rs.RpcdServer, tmp_path: Path) -> None:
    before = (tmp_path / "config" / "mwan3").read_bytes()
    with httpx.Client() as c:
        sid = _login(c, server.url)
        _call(c, server.url, sid, "uci", "set", {"config": "mwan3", "section": "wan", "values": {"up": "2"}})
        assert _call(c, server.url, sid, "uci", "apply", {"rollback": True, "timeout": 60})["result"] == [0]
        assert (tmp_path / "config" / "mwan3").read_bytes() != before
        other = _call(c, server.url, _login(c, server.url, "reader"), "uci", "confirm", {})
        assert other["result"] == [6]  # only the applying session may confirm
        assert _call(c, server.url, sid, "uci", "rollback", {})["result"] == [0]
    assert (tmp_path / "config" / "mwan3").read_bytes() == before


def test_batch_and_protocol_errors(server: rs.RpcdServer) -> None:
    with httpx.Client() as c:
        sid = _login(c, server.url)
        batch = [{"jsonrpc": "2.0", "id": i, "method": "call", "params": p} for i, p in enumerate([
            [sid, "uci", "get", {"config": "mwan3", "section": "wan", "option": "up"}],
            [sid, "nosuch", "status", {}],
            [sid, "uci", "get"],
            [sid, "uci", "get", {"config": "mwan3", "ubus_rpc_session": sid}],
        ])]
        replies = c.post(server.url, json=batch).json()
        assert replies[0]["result"] == [0, {"value": "8"}]
        assert [r["error"]["code"] for r in replies[1:]] == [-32000, -32700, -32602]
        assert c.post(server.url, content=b"{nope").json()["error"]["code"] == -32700
