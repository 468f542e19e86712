"""validate's timing promise and flapping warning (issue 9), checked two ways:

* replayed against recordings of real mwan3 2.12.2 (tests/vectors/mwan3/failover: `fast1`,
  `bal3`): every measured failover and recovery lies inside the printed bounds, and the constants
  for the shell's own overhead cover what was measured;
* swept over every phase of mwan3track's loop: a model of its main loop (written from the
  2.12.2 source: sequential probes, score, the sleep after each round), itself checked against the
  recorded round times, is started with the outage beginning and ending at a fine grid of phases;
  every result lies within the arithmetic bounds, and the worst case reaches them (they are tight).
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

from mwanctl.topology import load_topology
from mwanctl.tracking import (
    EVENT_DELAY,
    FLAP_LOSS,
    PROFILES,
    ROUND_OVERHEAD,
    advice,
    false_failovers_per_hour,
    round_failure_probability,
    timing,
)

VEC = Path(__file__).parent / "vectors" / "mwan3" / "failover"
RUNS = ("fast1", "bal3")


# --------------------------------------------------------------------------- the recordings


def _events(run: str) -> dict[str, float]:
    return {name: float(t) for t, name in (line.split() for line in (VEC / run / "events.log").read_text().splitlines())}


def _syslog(run: str) -> list[tuple[float, str]]:
    out = []
    for line in (VEC / run / "syslog.log").read_text().splitlines():
        stamp, rest = line.split(" ", 1)
        out.append((float(stamp), rest))
    return out


def _stamp(run: str, pattern: str, after: float) -> float:
    return next(t for t, text in _syslog(run) if t > after and re.search(pattern, text))


def _policy_change(run: str, after: float, with_up1: bool) -> float:
    for line in (VEC / run / "poller.log").read_text().splitlines():
        t, kind, *rest = line.split(" ", 2)
        if kind == "POLICY" and float(t) > after and rest and rest[0].strip() and \
                (("mw_up1" in rest[0]) == with_up1):
            return float(t)
    raise AssertionError("no policy change")


def _analysis(run: str) -> dict:
    first = (VEC / run / "analysis.txt").read_text().splitlines()[0]
    return ast.literal_eval(first.replace("true", "True").replace("false", "False"))


def _tracking(run: str):  # type: ignore[no-untyped-def]
    topo = load_topology(str(VEC / run / "topology.yaml"))
    return topo.uplink("up1").tracking


@pytest.mark.parametrize("run", RUNS)
def test_recorded_failover_and_recovery_lie_within_the_printed_bounds(run: str) -> None:
    tr = _tracking(run)
    b = timing(tr)
    ev = _events(run)
    a = _analysis(run)
    offline = _stamp(run, r"mw_up1 .*is offline", ev["cut"]) - ev["cut"]
    moved = _policy_change(run, ev["cut"], with_up1=False) - ev["cut"]
    online = _stamp(run, r"mw_up1 .*is online", ev["restore"]) - ev["restore"]
    back = _policy_change(run, ev["restore"], with_up1=True) - ev["restore"]
    assert b.offline_min <= offline <= moved <= b.offline_max
    assert b.offline_min <= a["moved_rel_cut"] <= b.offline_max
    assert b.online_min <= online <= back <= b.online_max
    assert b.online_min <= a["restore_to_back"] <= b.online_max


def test_bal3_recovery_needed_the_round_in_flight() -> None:
    """The old promise, (up-1)·recovery_interval + one interval, was 9 s; real mwan3 took 10.98 s."""
    tr = _tracking("bal3")
    old_max = (tr.up - 1) * tr.recovery_interval + tr.interval
    assert _analysis("bal3")["restore_to_back"] > old_max
    assert timing(tr).online_max >= _analysis("bal3")["restore_to_back"]


def _rounds(run: str, timeout: float) -> list[tuple[float, float, str]]:
    """(start, end, result) of each round mwan3track logged (failures log while score > up,
    successes while score <= up). A lost probe takes `timeout`, an answered one about nothing."""
    rounds: dict[tuple[str, int], list[float]] = {}
    order: list[tuple[str, int]] = []
    for t, text in _syslog(run):
        m = re.search(r"Check \(ping\) (failed|success) .*Current score: (\d+)", text)
        if m:
            key = (m.group(1), int(m.group(2)))
            if key not in rounds:
                order.append(key)
            rounds.setdefault(key, []).append(t)
    out = []
    for key in order:
        stamps = rounds[key]
        if key[0] == "failed":
            out.append((stamps[0] - timeout, stamps[-1], "failed"))
        else:
            out.append((stamps[0], stamps[-1], "success"))
    return out


@pytest.mark.parametrize("run", RUNS)
def test_overhead_constants_cover_what_real_mwan3_spent(run: str) -> None:
    tr = _tracking(run)
    rounds = _rounds(run, tr.timeout)
    gaps = []
    for (_, e0, r0), (s1, _, r1) in zip(rounds, rounds[1:]):
        if r0 == r1:
            sleep = tr.failure_interval if r0 == "failed" else tr.recovery_interval
            gaps.append(s1 - e0 - sleep)
    assert gaps and max(gaps) <= ROUND_OVERHEAD and min(gaps) > -0.05
    ev = _events(run)
    off = _stamp(run, r"mw_up1 .*is offline", ev["cut"])
    on = _stamp(run, r"mw_up1 .*is online", ev["restore"])
    assert 0 < _policy_change(run, ev["cut"], False) - off <= EVENT_DELAY
    assert 0 < _policy_change(run, ev["restore"], True) - on <= EVENT_DELAY


# --------------------------------------------------------------------------- a model of the loop

RTT = 0.02


def simulate(tr, link_up: Callable[[float], bool], start: float, until: float,  # type: ignore[no-untyped-def]
             rtt: float = RTT) -> list[tuple[float, str]]:
    """mwan3track's main loop (2.12.2) with ping: returns (time, state) at each offline/online."""
    down, up = tr.down, tr.up
    score = down + up
    t = start
    events = []
    while t < until:
        host_up = 0
        for _ in tr.targets:
            if host_up >= tr.reliability:
                continue                      # skipped
            sends = [t + i for i in range(tr.count)]
            answered = [link_up(x) and link_up(x + rtt) for x in sends]
            t = sends[-1] + (rtt if answered[-1] else tr.timeout)
            host_up += any(answered)
        sleep = tr.interval
        if host_up < tr.reliability:
            score -= 1
            if score < up:
                score = 0
                if tr.keep_failure_interval:
                    sleep = tr.failure_interval
            elif score == up:
                sleep = tr.failure_interval
                events.append((t, "offline"))
                score = 0
            else:
                sleep = tr.failure_interval
        else:
            score += 1
            if score < up:
                sleep = tr.recovery_interval
            elif score == up:
                sleep = tr.recovery_interval
                events.append((t, "online"))
                score = down + up
            else:
                score = down + up
        t += sleep
    return events


