"""The test routers' netifd emulation does what real netifd + wireguard.sh do (recorded in
tests/vectors/netifd/README.md): reload ignores peer-only and `list addresses` changes and
rebuilds an interface whose declared parameter changed; renew applies everything in place;
down/up rebuilds. The session facts (a rebuilt device has none; renew keeps it) need real
WireGuard: they are proven in namespaces at the end of this file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mwanctl.transports.base import move_peer_steps

VECTORS = Path(__file__).parent / "vectors" / "netifd"
FACTS = " ".join((VECTORS / "README.md").read_text().split())
KEY = "ABMTmsQeByamtI2adWpSWF1d9bmF8umHHQ2Zza0zTG4="
PEER = "P4leTVkQ4oWnKg4XmWwCtFnqUz8KJL+Ovo1CSfW9Djs="
NETWORK = f"""
config interface 'wga'
\toption proto 'wireguard'
\toption private_key '{KEY}'
\toption listen_port '51820'
\tlist addresses '10.254.0.1/30'

config wireguard_wga 'wga_peer'
\toption description 'old name'
\toption public_key '{PEER}'
\tlist allowed_ips '10.254.0.2/32'
"""


def boot(router_factory):
    r = router_factory("r1", files={"network": NETWORK})
    assert r.run("ubus mwtest-boot").returncode == 0
    return r


def dump(r) -> dict[str, list[str]]:
    out = r.run("wg show all dump").stdout
    return {f[1]: f for f in (ln.split("\t") for ln in out.splitlines()) if len(f) == 9}


def status(r) -> dict:
    return json.loads(r.run("ubus call network.interface.wga status").stdout)


def addrs(r) -> list[str]:
    return [ln.split()[3] for ln in r.run("ip -o addr show").stdout.splitlines() if " wga " in ln]


def test_reload_ignores_a_peer_only_change_renew_applies_it_in_place(router_factory):
    assert "a peer-only change (key, endpoint, allowed_ips, keepalive, description) is not applied by reload" in FACTS
    assert "no device restart, no downtime (interface uptime keeps counting)" in FACTS
    r = boot(router_factory)
    r.write("/etc/config/network", NETWORK.replace("10.254.0.2/32", "10.254.0.6/32"))
    time.sleep(1.1)
    assert r.run("/etc/init.d/network reload").returncode == 0
    assert dump(r)[PEER][4] == "10.254.0.2/32"           # not applied
    assert r.run("ubus call network.interface.wga renew").returncode == 0
    assert dump(r)[PEER][4] == "10.254.0.6/32"           # applied
    assert status(r)["uptime"] >= 1                     # same device: uptime kept counting


def test_reload_ignores_list_addresses_renew_applies_them(router_factory):
    assert "declares `addresses` as a string, and libuci leaves a `list` option out of the blob" in FACTS
    r = boot(router_factory)
    assert addrs(r) == ["10.254.0.1/30"]
    r.write("/etc/config/network", NETWORK.replace("10.254.0.1/30", "10.254.0.5/30"))
    r.run("/etc/init.d/network reload")
    assert addrs(r) == ["10.254.0.1/30"]
    r.run("ubus call network.interface.wga renew")
    assert addrs(r) == ["10.254.0.5/30"]


def test_a_declared_parameter_makes_reload_rebuild(router_factory):
    assert "Any change of a declared interface parameter (e.g. `listen_port`) makes netifd tear the interface down and set it up again" in FACTS
    r = boot(router_factory)
    time.sleep(2.2)
    before = status(r)["uptime"]
    assert before >= 2
    r.write("/etc/config/network", NETWORK.replace("'51820'", "'51821'").replace("10.254.0.1/30", "10.254.0.9/30"))
    r.run("/etc/init.d/network reload")
    # rebuilt just now: uptime started again (whole seconds, so the reload may cross one boundary)
    assert status(r)["uptime"] < before
    assert "\t51821\t" in r.run("wg show all dump").stdout
    assert addrs(r) == ["10.254.0.9/30"]                # setup reads the whole config


def test_a_string_addresses_option_is_seen_by_reload(router_factory):
    r = boot(router_factory)
    r.write("/etc/config/network", NETWORK.replace("list addresses '10.254.0.1/30'", "option addresses '10.254.0.5/30'"))
    r.run("/etc/init.d/network reload")
    assert addrs(r) == ["10.254.0.5/30"]


def test_wg_set_peer_remove_and_renew_restores_it(router_factory):
    r = boot(router_factory)
    assert r.run(f"wg set wga peer {PEER} remove").returncode == 0
    assert PEER not in dump(r)
    r.run("ubus call network.interface.wga renew")
    assert PEER in dump(r)


def test_no_handshake_switch(router_factory):
    r = boot(router_factory)
    assert int(dump(r)[PEER][5]) > 0
    r.write("/etc/mwtest/no_handshake", "")
    assert dump(r)[PEER][5] == "0"


# --- sessions: real wireguard-go in namespaces ------------------------------------------------------

def recorded_outage() -> tuple[float, float]:
    """(start, end) of the unanswered pings in the recorded rename deploy, seconds after it."""
    deploy = float((VECTORS / "rename-outage" / "events.log").read_text().split()[0])
    import re
    replies = [float(m.group(1)) for ln in (VECTORS / "rename-outage" / "ping.log").read_text().splitlines()
               for m in [re.match(r"\[(\d+\.\d+)\] 64 bytes", ln)] if m]
    gaps = [(b - a, a, b) for a, b in zip(replies, replies[1:]) if b > deploy]
    _, a, b = max(gaps)
    return a - deploy, b - deploy


def longest_gap(ping) -> float:
    got = sorted(ping.received())
    return max((b - a for a, b in zip(got, got[1:])), default=0) * ping.interval


@pytest.mark.netns
@pytest.mark.ssh
def test_sessions_renew_keeps_them_down_up_loses_them_as_recorded(lab, router_factory, tmp_path, capsys):
    """The recorded rename deploy (down/up of both uplinks' tunnels at once) cut every ping from
    +0.8 s to +15.8 s: the rebuilt devices had no session and no endpoint for the mother, and the
    mother kept sending on its old sessions until WireGuard gave up. The bound stand-in (real
    wireguard-go) reproduces that outage; renew, the same change applied in place, loses nothing."""
    from mwanctl.cli import main
    try:
        from tests import rotate_lab
    except ImportError:  # pragma: no cover
        import rotate_lab  # type: ignore[no-redef]
    start, end = recorded_outage()
    assert 0.5 < start < 1.0 and 15.0 < end < 16.5, (start, end)
    assert "the tunnel is dead meanwhile" in FACTS
    uplinks = ["u1", "u2"]
    site = rotate_lab.build(lab, router_factory, tmp_path, uplinks)
    assert main(site.argv("deploy", str(site.path), "--yes")) == 0, capsys.readouterr().err
    rotate_lab.wait_tunnels(lab, uplinks)
    u1 = site.routers["u1"]

    def peer(host: str) -> list[str]:
        return next(ln.split("\t") for ln in lab.wg_dump(host).splitlines() if len(ln.split("\t")) == 9)

    before = peer("u1")
    assert before[3] != "(none)" and before[5] != "0"         # a session, the mother's endpoint learned
    ping = rotate_lab.PingStream(lab).start()
    time.sleep(1.0)
    assert u1.run("ubus call network.interface.mw_u1 renew").returncode == 0
    assert site.routers["u2"].run("ubus call network.interface.mw_u2 renew").returncode == 0
    time.sleep(2.0)
    renewed = peer("u1")
    assert renewed[3] == before[3] and renewed[5] == before[5]   # same session, endpoint kept
    p = ping.stop()
    assert p.lost_count <= 1, p.lost

    ping = rotate_lab.PingStream(lab).start()
    time.sleep(1.0)
    import threading
    def bounce(name: str) -> None:
        site.routers[name].run(f"ubus call network.interface.mw_{name} down; "
                               f"ubus call network.interface.mw_{name} up")
    ts = [threading.Thread(target=bounce, args=(u,)) for u in uplinks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rebuilt = peer("u1")
    assert rebuilt[3] == "(none)" and rebuilt[5] == "0"         # no session, no endpoint
    time.sleep(20.0)
    p = ping.stop()
    gap = longest_gap(ping)
    print(f"recorded outage {end - start:.1f} s; emulated {gap:.1f} s; lost {p.lost_count}/{p.sent}")
    assert abs(gap - (end - start)) < 4.0, (gap, end - start)
    assert max(ping.received()) >= p.sent - 5                   # and the stream came back


# -- `wg set` on the stand-in does what the kernel/wireguard-go device does ------------------------

NEW = "Vf1kUOv/MTrIvtk+9b1V9a0FI0Y/0n9ZWtrScHXWa3M="      # a second peer (any valid public key)
WG_SET_CASES = {
    # rotation's move as the transports send it: the new peer created, then it takes the old
    # one's allowed IPs and the old goes
    "move": [" ".join(a[2:]) for a in move_peer_steps("wga", NEW, ["10.254.0.2/32"], "127.0.0.1:51999", PEER)],
    # the same in one `wg set` (what rotation sent before: wireguard-go drops packets meanwhile)
    "move in one set": [f"peer {NEW} endpoint 127.0.0.1:51999 allowed-ips 10.254.0.2/32 peer {PEER} remove"],
    # a second peer claiming a network another peer has: the network moves, the other keeps the rest
    "claim": [f"peer {PEER} allowed-ips 10.254.0.2/32,10.254.0.8/30",
              f"peer {NEW} allowed-ips 10.254.0.8/30"],
    # re-handshake: remove and put back with everything it had (only the session changes)
    "readd": [f"peer {PEER} remove peer {PEER} allowed-ips 10.254.0.2/32 persistent-keepalive 25"],
    "bad key": ["peer notakey allowed-ips 10.254.0.2/32"],
    "no device": None,
}


def _peers_of(dump_text: str) -> dict[str, tuple[str, str, str]]:
    """peer -> (endpoint, sorted allowed IPs, keepalive) from `wg show <if> dump` peer lines."""
    out = {}
    for ln in dump_text.splitlines():
        f = ln.split("\t")
        if len(f) == 8:
            out[f[0]] = (f[2], ",".join(sorted(f[3].split(","))), f[7])
    return out


def _pretty_blocks(text: str) -> tuple[tuple[str, ...], frozenset[tuple[str, ...]]]:
    """`wg show <if>`: the interface's lines, and each peer's block (in any order: wg sorts
    peers by their latest handshake, and these have had none)."""
    blocks = [tuple(b.splitlines()) for b in text.strip().split("\n\n")]
    return blocks[0], frozenset(blocks[1:])


def _run_case(run, steps) -> tuple[list[int], dict, tuple]:
    codes = [run(f"wg set wga {s}").returncode for s in steps]
    # movepeer.sh waits on `wg show <if>` for the device's new key and reads its port from it
    return codes, _peers_of(run("wg show wga dump").stdout), _pretty_blocks(run("wg show wga").stdout)


@pytest.mark.netns
@pytest.mark.parametrize("case", sorted(WG_SET_CASES))
def test_wg_set_on_the_stand_in_matches_real_wireguard(router_factory, case):
    """The rotation moves a tunnel's allowed IPs to a new peer with `wg set`; the web and
    deploy labs run it against the stand-in, so the stand-in must end where wireguard-go ends
    (peers, endpoints, allowed IPs, keepalive) and refuse what `wg` refuses."""
    try:
        from tests import netlab
    except ImportError:  # tests/ on sys.path
        import netlab  # type: ignore[no-redef]
    if netlab.skip_reason():
        pytest.skip(netlab.skip_reason())
    import shlex
    import subprocess
    r = boot(router_factory)
    steps = WG_SET_CASES[case]
    with netlab.Lab() as lab:
        lab.add_host("h")
        conf = lab._tmp / "wga.conf"
        conf.write_text(f"[Interface]\nPrivateKey = {KEY}\nListenPort = 51820\n\n"
                        f"[Peer]\nPublicKey = {PEER}\nAllowedIPs = 10.254.0.2/32\n")
        conf.chmod(0o600)
        lab.run("h", ["sh", "-c", f"wireguard-go wga && wg setconf wga {conf}"])

        def real(cmd: str) -> subprocess.CompletedProcess[str]:
            return lab.run("h", shlex.split(cmd), check=False)

        def stand_in(cmd: str) -> subprocess.CompletedProcess[str]:
            return r.run(cmd)

        if steps is None:                                  # a device that is not there
            a, b = real(f"wg set wgz peer {PEER} remove"), stand_in(f"wg set wgz peer {PEER} remove")
            # wg's text depends on the backend (userspace here: "Protocol not supported"; the
            # kernel module of OpenWrt: "No such device", which the stand-in prints): both refuse
            assert a.returncode != 0 and b.returncode != 0, (a.stderr, b.stderr)
            assert "Unable to modify interface" in a.stderr and "Unable to modify interface" in b.stderr
            return
        got_real, got_stand_in = _run_case(real, steps), _run_case(stand_in, steps)
    assert got_stand_in == got_real
