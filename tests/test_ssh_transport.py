"""SshTransport against real dropbear test routers (busybox ash, stand-in uci/ubus/wg/netifd)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("paramiko")

from mwanctl.errors import (
    ApplyError,
    ApplyInterrupted,
    AuthError,
    ConnectError,
    HostKeyError,
    RolledBack,
)
from mwanctl.transports.base import ApplyPlan
from mwanctl.transports.ssh import JumpHost, SshTransport
from mwanctl.uci.changes import Op
from mwanctl.uci.parse import parse

try:
    from tests.polling import wait_for
    from tests.routers import STOCK, TestRouter
except ImportError:  # tests/ is not a package
    from polling import wait_for  # type: ignore[no-redef]
    from routers import STOCK, TestRouter  # type: ignore[no-redef]

Factory = Callable[..., TestRouter]


# -- helpers -------------------------------------------------------------------------------
def wg_keypair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    k = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    priv = k.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = k.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(priv).decode(), base64.b64encode(pub).decode()


def expected_export(router: TestRouter, pkg: str, ops: list[Op]) -> str:
    """What `uci export <pkg>` must print after ``ops``, computed by the engine, not the router."""
    from mwanctl.uci.diff import apply_ops
    from mwanctl.uci.render import export

    base = parse(router.config_text(pkg), pkg) if router.config_bytes(pkg) is not None else None
    return export(apply_ops(base, pkg, ops))


def make_plan(router: TestRouter, changes: dict[str, list[Op]], **kw: object) -> ApplyPlan:
    expected = {p: expected_export(router, p, ops) for p, ops in changes.items()}
    return ApplyPlan(changes=changes, expected=expected, **kw)  # type: ignore[arg-type]


def transport(r: TestRouter, **kw: object) -> SshTransport:
    args: dict[str, object] = {"key_filename": r.key_path, "known_hosts": r.known_hosts_path,
                               "use_agent": False, "connect_timeout": 5, "command_timeout": 30}
    args.update(kw)
    return SshTransport(r.name, r.host, r.port, **args)  # type: ignore[arg-type]




def pending(r: TestRouter) -> bool:
    return r.exists("/etc/mwanctl/pending")


def wg_network(iface: str, priv: str, peer_pub: str) -> str:
    return (STOCK / "network").read_text() + (
        f"\nconfig interface '{iface}'\n\toption proto 'wireguard'\n\toption private_key '{priv}'\n"
        f"\tlist addresses '10.77.0.2/24'\n\toption metric '20'\n\n"
        f"config wireguard_{iface} 'peer_{iface}'\n\toption public_key '{peer_pub}'\n"
        f"\tlist allowed_ips '0.0.0.0/0'\n\toption route_allowed_ips '1'\n")


def stock_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in STOCK.iterdir()}


ADD_WG = [
    Op("add_section", "network", "wgx", None, "interface"),
    Op("set", "network", "wgx", "proto", "wireguard"),
    Op("set", "network", "wgx", "metric", "30"),
]


# -- apply / confirm / read_state ----------------------------------------------------------
def test_apply_then_confirm(router_factory: Factory) -> None:
    r = router_factory("m")
    priv, _ = wg_keypair()
    _, peer = wg_keypair()
    ops = ADD_WG + [
        Op("set", "network", "wgx", "private_key", priv),
        Op("add_section", "network", "wgx_peer", None, "wireguard_wgx"),
        Op("set", "network", "wgx_peer", "public_key", peer),
        Op("set_list", "network", "wgx_peer", "allowed_ips", ("0.0.0.0/0",)),
    ]
    plan = make_plan(r, {"network": ops}, reload=["network"], restart_ifaces=["wgx"],
                     check_peers={"wgx": [peer]})
    with transport(r) as t:
        t.apply(plan, confirm_timeout=3)
        assert t.counters.round_trips == 1
        assert pending(r)
        t.confirm()
        assert t.counters.round_trips == 2
    assert not pending(r)
    # confirm disarmed the timer: only the dropbear listener is left in the router
    assert wait_for(lambda: len(r.namespace_pids()) == 1, 3), r.namespace_pids()
    after = parse(r.config_text("network"), "network")
    assert after.get("wgx_peer").options["public_key"] == peer  # type: ignore[union-attr]
    calls = r.calls()
    assert "init network reload" in calls
    assert calls.index("ubus call network.interface.wgx down") < \
        calls.index("ubus call network.interface.wgx up")
    assert not any(c.startswith("init firewall stop") for c in calls)
    time.sleep(4)  # past the deadline: confirmed, so nothing rolls back
    assert parse(r.config_text("network"), "network").get("wgx") is not None


def test_read_state_is_one_round_trip(router_factory: Factory) -> None:
    r = router_factory("m")
    with transport(r) as t:
        st = t.read_state(["network", "firewall", "mwan3", "nosuchpkg"])
        assert t.counters.round_trips == 1
        assert t.counters.bytes_received > 0 and t.counters.bytes_sent > 0
    for pkg in ("network", "firewall", "mwan3"):
        assert st.packages[pkg] == parse((STOCK / pkg).read_text(), pkg)
    assert st.packages["nosuchpkg"] is None
    assert st.pending is None


def test_read_state_reports_pending_deploy_and_ignores_uncommitted(router_factory: Factory) -> None:
    r = router_factory("m")
    r.run("uci set network.lan.ipaddr=10.9.9.9")  # the user's own uncommitted change
    with transport(r, owner="alice@laptop") as t:
        t.apply(make_plan(r, {"network": ADD_WG}), confirm_timeout=30)
        st = t.read_state(["network"])
        assert st.pending is not None and st.pending.owner == "alice@laptop"
        assert 0 < st.pending.deadline <= 30
        lan = st.packages["network"].get("lan")  # type: ignore[union-attr]
        assert lan is not None and lan.options["ipaddr"] == "192.168.1.1"
        t.rollback()
    # the user's pending change was neither committed nor lost
    assert "ipaddr '192.168.1.1'" in r.config_text("network")
    assert "10.9.9.9" in r.run("uci changes network").stdout


def test_lost_connection_rolls_back_by_itself(router_factory: Factory) -> None:
    r = router_factory("m")
    before = {p: r.config_bytes(p) for p in ("network", "mwan3")}
    plan = make_plan(r, {"network": ADD_WG,
                         "mwan3": [Op("set", "mwan3", "wan", "enabled", "0")]},
                     reload=["network", "mwan3"], restart_ifaces=["wan"])
    t = transport(r)
    t.apply(plan, confirm_timeout=2)
    assert r.config_bytes("network") != before["network"]
    r.kill_connections()
    assert wait_for(lambda: not pending(r), 10), "the router's timer did not roll back"
    for p, data in before.items():
        assert r.config_bytes(p) == data
    calls = r.calls()
    assert calls.count("init network reload") == 2 and calls.count("init mwan3 reload") == 2
    assert calls.count("ubus call network.interface.wan down") == 2
    assert calls.count("ubus call network.interface.wan up") == 2
    assert calls[-1] == "ubus call network.interface.wan up"  # the restore ran last
    with pytest.raises(RolledBack, match="no deploy is pending"):
        t.confirm()
    t.close()


def test_reboot_during_confirm_window_restores_at_boot(router_factory: Factory) -> None:
    """The timer dies with a reboot; the boot guard installed by apply restores the snapshot
    before the network starts, so an unconfirmed config never survives a restart."""
    r = router_factory("m")
    before = {p: r.config_bytes(p) for p in ("network", "mwan3")}
    plan = make_plan(r, {"network": ADD_WG, "mwan3": [Op("set", "mwan3", "wan", "enabled", "0")]},
                     reload=["network", "mwan3"])
    t = transport(r)
    t.apply(plan, confirm_timeout=600)
    t.close()
    assert r.config_bytes("network") != before["network"]
    assert r.run("readlink /etc/rc.d/S11mwanctl").stdout.strip() == "../init.d/mwanctl"
    # "reboot": the timer process is gone, then OpenWrt's rc runs `boot` of each S* script
    r.run("kill -9 $(cat /etc/mwanctl/pending/pid)")
    calls = len(r.calls())
    res = r.run("sh -c '. /etc/rc.d/S11mwanctl; boot'")
    assert res.returncode == 0, res.stderr
    for p, data in before.items():
        assert r.config_bytes(p) == data
    assert not pending(r)
    assert r.calls()[calls:] == []            # nothing reloaded: the services start after it
    assert r.run("sh -c '. /etc/rc.d/S11mwanctl; boot'").returncode == 0   # a second boot: no-op
    for p, data in before.items():
        assert r.config_bytes(p) == data


def test_confirm_window_starts_when_the_change_is_live(router_factory: Factory) -> None:
    r = router_factory("m")
    r.write("/etc/mwtest/slow_mwan3", "3")  # a reload longer than the whole confirm window
    plan = make_plan(r, {"mwan3": [Op("set", "mwan3", "wan", "enabled", "0")]}, reload=["mwan3"])
    with transport(r) as t:
        receipt = t.apply(plan, confirm_timeout=3)
        time.sleep(1)
        t.confirm(receipt)  # still in time: the 3 s started after the 3 s reload
    assert "option enabled '0'" in r.config_text("mwan3").split("config interface 'wan'")[1]


def test_connection_lost_mid_apply_the_router_finishes_alone(router_factory: Factory) -> None:
    r = router_factory("m")
    r.write("/etc/mwtest/slow_mwan3", "2")
    plan = make_plan(r, {"mwan3": [Op("set", "mwan3", "wan", "enabled", "0")]},
                     reload=["mwan3"], restart_ifaces=["wan"])
    errors: list[Exception] = []

    def run() -> None:
        try:
            with transport(r) as t:
                t.apply(plan, confirm_timeout=30)
        except ApplyInterrupted as e:
            errors.append(e)

    th = threading.Thread(target=run)
    th.start()
    assert wait_for(lambda: "init mwan3 reload" in r.calls(), 5)
    r.kill_connections()  # the session dies while mwan3 reloads
    th.join()
    assert errors and "rolls it back by itself" in str(errors[0])
    # the script went on: interface restarted, window started; a fresh confirm keeps the change
    assert wait_for(lambda: "ubus call network.interface.wan up" in r.calls(), 5)
    assert wait_for(lambda: not r.exists("/etc/mwanctl/pending/applying"), 5)
    with transport(r) as t:
        t.confirm()
    assert "option enabled '0'" in r.config_text("mwan3").split("config interface 'wan'")[1]


def test_failing_batch_line_commits_nothing(router_factory: Factory) -> None:
    r = router_factory("m")
    before = r.config_bytes("network")
    good = [Op("set", "network", "lan", "ipaddr", "10.1.1.1")]
    plan = make_plan(r, {"network": good}, reload=["network"])
    # a line uci rejects (no such section), while the plan expects it to have worked
    plan.changes["network"] = good + [Op("set", "network", "nosuchsection", "proto", "static")]
    plan.expected["network"] += "\nconfig interface 'nosuchsection'\n\toption proto 'static'\n\n"
    with transport(r) as t, pytest.raises(ApplyError) as exc:
        t.apply(plan, confirm_timeout=3)
    assert "nothing was changed" in str(exc.value) and "\n" not in str(exc.value)
    assert "Invalid argument" in str(exc.value)
    assert r.config_bytes("network") == before
    assert not pending(r)
    assert not any(c.startswith("init ") for c in r.calls())
    assert r.run("uci changes network").stdout == ""


def test_staged_text_differing_from_plan_commits_nothing(router_factory: Factory) -> None:
    r = router_factory("m")
    before = r.config_bytes("network")
    plan = make_plan(r, {"network": [Op("set", "network", "lan", "ipaddr", "10.1.1.1")]},
                     reload=["network"])
    plan.expected["network"] = plan.expected["network"].replace("10.1.1.1", "10.1.1.2")
    with transport(r) as t, pytest.raises(ApplyError) as exc:
        t.apply(plan, confirm_timeout=3)
    msg = str(exc.value)
    assert "differs from the plan at line" in msg and "10.1.1.2" in msg and "10.1.1.1" in msg
    assert r.config_bytes("network") == before and not pending(r)
    assert not any(c.startswith("init ") for c in r.calls())


def test_concurrent_applies_second_refused(router_factory: Factory) -> None:
    r = router_factory("m")
    plans = [make_plan(r, {"network": [Op("set", "network", "lan", "ipaddr", f"10.0.0.{i}")]})
             for i in (1, 2)]
    results: list[object] = [None, None]

    def run(i: int) -> None:
        try:
            with transport(r, owner=f"user{i}") as t:
                t.apply(plans[i], confirm_timeout=4)
            results[i] = "ok"
        except ApplyError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(type(x).__name__ for x in results) == ["ApplyError", "str"]
    err = next(x for x in results if isinstance(x, ApplyError))
    winner = results.index("ok")
    assert f"by user{winner}" in str(err) and "pending" in str(err)
    with transport(r) as t:
        t.rollback()
    assert r.config_bytes("network") == (STOCK / "network").read_bytes()


def test_rollback_now_and_nothing_to_confirm(router_factory: Factory) -> None:
    r = router_factory("m")
    before = r.config_bytes("network")
    with transport(r) as t:
        with pytest.raises(RolledBack, match="no deploy is pending"):
            t.confirm()
        assert t.rollback() is False
        t.apply(make_plan(r, {"network": ADD_WG}, reload=["network"]), confirm_timeout=30)
        assert t.rollback() is True
    assert r.config_bytes("network") == before and not pending(r)


def test_apply_creates_missing_package_and_rollback_removes_it(router_factory: Factory) -> None:
    files = stock_files()
    del files["mwan3"]
    r = router_factory("u", files=files)
    ops = [Op("add_section", "mwan3", "globals", None, "globals"),
           Op("set", "mwan3", "globals", "mmx_mask", "0x3F00")]
    with transport(r) as t:
        t.apply(make_plan(r, {"mwan3": ops}), confirm_timeout=30)
        assert "mmx_mask" in r.config_text("mwan3")
        t.rollback()
    assert r.config_bytes("mwan3") is None


# -- hostile values ------------------------------------------------------------------------
HOSTILE = ["$(touch /tmp/pwned)", "`touch /tmp/pwned2`", "it's; touch /tmp/pwned3",
           "line1\nline2 $(id) '\\''", "; reboot #", "\\\"$HOME\\\""]


def test_hostile_strings_are_literal_values(router_factory: Factory) -> None:
    r = router_factory("m")
    ops = ADD_WG + [Op("set", "network", "wgx", "description", HOSTILE[0]),
                    Op("set_list", "network", "wgx", "comment", tuple(HOSTILE[1:]))]
    with transport(r, owner="$(touch /tmp/pwned4) `id` ';'") as t:
        t.apply(make_plan(r, {"network": ops}), confirm_timeout=30)
        st = t.read_state(["network"])
        assert st.pending is not None and st.pending.owner == "$(touch /tmp/pwned4) `id` ';'"
        t.confirm()
    wgx = parse(r.config_text("network"), "network").get("wgx")
    assert wgx is not None
    assert wgx.options["description"] == HOSTILE[0]
    assert wgx.options["comment"] == tuple(HOSTILE[1:])
    for f in ("pwned", "pwned2", "pwned3", "pwned4"):
        assert not r.exists(f"/tmp/{f}") and not Path(f"/tmp/{f}").exists()


# -- netifd: peer-only changes -------------------------------------------------------------
def test_peer_only_change_needs_iface_restart(router_factory: Factory) -> None:
    priv, _ = wg_keypair()
    _, old_peer = wg_keypair()
    _, new_peer = wg_keypair()
    files = stock_files()
    files["network"] = wg_network("wga", priv, old_peer)
    r = router_factory("m", files=files)
    assert r.run("wg show wga peers").stdout.split() == [old_peer]
    swap = {"network": [Op("set", "network", "peer_wga", "public_key", new_peer)]}
    before = r.config_bytes("network")

    # a reload alone leaves netifd on the old peer: the check catches it and rolls back
    with transport(r) as t, pytest.raises(ApplyError, match="peers not live"):
        t.apply(make_plan(r, swap, reload=["network"], check_peers={"wga": [new_peer]}),
                confirm_timeout=30)
    assert r.config_bytes("network") == before and not pending(r)

    with transport(r) as t:
        t.apply(make_plan(r, swap, reload=["network"], restart_ifaces=["wga"],
                          check_peers={"wga": [new_peer]}), confirm_timeout=30)
        t.confirm()
    assert r.run("wg show wga peers").stdout.split() == [new_peer]


# -- query / drain -------------------------------------------------------------------------
def test_query_probes_in_one_round_trip(router_factory: Factory) -> None:
    r = router_factory("m")
    with transport(r) as t:
        out = t.query(["mwan3_status", "wg_dump", "wan_status", "uptime"])
        assert t.counters.round_trips == 1
    assert out["mwan3_status"].startswith("ERROR: ")
    assert '"up": true' in out["wan_status"]
    assert float(out["uptime"].split()[0]) > 0
    vector = Path(__file__).parent / "vectors" / "mwan3" / "mwan3-status-both-online.json"
    r.write("/etc/mwtest/mwan3_status.json", vector.read_text())
    with transport(r) as t:
        assert t.query(["mwan3_status"])["mwan3_status"] == vector.read_text()


def test_set_drained(router_factory: Factory) -> None:
    r = router_factory("m")
    with transport(r) as t:
        t.set_drained("wan", True)
        t.set_drained("wan", False)
    assert [c for c in r.calls() if c.startswith("mwan3 ")] == ["mwan3 ifdown wan", "mwan3 ifup wan"]
    assert not any(c.startswith("init mwan3") for c in r.calls())


# -- connecting: host keys, auth, reachability, jump ---------------------------------------
def test_changed_host_key_is_refused(router_factory: Factory) -> None:
    r = router_factory("m")
    r.restart_with_new_host_key()
    with pytest.raises(HostKeyError) as exc, transport(r) as t:
        t.read_state(["network"])
    msg = str(exc.value)
    assert "changed" in msg and "ssh-keygen -R" in msg and msg.count("SHA256:") == 2


def test_unknown_host_key_refused_unless_accepted(router_factory: Factory, tmp_path: Path) -> None:
    r = router_factory("m")
    kh = tmp_path / "kh" / "known_hosts"
    with pytest.raises(HostKeyError, match="unknown host key"), transport(r, known_hosts=kh) as t:
        t.read_state(["network"])
    assert not kh.exists()
    with transport(r, known_hosts=kh, accept_new_host_key=True) as t:
        t.read_state(["network"])
    assert r.host_public_key.split()[1] in kh.read_text()
    with transport(r, known_hosts=kh) as t:  # now known: no flag needed
        t.read_state(["network"])


def test_auth_password_and_failures(router_factory: Factory, tmp_path: Path) -> None:
    r = router_factory("m")
    with transport(r, key_filename=None, password=r.password) as t:
        t.read_state(["network"])
    asked: list[int] = []
    with transport(r, key_filename=None, password=lambda: asked.append(1) or r.password) as t:
        t.read_state(["network"])
    assert asked == [1]
    with pytest.raises(AuthError, match="authentication failed"), \
            transport(r, key_filename=None, password="wrong") as t:
        t.read_state(["network"])
    other = router_factory("other")  # its key is not authorized on r
    with pytest.raises(AuthError, match="authentication failed"), \
            transport(r, key_filename=other.key_path) as t:
        t.read_state(["network"])


def test_closed_port_is_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match="cannot connect"):
        SshTransport("gone", "127.0.0.1", port, connect_timeout=2, use_agent=False).read_state([])
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("target", ["silent", "blackhole"])
def test_no_answer_is_connect_error_within_timeout(target: str) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)  # accepts TCP, never speaks SSH
        host, port = ("127.0.0.1", srv.getsockname()[1]) if target == "silent" else ("10.255.255.1", 22)
        t0 = time.monotonic()
        with pytest.raises(ConnectError):
            SshTransport("mute", host, port, connect_timeout=1, use_agent=False).read_state([])
        assert time.monotonic() - t0 < 2.5


def test_jump_through_mother(router_factory: Factory) -> None:
    mother = router_factory("mother")
    up = router_factory("up1")
    up.known_hosts_path.write_text(up.known_hosts_path.read_text()
                                   + mother.known_hosts_path.read_text())
    jump = JumpHost(mother.host, mother.port, key_filename=str(mother.key_path))
    with transport(up, jump=jump) as t:
        st = t.read_state(["network"])
    assert st.packages["network"] is not None


# -- the test routers themselves -----------------------------------------------------------
def test_router_looks_like_openwrt(router_factory: Factory) -> None:
    r = router_factory("m")
    out = r.run("sh --help 2>&1 | head -1; command -v uci ubus wg mwan3 reload_config cp").stdout
    assert out.startswith("BusyBox")
    assert all(line.startswith("/usr/local/sbin/") for line in out.splitlines()[1:])
    assert r.read("/etc/config/network") == (STOCK / "network").read_bytes()
    r.write("/etc/mwtest-isolation-probe", "x")  # the router's /etc is private
    r.write("/tmp/mwtest-isolation-probe", "x")
    assert not Path("/etc/mwtest-isolation-probe").exists()
    assert not Path("/tmp/mwtest-isolation-probe").exists()


def test_reload_config_and_netifd_emulation(router_factory: Factory) -> None:
    r = router_factory("m")
    r.run("reload_config")  # first run since boot: records checksums, reloads nothing
    assert not any(c.startswith("init ") for c in r.calls())
    r.run("uci set network.lan.ipaddr=10.3.3.3 && uci commit network && reload_config")
    assert "init network reload" in r.calls() and "init firewall reload" not in r.calls()
    st = r.run("ubus call network.interface.lan status")
    assert '"up": true' in st.stdout
    r.run("ubus call network.interface.lan down")
    assert '"up": false' in r.run("ubus call network.interface.lan status").stdout
    assert r.run("ubus call network.interface.nosuch status").returncode != 0


def test_pending_report_with_fields_still_being_written() -> None:
    """A lock another apply has just taken may not have its times yet: that is not a crash."""
    from mwanctl.transports.ssh import Reply, _pending
    r = Reply(0, ["pending  5 running"], {"owner": ("", 0)}, "")
    p = _pending(r)
    assert p is not None and p.since == 0 and p.owner == "?"


def test_a_confirm_past_the_deadline_restores_even_if_the_timer_died(router_factory: Factory) -> None:
    """The router's clock decides: past the deadline the confirm is refused and the change is
    rolled back then and there, so the answer "rolled back" is what the router is on."""
    r = router_factory("m")
    before = r.config_bytes("mwan3")
    plan = make_plan(r, {"mwan3": [Op("set", "mwan3", "wan", "enabled", "0")]}, reload=["mwan3"])
    with transport(r) as t:
        receipt = t.apply(plan, confirm_timeout=1)
    r.run("kill -9 $(cat /etc/mwanctl/pending/pid)")   # a timer that is gone
    time.sleep(2.5)
    with transport(r) as t, pytest.raises(RolledBack, match="before the confirm arrived"):
        t.confirm(receipt)
    assert r.config_bytes("mwan3") == before and not pending(r)

