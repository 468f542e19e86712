"""mwanctl-track on real tunnels: it moves traffic through mwan3's path, once per handover, and
hands back to mwan3track when it dies.

The lab (tests/tracker_lab.py): real wireguard-go tunnels between namespaces, the tracker
unmodified under busybox sh, mwan3's reaction by tests/standins/hotplug-call (what 15-mwan3 does on
connected/disconnected: the hotplug state, then the policy rebuilt by netifd_bridge's emulation),
and one emulated mwan3track per uplink (`fast`) as on a mother, which the tracker must pause.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import mwanctl.topology  # noqa: F401  (tracking imports the topology package first)
from mwanctl.compile.tracker import Tracker  # noqa: F401
from mwanctl.topology import parse_topology
from mwanctl.tracking import PROFILES, tracker_timing

try:
    from tests.polling import wait_for as _wait
    from tests.tracker_lab import TRACKER, TrackerLab, Traffic, one_cut
except ImportError:  # pragma: no cover
    from polling import wait_for as _wait  # type: ignore[no-redef]
    from tracker_lab import TRACKER, TrackerLab, Traffic, one_cut  # type: ignore[no-redef]

pytestmark = pytest.mark.netns




def _proc_state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _track_pid(tl: TrackerLab, iface: str) -> int:
    return int(tl.read(f"mwan3track/{iface}/PID").strip())


def _events(tl: TrackerLab, iface: str) -> list[str]:
    return [ln.split()[1] for ln in tl.hotplug_log()
            if ln.endswith(f" {iface}") and ln.split()[1] in ("connected", "disconnected")]


def _fallback_then_tracker(tl: TrackerLab) -> subprocess.Popen[bytes]:
    """mwan3track with the `fast` profile (the fallback) on every uplink, then the tracker."""
    tl.start_mwan3track(PROFILES["fast"])
    time.sleep(0.5)
    return tl.start_tracker()


@pytest.fixture
def tlab(lab, tmp_path):
    """The tracker lab on conftest's network lab (skipped where there is none)."""
    tl = TrackerLab(lab, tmp_path, 2).build()
    try:
        yield tl
    finally:
        tl.stop_all(service=True)


def test_handover_within_promise_once_per_change(tlab):
    tl = tlab
    bound = tracker_timing(parse_topology(
        "site: x\nmother: {host: 192.0.2.1}\nuplinks: [{name: up1, host: 192.0.2.2}]\n"
        "tracking: {profile: instant, targets: [198.51.100.1, 198.51.100.2]}\n").uplinks[0].tracking)
    _fallback_then_tracker(tl)
    assert _wait(lambda: tl.tracker_state("mw_up1").get("state") == "up", 5)
    # mwan3track, the fallback, is paused while the tracker owns its interface
    for i in ("mw_up1", "mw_up2"):
        assert _wait(lambda: _proc_state(_track_pid(tl, i)) == "T", 3), i
    start_events = len(tl.hotplug_log())
    tr = Traffic(tl, tl.tmp)
    try:
        time.sleep(2)
        rows = [r for r in (one_cut(tl, tr, 3.0) for _ in range(3)) if r]
    finally:
        tr.stop()
    assert len(rows) == 3
    for r in rows:
        assert r["moved"] <= bound.offline_max, (r, bound)
        assert r["back"] <= bound.online_max + 0.3, (r, bound)   # + one new flow's spacing
        assert r["gap"] <= 1.5, r                                # the running flow moved too
    # one disconnected and one connected event per cut: one policy rebuild each way
    ev = [ln.split()[1] for ln in tl.hotplug_log()[start_events:] if ln.split()[1] in ("connected", "disconnected")]
    assert ev == ["disconnected", "connected"] * 3, ev
    # mwan3's own view stayed true: its state files say what the tracker decided
    for i in ("mw_up1", "mw_up2"):
        assert tl.read(f"mwan3track/{i}/STATUS").strip() == "online"
        assert tl.iface_state(i) == "online"
    st = tl.tracker_state("mw_up1")
    assert float(st["now"]) - float(st["last_answer"]) < 0.5
    assert int(st["answered"]) > 0 and float(st["rtt_avg_ms"]) > 0
    assert st["reason"].startswith("answers for ")


