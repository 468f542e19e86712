"""The lab's mwan3 model (tests/netifd_bridge.py ``Mwan3``) against real mwan3 2.12.2.

The recordings (tests/vectors/mwan3/, see its README) are facts from the real daemons. Each test
drives the model with the *causes* seen in a recording (the commands the tool ran, netifd's
interface restart, mwan3track's verdicts) and checks that it produces what real mwan3 produced:
the same hotplug runs in the same order, policy chains that the 100 ms poller could have sampled
(every recorded chain appears, in order), the drained tunnel back in the policy after netifd's
restart, and as many policy rebuilds as the recorded new-flow losses need. The mwan3track
stand-in's files, read back as the rpcd plugin does, are compared with the recorded
`ubus call mwan3 status`, incl. what it says before the first round (initial_state online).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from mwanctl import verify
from mwanctl.cli import main
from mwanctl.facts import Mwan3Interface, parse_mwan3_status
from mwanctl.uci.parse import parse

try:
    from tests.netifd_bridge import REBUILD_PAUSES, Mwan3, Step, describe_chain
except ImportError:  # pragma: no cover
    from netifd_bridge import REBUILD_PAUSES, Mwan3, Step, describe_chain  # type: ignore[no-redef]

VEC = Path(__file__).parent / "vectors" / "mwan3"
ROT, FAST = VEC / "rotation", VEC / "failover" / "fast1"
BOTH = {"mw_up1", "mw_up2"}


@pytest.fixture(scope="module")
def mwan3_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The mother's /etc/config/mwan3 as mwanctl renders it for the recorded rig."""
    tmp = tmp_path_factory.mktemp("render")
    assert main(["--state-dir", str(tmp / "state"), "render", str(FAST / "topology.yaml"),
                 "-o", str(tmp / "out"), "--batch"]) == 0
    return (tmp / "out" / "mother" / "etc" / "config" / "mwan3").read_text()


def started(config: str) -> Mwan3:
    m = Mwan3(parse(config, "mwan3"))
    m.start(set(BOTH))
    return m


def executes(steps: list[Step]) -> list[str]:
    return [s.text for s in steps if s.kind == "log" and s.text.startswith("Execute ")]


def chains(steps: list[Step]) -> list[str]:
    return [describe_chain(c) for s in steps if s.kind == "policy" for c in s.states]


def recorded_executes(syslog: Path) -> list[str]:
    out = []
    for line in syslog.read_text().splitlines():
        m = re.search(r"mwan3-hotplug\[\d+\]: (Execute \w+ event on interface \S+)", line)
        if m:
            out.append(m.group(1))
    return out


def recorded_chains(poller: Path) -> list[str]:
    return [line.split(" POLICY", 1)[1].strip() for line in poller.read_text().splitlines()
            if " POLICY" in line]


def collapse(seq: list[str]) -> list[str]:
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


def is_subsequence(sampled: list[str], full: list[str]) -> bool:
    it = iter(full)
    return all(any(x == y for y in it) for x in sampled)


def old_rotation(m: Mwan3) -> list[Step]:
    """What the recorded rotation did to the mother, per tunnel: `mwan3 ifdown`, netifd's restart
    of the interface for the new keys (its ifdown then ifup hotplug), `mwan3 ifup`."""
    steps: list[Step] = []
    for iface in ("mw_up1", "mw_up2"):
        steps += m.command("ifdown", iface, set(BOTH))
        steps += m.event("ifdown", iface, True)
        steps += m.event("ifup", iface, True)
        steps += m.command("ifup", iface, set(BOTH))
    return steps


def test_start_builds_the_recorded_policy(mwan3_config: str) -> None:
    m = Mwan3(parse(mwan3_config, "mwan3"))
    steps = m.start(set(BOTH))
    assert chains(steps)[-1] == recorded_chains(ROT / "poller.log")[0] == \
        'comment "mw_up2 2 5" comment "mw_up1 3 3"'
    assert m.hotplug == {"mw_up1": "online", "mw_up2": "online"}


def test_rotation_runs_the_recorded_hotplug_events_in_order(mwan3_config: str) -> None:
    steps = old_rotation(started(mwan3_config))
    assert executes(steps) == recorded_executes(ROT / "syslog.log")
    assert len(executes(steps)) == 10                        # five rebuilds per tunnel


def test_rotation_policy_chains_match_the_poller(mwan3_config: str) -> None:
    m = started(mwan3_config)
    full = collapse([chains(m.start(set(BOTH)))[-1]] + chains(old_rotation(m)))
    sampled = collapse(recorded_chains(ROT / "poller.log"))
    assert is_subsequence(sampled, full), (sampled, full)
    # every rebuild starts with an empty chain (only the last-resort rule)
    assert all(s.states[0] == [] for s in old_rotation(started(mwan3_config)) if s.kind == "policy")


