"""UbusTransport specifics: rpcd errors as one-line messages, TLS pinning, fresh-connection confirm."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mwanctl.errors import ApplyError, AuthError, CommandError, ConnectError, TransportError
from mwanctl.transports.ubus import Call, UbusTransport, ops_to_calls
from mwanctl.uci.changes import Op

try:
    from tests import rpcd_server as rs
    from tests.test_transport_contract import (
        ACL_FILE,
        FILES,
        GOOD_OPS,
        MWAN3_STATUS,
        make_plan,
    )
except ImportError:
    import rpcd_server as rs  # type: ignore[no-redef]
    from test_transport_contract import (  # type: ignore[no-redef]
        ACL_FILE,
        FILES,
        GOOD_OPS,
        MWAN3_STATUS,
        make_plan,
    )


def _rpcd(tmp_path: Path, **kw: object) -> rs.Rpcd:
    rs.write_files(tmp_path / "config", FILES)
    groups = {**rs.DEFAULT_ACL_GROUPS, **json.loads(ACL_FILE.read_text())}
    users = [rs.User("deploy", "pw", ["mwanctl"], ["mwanctl"]), rs.User("reader", "pw", ["superuser"], []),
             rs.User("nobody", "pw", ["unauthenticated"], [])]
    return rs.Rpcd(tmp_path / "config", users=users, acl_groups=groups, time_scale=0.1, **kw)  # type: ignore[arg-type]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[rs.RpcdServer]:
    with rs.RpcdServer(_rpcd(tmp_path, mwan3_status=MWAN3_STATUS, wg_dump="wg0\tpriv\tpub\t51820\toff\n"
                             "wg0\tPEERKEY\t(none)\t1.2.3.4:51820\t10.0.0.2/32\t0\t0\t0\toff\n")) as s:
        yield s


def test_wrong_password_is_an_auth_error(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "deploy", "wrong")
    with pytest.raises(AuthError, match="wrong username or password for deploy"):
        t.read_state(["mwan3"])


def test_missing_acl_names_the_config(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "reader", "pw")
    assert t.read_state(["mwan3"]).packages["mwan3"] is not None  # reads are allowed
    with pytest.raises(AuthError, match="lacks ACL for ubus uci.revert|lacks ACL for uci/mwan3"):
        t.apply(make_plan(GOOD_OPS), 10)
    nobody = UbusTransport("r1", srv.url, "nobody", "pw")
    with pytest.raises(AuthError, match="access denied to ubus uci.get"):
        nobody.read_state(["mwan3"])


def test_pending_apply_message_gives_seconds_left(srv: rs.RpcdServer) -> None:
    a = UbusTransport("r1", srv.url, "deploy", "pw")
    a.apply(make_plan(GOOD_OPS), 300)
    b = UbusTransport("r1", srv.url, "deploy", "pw")
    with pytest.raises(ApplyError, match=r"another apply is pending on r1; confirm or wait (29\d|300) s"):
        b.apply(make_plan({"network": [Op("set", "network", "wan", "metric", "5")]}), 10)
    pending = b.read_state(["mwan3"]).pending
    assert pending is not None and 290 <= pending.deadline <= 300 and "pid" in pending.owner
    a.rollback()


def test_confirm_uses_a_fresh_connection_and_login(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    receipt = t.apply(make_plan(GOOD_OPS), 30)
    n = len(srv.rpcd.log)
    UbusTransport("r1", srv.url, "deploy", "pw").confirm(receipt)
    apply_port = next(port for port, req in srv.rpcd.log[:n] if req["params"][2] == "apply")
    confirm = [(port, req["params"][1:3]) for port, req in srv.rpcd.log[n:]]
    assert [c[1] for c in confirm] == [["session", "login"], ["uci", "confirm"], ["session", "destroy"]]
    assert confirm[0][0] != apply_port
    assert srv.rpcd.pending is None
    assert receipt.token not in srv.rpcd.sessions  # the apply session (and its save dir) is gone


def test_round_trips_and_restart_events(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    t.read_state(["mwan3", "network"])
    assert t.counters.round_trips == 2  # login + one batch
    plan = make_plan(GOOD_OPS)
    plan.restart_ifaces = ["wg0"]
    plan.check_peers = {"wg0": ["PEERKEY"]}
    before = t.counters.round_trips
    t.apply(plan, 30)
    # stage, order, apply, restart, wg dump
    assert t.counters.round_trips - before == 5
    assert t.counters.bytes_sent > 0 and t.counters.bytes_received > 0
    assert ("ifdown", "wg0") in srv.rpcd.events and ("ifup", "wg0") in srv.rpcd.events
    assert ("config.change", "mwan3") in srv.rpcd.events
    t.confirm()


def test_missing_peer_rolls_back(srv: rs.RpcdServer, tmp_path: Path) -> None:
    before = (tmp_path / "config" / "network").read_bytes()
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    plan = make_plan({"network": [Op("set", "network", "wg0", "mtu", "1380")]})
    plan.check_peers = {"wg0": ["OTHERKEY"]}
    t.peer_check_tries, t.peer_check_pause = 2, 0.0
    with pytest.raises(ApplyError, match="peers missing.*rolled back"):
        t.apply(plan, 30)
    assert (tmp_path / "config" / "network").read_bytes() == before


def test_query_and_drain(srv: rs.RpcdServer) -> None:
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    out = t.query(["mwan3_status", "wg_dump", "uptime"])
    assert json.loads(out["mwan3_status"]) == MWAN3_STATUS
    assert "PEERKEY" in out["wg_dump"] and 12345.67 <= float(out["uptime"].split()[0]) < 12400
    t.set_drained("wan", True)
    t.set_drained("wan", False)
    assert [e for e in srv.rpcd.events if e[0].startswith("mwan3")] == [("mwan3 ifdown", "wan"), ("mwan3 ifup", "wan")]


def test_mwan3_not_installed_and_timeouts(tmp_path: Path) -> None:
    rpcd = _rpcd(tmp_path, script_timeout=1)
    rpcd.hang[("uci", "get")] = 5
    with rs.RpcdServer(rpcd) as s:
        t = UbusTransport("r1", s.url, "deploy", "pw")
        assert "ubus object mwan3 not found (is mwan3 installed?)" in t.query(["mwan3_status"])["mwan3_status"]
        with pytest.raises(ConnectError, match="timed out"):
            t.read_state(["mwan3"])


def test_unreachable_router_is_a_connect_error() -> None:
    t = UbusTransport("r1", "http://127.0.0.1:9/ubus", "deploy", "pw", timeout=2)
    with pytest.raises(ConnectError, match="cannot connect"):
        t.read_state(["mwan3"])


def _self_signed(tmp_path: Path) -> tuple[Path, Path, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenWrt")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    crt, pem = tmp_path / "uhttpd.crt", tmp_path / "uhttpd.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    fp = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return crt, pem, fp


def test_tls_self_signed_needs_a_pin(tmp_path: Path) -> None:
    crt, key, fp = _self_signed(tmp_path)
    rpcd = _rpcd(tmp_path, mwan3_status=MWAN3_STATUS)
    with rs.RpcdServer(rpcd, certfile=crt, keyfile=key) as s:
        assert s.url.startswith("https://")
        with pytest.raises(ConnectError, match="certificate"):
            UbusTransport("r1", s.url, "deploy", "pw").read_state(["mwan3"])
        pinned = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
        ok = UbusTransport("r1", s.url, "deploy", "pw", tls_fingerprint=f"sha256:{pinned}")
        assert ok.read_state(["mwan3"]).packages["mwan3"] is not None
        bad = UbusTransport("r1", s.url, "deploy", "pw", tls_fingerprint="sha256:" + "00" * 32)
        with pytest.raises(ConnectError, match="fingerprint"):
            bad.read_state(["mwan3"])
        assert not any(r["params"][1:3] == ["session", "login"] and r["params"][3].get("username") == "deploy"
                       for _, r in rpcd.log[1:])  # only the pinned client logged in: the bad pin sent nothing
    with pytest.raises(ValueError):
        UbusTransport("r1", "https://x/ubus", tls_fingerprint="sha256:abc")


def test_ops_to_calls_groups_values_and_sends_strings() -> None:
    calls = ops_to_calls("mwan3", [
        Op("add_section", "mwan3", "m2", None, "member"),
        Op("set", "mwan3", "m2", "interface", "wan"),
        Op("set_list", "mwan3", "m2", "track_ip", ("1.1.1.1", "9.9.9.9")),
        Op("delete_option", "mwan3", "wan", "up"),
        Op("delete_option", "mwan3", "wan", "down"),
        Op("reorder", "mwan3", "m2", None, "0"),
        Op("delete_section", "mwan3", "old"),
    ])
    assert [(c.method, c.args) for c in calls] == [
        ("add", {"config": "mwan3", "type": "member", "name": "m2"}),
        ("set", {"config": "mwan3", "section": "m2", "values": {"interface": "wan", "track_ip": ["1.1.1.1", "9.9.9.9"]}}),
        ("delete", {"config": "mwan3", "section": "wan", "options": ["up", "down"]}),
        ("delete", {"config": "mwan3", "section": "old"}),
    ]


def test_local_transport_without_bindings_says_what_to_install() -> None:
    from mwanctl.transports.local import LocalTransport

    with pytest.raises(TransportError, match="python3-uci and python3-ubus .pip extra mwanctl.openwrt.."):
        LocalTransport()


def test_shipped_acl_is_enough_and_nothing_more(tmp_path: Path) -> None:
    acl = json.loads(ACL_FILE.read_text())["mwanctl"]
    assert set(acl["write"]["uci"]) == set(acl["read"]["uci"]) == {"mwan3", "network", "firewall", "dhcp"}
    assert "*" not in json.dumps(acl["read"]["ubus"]).replace("network.interface.*", "")
    assert "commit" in acl["write"]["ubus"]["uci"]


def test_move_peer_live_renews_and_the_rollback_renews_again(srv: rs.RpcdServer) -> None:
    """Key rotation on a ubus mother: `wg set` through rpcd's file exec (allowed by the shipped
    ACL) creates the new peer, another gives it the allowed IPs, then the renew; the explicit rollback renews the interface again (its change must go
    back live). Without a pending apply of this session nothing is sent."""
    old, new = "O/EWNzAhDBaGgzqjCad0jNVCEjwlmRkIuD7xJBze+mY=", "DmPnfTYIqjc05yRCY/BtCgilESE9SM+HjvLyJMn9kQo="
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    with pytest.raises(CommandError, match="no apply of this session is pending"):
        t.move_peer_live("wg0", new, ["0.0.0.0/0"], "192.0.2.10:51820", renew=True)
    moves = ("wg peer add", "wg peer move", "renew")
    assert not [e for e in srv.rpcd.events if e[0] in moves]
    t.apply(make_plan(GOOD_OPS), 30)
    t.move_peer_live("wg0", new, ["0.0.0.0/0"], "192.0.2.10:51820", renew=True)
    assert [e for e in srv.rpcd.events if e[0] in moves] == [
        ("wg peer add", "wg0"), ("wg peer move", "wg0"), ("renew", "wg0")]
    exec_params = [req["params"][3]["params"] for _, req in srv.rpcd.log
                   if req["params"][1:3] == ["file", "exec"] and req["params"][3]["params"][:1] == ["set"]]
    assert exec_params == [["set", "wg0", "peer", new, "endpoint", "192.0.2.10:51820"],
                           ["set", "wg0", "peer", new, "allowed-ips", "0.0.0.0/0"]]
    assert t.rollback() is True
    assert [e for e in srv.rpcd.events if e[0] == "renew"] == [("renew", "wg0"), ("renew", "wg0")]
    t.move_peer_live("wg0", old, ["0.0.0.0/0"], None, remove=new)   # the undo: no renew
    with pytest.raises(CommandError, match="not a valid public key"):
        t.move_peer_live("wg0", "not a key", ["0.0.0.0/0"])


def test_an_acl_without_the_create_step_refuses_the_move_before_anything_changes(tmp_path: Path) -> None:
    """The ACL shipped before the two-step move allowed only `wg set … allowed-ips …`: rpcd refuses
    the create step (permission denied, which mwanctl names as the missing ACL), so neither the allowed IPs nor the renew are sent and
    the mother's pending apply is left to its own rollback (README: reinstall the ACL)."""
    acl = json.loads(ACL_FILE.read_text())
    acl["mwanctl"]["write"]["file"].pop("/usr/bin/wg set * peer * endpoint *")
    rpcd = _rpcd(tmp_path, mwan3_status=MWAN3_STATUS, wg_dump="wg0\tpriv\tpub\t51820\toff\n")
    rpcd.acl_groups.update(acl)
    with rs.RpcdServer(rpcd) as srv:
        t = UbusTransport("r1", srv.url, "deploy", "pw")
        t.apply(make_plan(GOOD_OPS), 30)
        new = "DmPnfTYIqjc05yRCY/BtCgilESE9SM+HjvLyJMn9kQo="
        with pytest.raises(AuthError, match="may not exec /usr/bin/wg: install mwanctl's rpcd ACL"):
            t.move_peer_live("wg0", new, ["0.0.0.0/0"], "192.0.2.10:51820", renew=True)
        assert not [e for e in srv.rpcd.events if e[0] in ("wg peer add", "wg peer move", "renew")]