def test_the_model_reproduces_the_recorded_rounds() -> None:
    """Given the start of bal3's first failing round, the model's offline/online times differ from
    real mwan3's by no more than its per-round overhead."""
    tr = _tracking("bal3")
    ev = _events("bal3")
    first = _rounds("bal3", tr.timeout)[0][0]
    period = tr.interval + RTT
    start = first - 20 * period
    up = lambda x: not (ev["cut"] <= x < ev["restore"])  # noqa: E731
    events = simulate(tr, up, start, ev["restore"] + 30)
    model_off = next(t for t, s in events if s == "offline")
    model_on = next(t for t, s in events if s == "online" and t > ev["restore"])
    real_off = _stamp("bal3", r"mw_up1 .*is offline", ev["cut"])
    real_on = _stamp("bal3", r"mw_up1 .*is online", ev["restore"])
    assert 0 <= real_off - model_off <= (tr.down + 1) * ROUND_OVERHEAD
    assert 0 <= real_on - model_on <= 7 * ROUND_OVERHEAD     # 3 offline rounds + 3 good ones + 1


def _settings():  # type: ignore[no-untyped-def]
    base = _tracking("bal3")
    cases = {name: replace(base, **nums) for name, nums in PROFILES.items()}
    cases["fast-1-target"] = replace(cases["fast"], targets=("198.51.100.1",))
    cases["balanced-3-targets-rel2"] = replace(cases["balanced"], targets=("a", "b", "c"), reliability=2)
    cases["count3"] = replace(cases["balanced"], count=3, timeout=1)
    cases["keep-failure"] = replace(cases["balanced"], keep_failure_interval=True, failure_interval=1)
    cases["fi-above-interval"] = replace(cases["fast"], failure_interval=4, recovery_interval=3, up=4)
    return cases