def test_netifd_ifup_puts_a_drained_interface_back(mwan3_config: str) -> None:
    """Recorded: after `mwan3 ifdown mw_up1` the mother's restart for the new keys made the
    policy hold mw_up1 again (791.01) before the tool's `mwan3 ifup` (791.85)."""
    m = started(mwan3_config)
    m.command("ifdown", "mw_up1", set(BOTH))
    assert "mw_up1" not in chains([m.rebuild()])[-1]
    assert m.track["mw_up1"] == "disabled"                  # poller: STATUS1 offline, disabled
    m.event("ifdown", "mw_up1", True)
    back = m.event("ifup", "mw_up1", True)
    assert chains(back)[-1] == 'comment "mw_up2 2 5" comment "mw_up1 3 3"'
    assert m.hotplug["mw_up1"] == "online" and m.track["mw_up1"] == "online"
    poller = (ROT / "poller.log").read_text()
    t_back = float(re.search(r"(\S+) POLICY comment \"mw_up2 2 5\" comment \"mw_up1 3 3\"\s*\n(?=\S+ STATUS1 online)",
                             poller).group(1))
    t_restore = float(next(ln.split()[0] for ln in (ROT / "rotate.out").read_text().splitlines()
                           if "restoring mw_up1" in ln))
    assert t_back < t_restore


def test_recorded_losses_are_the_rebuilds(mwan3_config: str) -> None:
    """Every new flow the recording lost was sent within 0.3 s after a hotplug run began, and the
    losses per rebuild give the model's pause without members."""
    sent = {}
    for line in (ROT / "client.log").read_text().splitlines():
        t, name = line.split()
        sent[name] = float(t)
    got = {line.split()[2] for line in (ROT / "server.log").read_text().splitlines()}
    lost = sorted(t for n, t in sent.items() if n not in got)
    runs = [float(line.split()[0]) for line in (ROT / "syslog.log").read_text().splitlines()
            if "mwan3-hotplug" in line and "Execute" in line]
    assert len(lost) == 8 and len(runs) == 10
    assert all(any(0 <= t - r <= 0.3 for r in runs) for t in lost), lost
    per_rebuild = len(lost) / len(runs) * 0.05              # one new flow every 50 ms
    assert 0.5 * per_rebuild <= REBUILD_PAUSES[0] <= 2.5 * per_rebuild


def test_tracker_events_of_a_failover(mwan3_config: str) -> None:
    """fast1: mwan3track's disconnected, then connected: one rebuild each."""
    m = started(mwan3_config)
    steps = m.event("disconnected", "mw_up1", True) + m.event("connected", "mw_up1", True)
    assert executes(steps) == recorded_executes(FAST / "syslog.log")
    full = collapse(['comment "mw_up2 2 5" comment "mw_up1 3 3"'] + chains(steps))
    assert is_subsequence(collapse(recorded_chains(FAST / "poller.log")), full)


def test_what_mwan3_ignores(mwan3_config: str) -> None:
    """15-mwan3 exits at once for any other action (netifd's `ifupdate` after a renew), for an
    interface mwan3 does not enable, and `mwan3 ifup` refuses an interface that is not up."""
    m = started(mwan3_config)
    assert m.event("ifupdate", "mw_up1", True) == []
    assert m.event("connecting", "mw_up1", True) == []
    assert executes(m.event("ifup", "lan", True)) == []
    assert executes(m.command("ifup", "mw_up1", {"mw_up2"})) == []
    assert m.hotplug == {"mw_up1": "online", "mw_up2": "online"}


# -- mwan3track's files and `ubus call mwan3 status` (tests/standins/mwan3track + _mwtest) --------
# The stand-in's loop run as it is (sh), its `ping` a script that answers for the targets a test
# lists (a target not listed is lost, after ``SLOW`` seconds), read back by the plugin emulation
# that the mother's ubus stand-in uses, and compared with what real mwan3 printed.

def _standins() -> Any:
    sys.path.insert(0, str(Path(__file__).parent / "standins"))
    import _mwtest
    return _mwtest