def test_an_exec_line_too_long_for_rpcd_is_refused_and_said_so(srv: rs.RpcdServer) -> None:
    """rpcd matches an exec's command line against the ACL in a 1024-byte buffer (file.c
    RPC_CMDLINE_MAX_SIZE) and refuses a longer one whatever the ACL allows: the stand-in does,
    and mwanctl says that, not "install the ACL", which would not help."""
    key = "DmPnfTYIqjc05yRCY/BtCgilESE9SM+HjvLyJMn9kQo="
    t = UbusTransport("r1", srv.url, "deploy", "pw")
    t.apply(make_plan(GOOD_OPS), 30)
    t.move_peer_live("wg0", key, [f"10.{i // 256}.{i % 256}.0/24" for i in range(60)])
    head = len(f"/usr/bin/wg set wg0 peer {key} allowed-ips ")
    for extra, ok in ((0, True), (1, False)):   # 1023 characters in all are matched, 1024 not
        arg = "x" * (rs.EXEC_LINE_MAX - 1 - head + extra)
        reply = t._with_relogin([Call("file", "exec", {"command": "/usr/bin/wg",
                                                       "params": ["set", "wg0", "peer", key, "allowed-ips", arg]})])[0]
        assert (reply.ok, reply.status) == (ok, 0 if ok else 6)
    with pytest.raises(CommandError, match="matches an ACL only against command lines of under 1024 bytes"):
        t.move_peer_live("wg0", key, [f"10.{i // 256}.{i % 256}.0/24" for i in range(120)])
