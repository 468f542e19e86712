"""Every router ends a deploy in an outcome that says what it is on, whatever fails; ubus
details; no private key in any message; paramiko's own noise never reaches the terminal."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mwanctl.compile import Compiled
from mwanctl.deploy import Deployment, RouterOutcome
from mwanctl.errors import (
    ApplyError,
    ApplyInterrupted,
    AuthError,
    ConfirmError,
    ConnectError,
    ExitStatus,
    RolledBack,
)
from mwanctl.plan import RouterPlan
from mwanctl.transports.base import ApplyPlan, Receipt, RouterState, Transport, mask_secrets
from mwanctl.uci.changes import Op

try:
    from tests import rpcd_server as rs
    from tests.fake_bindings import FakeUbus, FakeUci
    from tests.test_transport_contract import ACL_FILE, FILES, GOOD_OPS, MWAN3_STATUS, make_plan
except ImportError:  # tests/ is not a package
    import rpcd_server as rs  # type: ignore[no-redef]
    from fake_bindings import FakeUbus, FakeUci  # type: ignore[no-redef]
    from test_transport_contract import ACL_FILE, FILES, GOOD_OPS, MWAN3_STATUS, make_plan  # type: ignore[no-redef]

PRIVATE = "aIvAU1nz5Q89ctvqxvGd2wYEqWxtFLeRizH3/BeK5Hc="   # in FILES' network (wg0)


# -- the orchestrator: a scripted transport per router (the transports are tested for real) --------

class Scripted(Transport):
    """A transport whose apply/confirm raise what the test says (orchestrator logic only)."""

    def __init__(self, router: str, on_apply: BaseException | None = None,
                 on_confirm: BaseException | None = None):
        super().__init__(router)
        self.kind, self.on_apply, self.on_confirm = "ssh", on_apply, on_confirm

    def read_state(self, packages: Any) -> RouterState:
        return RouterState(packages={})

    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        if self.on_apply:
            raise self.on_apply
        return Receipt.armed_now(self.router, self.kind, "tok", confirm_timeout)

    def confirm(self, receipt: Receipt | None = None) -> None:
        if self.on_confirm:
            raise self.on_confirm

    def rollback(self) -> bool:
        return False

    def query(self, names: Any) -> dict[str, str]:
        return {}

    def set_drained(self, iface: str, drained: bool, forget: Any = ()) -> None:
        pass


CASES: dict[str, tuple[BaseException | None, BaseException | None, str, ExitStatus]] = {
    "ok": (None, None, "applied", ExitStatus.OK),
    "batch": (ApplyError("batch: uci batch rejected a change"), None, "failed", ExitStatus.APPLY_FAILED),
    "cut": (ApplyInterrupted("cut: connection lost during apply"), None, "not-confirmed", ExitStatus.NOT_CONFIRMED),
    "auth": (AuthError("auth: wrong password"), None, "unreachable", ExitStatus.CONNECT),
    "late": (None, RolledBack("late: rolled back by the router before the confirm arrived"), "rolled-back",
             ExitStatus.ROLLED_BACK),
    "lost": (None, ConfirmError("lost: could not confirm"), "not-confirmed", ExitStatus.NOT_CONFIRMED),
    "gone": (None, ConnectError("gone: cannot connect"), "not-confirmed", ExitStatus.NOT_CONFIRMED),
    "bug": (ZeroDivisionError("boom"), None, "not-confirmed", ExitStatus.NOT_CONFIRMED),
}


def test_every_router_ends_in_an_outcome_whatever_fails() -> None:
    plan = RouterPlan("x", "uplink", {}, ApplyPlan(changes={"network": [Op("set", "network", "a", "b", "c")]},
                                                    expected={"network": ""}))
    seen: dict[str, RouterOutcome] = {}
    for name, (on_apply, on_confirm, _status, _code) in CASES.items():
        # the orchestrator alone: no compiled site is needed to apply and confirm one router
        dep = Deployment(compiled=Compiled("x", {}), connect=lambda r, c=on_confirm: Scripted(r, None, c),
                         confirm_timeout=30)
        seen[name] = dep.apply_router(name, plan, Scripted(name, on_apply, on_confirm))
    for name, (_, _, status, code) in CASES.items():
        o = seen[name]
        assert (o.status, o.exit_status) == (status, code), (name, o)
        assert f"{name}: {name}:" not in f"{name}: {o.message}"      # the name once per line
        assert "may have armed" not in o.message
    assert "nothing was committed" in seen["auth"].message
    assert seen["late"].message.startswith("applied, but rolled back by the router")


# -- ubus details ------------------------------------------------------------------------------

def _rpcd(tmp_path: Path, **kw: Any) -> rs.Rpcd:
    rs.write_files(tmp_path / "config", FILES)
    groups = {**rs.DEFAULT_ACL_GROUPS, **json.loads(ACL_FILE.read_text())}
    users = [rs.User("deploy", "pw", ["mwanctl"], ["mwanctl"]), rs.User("reader", "pw", ["superuser"], [])]
    return rs.Rpcd(tmp_path / "config", users=users, acl_groups=groups, time_scale=0.05,
                   mwan3_status=MWAN3_STATUS, **kw)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[rs.RpcdServer]:
    with rs.RpcdServer(_rpcd(tmp_path)) as s:
        yield s


def test_ubus_apply_logs_in_again_when_its_session_expired(srv: rs.RpcdServer, tmp_path: Path) -> None:
    from mwanctl.transports.ubus import UbusTransport
    t = UbusTransport("r1", srv.url, "deploy", "pw", session_timeout=10)
    t.read_state(["mwan3"])
    time.sleep(10 * 0.05 + 0.3)                   # idle longer than the session's timeout
    receipt = t.apply(make_plan(GOOD_OPS), 30)
    UbusTransport("r1", srv.url, "deploy", "pw").confirm(receipt)
    assert srv.rpcd.pending is None


def test_ubus_permission_error_before_staging_is_not_an_armed_rollback(srv: rs.RpcdServer) -> None:
    from mwanctl.transports.ubus import UbusTransport
    with pytest.raises(AuthError):
        UbusTransport("r1", srv.url, "reader", "pw").apply(make_plan(GOOD_OPS), 30)
    assert srv.rpcd.pending is None
    assert not any(req["params"][2] == "apply" for _, req in srv.rpcd.log)


def test_ubus_rollback_destroys_the_apply_session(srv: rs.RpcdServer) -> None:
    from mwanctl.transports.ubus import UbusTransport
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    receipt = t.apply(make_plan(GOOD_OPS), 30)
    assert t.rollback() is True
    assert receipt.token not in srv.rpcd.sessions


def test_ubus_url_honours_access_port() -> None:
    from mwanctl.connect import ubus_url
    assert ubus_url("192.0.2.1", None) == "https://192.0.2.1/ubus"
    assert ubus_url("192.0.2.1", 8443) == "https://192.0.2.1:8443/ubus"
    assert ubus_url("fd00::1", 8443) == "https://[fd00::1]:8443/ubus"


def test_no_private_key_in_apply_mismatch_messages(srv: rs.RpcdServer, tmp_path: Path) -> None:
    from mwanctl.transports.ssh import first_difference
    from mwanctl.transports.ubus import UbusTransport
    plan = make_plan({"network": [Op("set", "network", "wg0", "mtu", "1380")]})
    plan.expected["network"] = plan.expected["network"].replace(PRIVATE, "B" * 43 + "=")
    with pytest.raises(ApplyError) as e:
        UbusTransport("r1", srv.url, "deploy", "pw").apply(plan, 30)
    assert PRIVATE not in str(e.value) and "B" * 43 not in str(e.value) and "<hidden>" in str(e.value)
    text = FILES["network"]
    msg = first_difference(text.replace(PRIVATE, "B" * 43 + "="), text)
    assert PRIVATE not in msg and "<hidden>" in msg
    assert PRIVATE not in mask_secrets(text)


# -- local: the fake bindings refuse what the real ones refuse --------------------------------

def test_fake_pyuci_refuses_like_pyuci_0_10_3(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("config thing 's'\n")
    u = FakeUci.Uci(confdir=str(tmp_path), savedir=str(tmp_path / "save"))
    with pytest.raises(FakeUci.UciException, match="Internal uci error"):
        u.reorder("p", "s", 0)
    with pytest.raises(NotImplementedError):
        u.add("p", "thing")
    with pytest.raises(FakeUci.UciException, match="Unsupported value"):
        u.set("p", "s", "o", 5)
    with pytest.raises(FakeUci.UciException):
        u.set("p", "nosuch", "o", "v")
    u.delete("p", "nosuch")  # pyuci ignores uci_delete's answer
    ubus = FakeUbus()
    ubus.connect()
    with pytest.raises(RuntimeError, match="already connected"):
        ubus.connect()


def _local(tmp_path: Path, ubus: FakeUbus) -> Any:
    from mwanctl.transports.local import LocalTransport
    FakeUci.user_delta = tmp_path / "uci-user"
    return LocalTransport("local", confdir=str(tmp_path / "config"), statedir=str(tmp_path / "state"),
                          uci_module=FakeUci, ubus_module=ubus, user_delta=str(FakeUci.user_delta))


def test_two_local_transports_share_the_one_ubus_connection(tmp_path: Path) -> None:
    rs.write_files(tmp_path / "config", FILES)
    ubus = FakeUbus()
    a, b = _local(tmp_path, ubus), _local(tmp_path, ubus)
    assert json.loads(a.query(["mwan3_status"])["mwan3_status"]) == MWAN3_STATUS
    assert json.loads(b.query(["mwan3_status"])["mwan3_status"]) == MWAN3_STATUS  # no RuntimeError
    assert ubus.connects == 1
    a.close()
    assert ubus.connected           # b still uses it
    b.close()
    assert not ubus.connected


def test_a_stray_uncommitted_change_in_tmp_uci_is_named(tmp_path: Path) -> None:
    rs.write_files(tmp_path / "config", FILES)
    before = (tmp_path / "config" / "mwan3").read_bytes()
    t = _local(tmp_path, FakeUbus())
    FakeUci.user_delta.mkdir()
    (FakeUci.user_delta / "mwan3").write_text("mwan3.wan.up='99'\n")
    with pytest.raises(ApplyError, match=r"1 uncommitted change\(s\) to mwan3 .*uci revert mwan3"):
        t.apply(make_plan(GOOD_OPS), 5)
    assert (tmp_path / "config" / "mwan3").read_bytes() == before
    # what it prevents: libuci (and the fake) would mix the stray change into the deploy
    u = FakeUci.Uci(confdir=str(tmp_path / "config"))
    assert u.get("mwan3", "wan", "up") == "99"


# -- paramiko's own log output never reaches the terminal --------------------------------------

def _server(mode: str) -> tuple[socket.socket, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve() -> None:
        held = []
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if mode == "close":
                conn.close()
            elif mode == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(range(256)) * 8)
                conn.close()
            else:
                held.append(conn)  # never answers

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return srv, th


@pytest.mark.parametrize("mode", ["close", "garbage", "silent"])
def test_a_broken_ssh_server_gives_one_error_line(mode: str, tmp_path: Path) -> None:
    pytest.importorskip("paramiko")
    srv, _ = _server(mode)
    port = srv.getsockname()[1]
    topo = tmp_path / "t.py"
    topo.write_text(
        "import sys\n"
        "from mwanctl.transports.ssh import SshTransport\n"
        "from mwanctl.errors import MwanctlError\n"
        f"t = SshTransport('dsl', '127.0.0.1', {port}, known_hosts={str(tmp_path / 'kh')!r}, "
        "use_agent=False, password='x', connect_timeout=2)\n"
        "try:\n    t.read_state(['network'])\n"
        "except MwanctlError as e:\n    print('mwanctl: error: ' + str(e), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, str(topo)], capture_output=True, text=True, timeout=30)
    srv.close()
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("mwanctl: error: cannot connect to dsl") and "Traceback" not in res.stderr