class TrackerRun:
    def __init__(self, tmp: Path, config: str) -> None:
        self.tmp, self.dir = tmp, tmp / "mwan3track"
        self.answers, self.bin = tmp / "answers", tmp / "bin"
        self.answers.mkdir()
        self.bin.mkdir()
        (self.bin / "ping").write_text('#!/bin/sh\nfor t; do :; done\n[ -e "$ANSWERS/$t" ] && exit 0\n'
                                       'sleep "${SLOW:-0}"; exit 1\n')
        (self.bin / "hotplug-call").write_text('#!/bin/sh\necho "$ACTION $INTERFACE" >> "$ANSWERS/../events"\n')
        for f in ("ping", "hotplug-call"):
            (self.bin / f).chmod(0o755)
        (tmp / "mwan3").write_text(config)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, slow: float = 0.0, initial: str = "online") -> None:
        """mwan3track mw_up1 with the `fast` numbers (a new run: what firstconnect does)."""
        self.stop()
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "MWAN3TRACK_STATUS_DIR": str(self.dir),
               "ANSWERS": str(self.answers), "SLOW": str(slow), "INITIAL_STATE": initial}
        self.proc = subprocess.Popen(["sh", str(Path(__file__).parent / "standins" / "mwan3track"), "mw_up1",
                                      "mw_up1", "198.51.100.1 198.51.100.2", "1", "1", "1", "1", "1", "1",
                                      "2", "2"], env=env, start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)

    def status(self) -> dict[str, Any]:
        m = _standins()
        with open("/proc/uptime") as f:
            up = int(float(f.read().split()[0]))
        running = {"mw_up1"} if m.tracker_running(str(self.dir), "mw_up1") else set()
        return m.mwan3_plugin_interfaces(m.read_config(str(self.tmp / "mwan3")), str(self.dir), up,
                                         {"mw_up1": (True, 100), "mw_up2": (True, 100)}, running)["mw_up1"]

    def wait(self, what: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not what(st := self.status()):
            assert time.monotonic() < deadline, st
            time.sleep(0.05)
        return st


@pytest.fixture
def tracker(tmp_path: Path, mwan3_config: str) -> Iterator[TrackerRun]:
    run = TrackerRun(tmp_path, mwan3_config)
    yield run
    run.stop()


RECORDED = json.loads((FAST / "mwan3-status-during-outage.json").read_text())["interfaces"]
STAMPS = ("age", "online", "offline", "uptime", "turn")      # clock readings: not compared


def _targets(st: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["ip"], t["status"]) for t in st["track_ip"]]


def test_status_of_the_standin_is_shaped_as_real_mwan3s(tracker: TrackerRun) -> None:
    """Key for key and type for type as the recorded plugin output; a good round (the first
    target answers, the second is skipped) reads as mw_up2 did, a failing one as mw_up1."""
    (tracker.answers / "198.51.100.1").touch()
    tracker.start()
    good = tracker.wait(lambda s: s["turn"] >= 2)
    for key, value in RECORDED["mw_up2"].items():
        assert type(good[key]) is type(value), key
        if key not in STAMPS:
            assert good[key] == value, key
    (tracker.answers / "198.51.100.1").unlink()
    first = tracker.wait(lambda s: s["status"] == "offline")
    # a round writes STATUS before LOST/SCORE/TURN/TIME (the plugin can read it in between):
    # compare the files of a whole round
    bad = tracker.wait(lambda s: s["turn"] > first["turn"])
    for key, value in RECORDED["mw_up1"].items():
        if key not in STAMPS + ("lost",):
            assert bad[key] == value, key
    assert _targets(bad) == [("198.51.100.1", "down"), ("198.51.100.2", "down")]
    assert bad["lost"] >= 4 and bad["lost"] % 2 == 0    # two per failed round, kept until a good one
    assert bad["online"] == 0 and bad["offline"] >= 0


def test_initial_state_online_is_reported_before_any_round(tracker: TrackerRun) -> None:
    """firstconnect with initial_state online: "online" at once, no round yet (turn 0, no TIME,
    targets "unknown"); after an ifup of a restarted interface the same "online", next to the
    files the rounds before it left. Neither is proof for the deploy's check; the round after
    it is, when a target answered, and a lost one is not online any more."""
    tracker.start(slow=1.5)                      # no target answers; each loss takes 1.5 s
    st = tracker.wait(lambda s: s["status"] != "unknown", 3)      # firstconnect has run
    assert (st["status"], st["turn"], st["age"], st["score"], st["lost"]) == ("online", 0, 0, 0, 0)
    assert _targets(st) == [("198.51.100.1", "unknown"), ("198.51.100.2", "unknown")]
    assert st["online"] in (0, 1) and st["running"] and st["tracking"] == "active"
    assert "no round since" in verify.tracking_proof(_iface(st), 0.0, 10**6, 25)
    after = tracker.wait(lambda s: s["status"] != "online" and s["turn"] >= 1, 8)
    assert after["status"] == "disconnecting" and after["turn"] == 1
    assert verify.tracking_proof(_iface(after), 0.0, 10**6, 25).startswith(
        "mwan3 tracking reports it disconnecting: no tracking target answered")

    (tracker.answers / "198.51.100.1").touch()
    tracker.wait(lambda s: s["status"] == "online" and s["turn"] >= 1 and s["lost"] == 0)
    good = tracker.wait(lambda s: s["age"] < s["online"], 8)
    assert verify.tracking_proof(_iface(good), 0.0, 10**6, 25) == ""
    (tracker.answers / "198.51.100.1").unlink()
    time.sleep(1.1)                              # ONLINE of the new run in a later second
    tracker.start(slow=1.5)                      # the ifup: a new firstconnect, the old files kept
    st = tracker.wait(lambda s: s["online"] <= 1, 3)
    assert st["status"] == "online" and st["turn"] >= 1 and st["online"] in (0, 1)
    assert _targets(st)[0] == ("198.51.100.1", "up")            # of the round before the ifup
    assert "no round since" in verify.tracking_proof(_iface(st), 0.0, 10**6, 25)


def _iface(st: dict[str, Any]) -> Mwan3Interface:
    return parse_mwan3_status(json.dumps({"interfaces": {"mw_up1": st}}), "m").interfaces["mw_up1"]