def test_state_files_during_outage_and_reason(tlab):
    tl = tlab
    _fallback_then_tracker(tl)
    assert _wait(lambda: tl.tracker_state("mw_up2").get("state") == "up", 5)
    tl.cut("up2")
    assert _wait(lambda: tl.iface_state("mw_up2") == "offline", 2)
    assert _wait(lambda: tl.read("mwan3track/mw_up2/TRACK_198.51.100.1").strip() == "down", 2)
    assert tl.read("mwan3track/mw_up2/STATUS").strip() == "offline"
    st = tl.tracker_state("mw_up2")
    assert st["state"] == "down" and st["reason"].startswith("no answer from 198.51.100.1 198.51.100.2 for")
    assert int(tl.read("mwan3track/mw_up2/OFFLINE").strip()) > 0
    # `mwanctl status` reads it through the SSH probe `tracker` (query.sh under busybox sh)
    from mwanctl.trackerview import parse_tracker_probe
    from mwanctl.transports.ssh import parse_reply, remote_script
    assert _wait(lambda: int(tl.tracker_state("mw_up1").get("answered", 0)) > 0, 8)   # figures every 5 s
    script = "MW_MARK=M\nMW_PROBES=tracker\n" + remote_script("lib.sh") + remote_script("query.sh")
    r = tl.lab.run("mother", ["busybox", "sh", "-s"], input=script)
    reply = parse_reply(r.stdout, "M", r.returncode, r.stderr)
    views = parse_tracker_probe(reply.blocks["probe tracker"][0])
    assert set(views) == {"mw_up1", "mw_up2"}
    assert views["mw_up2"].state == "down" and views["mw_up2"].last_answer_age >= 0.6
    assert views["mw_up1"].state == "up" and views["mw_up1"].last_answer_age < 0.6
    assert views["mw_up1"].rtt_avg_ms is not None and views["mw_up2"].reason.startswith("no answer")
    # the paused mwan3track did not fight it: no event came from it
    time.sleep(3)
    assert _events(tl, "mw_up2") == ["connected", "disconnected"]   # its FIRSTCONNECT, then ours
    tl.restore("up2")
    assert _wait(lambda: tl.iface_state("mw_up2") == "online", 3)


def test_mwan3_restart_and_drain(tlab):
    """A restarted mwan3 says every interface is online: the tracker tells it again that a dead
    one is not. A drain (`mwan3 ifdown`) is respected: no event until mwan3 brings it back."""
    tl = tlab
    tl.start_tracker()
    assert _wait(lambda: tl.tracker_state("mw_up1").get("state") == "up", 5)
    tl.cut("up1")
    assert _wait(lambda: tl.iface_state("mw_up1") == "offline", 2)
    n = len(_events(tl, "mw_up1"))
    tl.mwan3_stop()
    time.sleep(1.5)
    tl.mwan3_start()
    assert _wait(lambda: tl.iface_state("mw_up1") == "offline", 3)
    assert _events(tl, "mw_up1")[n:] == ["disconnected"]
    tl.restore("up1")
    assert _wait(lambda: tl.iface_state("mw_up1") == "online", 3)
    # drain: mwan3 ifdown writes offline; the tracker pauses
    (tl.run_dir("mother") / "mwan3" / "iface_state" / "mw_up2").write_text("offline\n")
    n = len(_events(tl, "mw_up2"))
    time.sleep(2.5)
    assert _events(tl, "mw_up2")[n:] == []
    assert tl.iface_state("mw_up2") == "offline"
    (tl.run_dir("mother") / "mwan3" / "iface_state" / "mw_up2").write_text("online\n")   # ifup
    time.sleep(2)
    assert _events(tl, "mw_up2")[n:] == []     # it is up: nothing to correct


def test_dead_tracker_hands_back_to_mwan3track(tlab):
    """Killed for good (SIGKILL: no trap runs), the guard gives every interface back to
    mwan3track within a few seconds, and mwan3track then fails over at its own speed."""
    tl = tlab
    trk = _fallback_then_tracker(tl)
    tl.start_guard()
    assert _wait(lambda: _proc_state(_track_pid(tl, "mw_up1")) == "T", 5)
    os.killpg(trk.pid, signal.SIGKILL)      # the tracker, its engine and its pings: one process group
    trk.wait()
    assert _wait(lambda: _proc_state(_track_pid(tl, "mw_up1")) not in ("T", "gone"), 12)
    n = len(_events(tl, "mw_up1"))
    tl.cut("up1")
    assert _wait(lambda: tl.iface_state("mw_up1") == "offline", 9)
    assert _events(tl, "mw_up1")[n:] == ["disconnected"]
    assert "tracker silent" in tl.read("mwtest-syslog.log")


def test_release_thaws_mwan3track(tlab):
    tl = tlab
    trk = _fallback_then_tracker(tl)
    assert _wait(lambda: _proc_state(_track_pid(tl, "mw_up2")) == "T", 5)
    tl.stop(trk)
    tl.lab.run("mother", [*tl.env(), "busybox", "sh", str(TRACKER), "release"])
    # running again: sleeping, running, or in an uninterruptible wait (D, e.g. inside a fork) —
    # anything but stopped (T)
    assert _proc_state(_track_pid(tl, "mw_up2")) in ("S", "R", "D")
    assert tl.read("mwanctl-track/mw_up2.state") == ""