@pytest.mark.parametrize("name", sorted(_settings()))
def test_bounds_hold_for_every_phase_of_the_loop(name: str) -> None:
    tr = _settings()[name]
    b = timing(tr, round_overhead=0.0, event_delay=0.0)
    period = tr.interval + RTT * 1
    worst_off = worst_on = 0.0
    best_off = best_on = 1e9
    steps = 60
    for i in range(steps):
        cut = 100.0 + period * i / steps
        # find when this outage is noticed, then restore at many phases of the offline loop
        events = simulate(tr, lambda x: x < cut, 0.0, cut + b.offline_max + 5)
        off = next(t for t, s in events if s == "offline" and t > cut)
        worst_off, best_off = max(worst_off, off - cut), min(best_off, off - cut)
        cycle = max(tr.interval, tr.failure_interval) + len(tr.targets) * tr.timeout * tr.count + tr.count
        # from inside the round that declares offline (its last probe is still lost) onwards
        first = off - len(tr.targets) * (tr.timeout * tr.count + tr.count)
        for j in range(steps):
            restore = first + 0.001 + 2 * cycle * j / steps
            link = lambda x, c=cut, r=restore: x < c or x >= r  # noqa: E731
            ev = simulate(tr, link, 0.0, restore + b.online_max + 5)
            if not any(s == "offline" and t > cut for t, s in ev):
                continue                      # back before mwan3 noticed: no failover to recover from
            on = next(t for t, s in ev if s == "online" and t > restore)
            worst_on, best_on = max(worst_on, on - restore), min(best_on, on - restore)
    slack = 2 * RTT * len(tr.targets) * tr.up      # round trips of good rounds, not in the arithmetic
    assert b.offline_min - slack <= best_off and worst_off <= b.offline_max + slack, (best_off, worst_off, b)
    assert b.online_min <= best_on and worst_on <= b.online_max + slack, (best_on, worst_on, b)
    # and the bounds are not padding: the sweep comes within a grid step of the worst case
    step = 2 * period / steps + 2 * cycle / steps
    if tr.count == 1:
        assert worst_on >= b.online_max - step - slack and worst_off >= b.offline_max - step - slack


# --------------------------------------------------------------------------- flapping


def _fast(targets: int, down: int):  # type: ignore[no-untyped-def]
    base = replace(_tracking("fast1"), **PROFILES["fast"])
    return replace(base, targets=tuple(f"198.51.100.{i}" for i in range(1, targets + 1)), down=down)


def test_false_failovers_match_what_the_issue_measured() -> None:
    """5 % loss with `fast`, down 1: 1 target gave 13-20 false failovers in 5 min, 3 targets 0."""
    one = false_failovers_per_hour(_fast(1, 1), 0.05) * 5 / 60
    three = false_failovers_per_hour(_fast(3, 1), 0.05) * 5 / 60
    assert 13 <= one <= 20
    assert three < 0.5
    assert round_failure_probability(_fast(3, 1), 0.05) == pytest.approx(0.05 ** 3)


def test_flapping_warning_follows_the_probability_not_down_alone() -> None:
    flap = lambda tr: [m for m in advice(tr) if m.startswith("flaps")]  # noqa: E731
    assert flap(_fast(1, 1))                       # ~160 a day would be an understatement: warn
    assert flap(_fast(3, 1))                       # 3 targets, down 1: still ~10 a day at 5 %
    assert not flap(_fast(3, 3))                   # down 1 is not the problem by itself ...
    assert not flap(_fast(2, 2))                   # ... and down 2 with 2 targets is fine (< 1/day)
    assert 24 * false_failovers_per_hour(_fast(2, 2), FLAP_LOSS) < 1
    assert not flap(replace(_fast(1, 1), targets=()))  # no targets: a different warning
