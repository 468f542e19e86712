"""Profile `instant`: what validate promises, what compile writes, what a plan does with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import mwanctl.topology  # noqa: F401  (tracking needs the topology package loaded first)
from mwanctl.compile import tracker
from mwanctl.errors import TopologyError
from mwanctl.plan import plan_router
from mwanctl.site import prepare
from mwanctl.topology import parse_topology
from mwanctl.trackerview import parse_tracker_probe
from mwanctl.tracking import timing, tracker_timing
from mwanctl.transports.base import RouterState
from mwanctl.uci.parse import parse

REPO = Path(__file__).resolve().parent.parent
BASE = """site: x
mother: {host: 192.0.2.1}
uplinks:
  - {name: dsl, host: 192.0.2.2}
  - {name: lte, host: 192.0.2.3, tracking: {profile: fast}}
"""
INSTANT = BASE + "tracking: {profile: instant, targets: [198.51.100.1, 198.51.100.2]}\n"


def _compiled(text: str, tmp_path: Path):
    topo = parse_topology(text)
    compiled, _ = prepare(topo, tmp_path / "state")
    return topo, compiled


def test_bounds_follow_window_interval_stable() -> None:
    t = parse_topology(INSTANT).uplinks[0].tracking
    assert t.tracker and (t.probe_interval_ms, t.window_ms, t.stable_ms) == (200, 600, 1000)
    b = tracker_timing(t)
    assert (b.offline_min, b.offline_max, b.online_min, b.online_max) == (0.5, 1.2, 1.0, 1.8)
    assert timing(t) == b
    slow = parse_topology(INSTANT.replace("profile: instant,", "profile: instant, window_ms: 1500,"))
    assert timing(slow.uplinks[0].tracking).offline_max == 2.1
    # an uplink that keeps its own mwan3 profile keeps mwan3's arithmetic
    assert not parse_topology(INSTANT).uplinks[1].tracking.tracker


@pytest.mark.parametrize("extra, field, words", [
    ("probe_interval_ms: 400, window_ms: 500", "tracking.window_ms", "less than two probe intervals"),
    ("probe_interval_ms: 20", "tracking.probe_interval_ms", "50"),
])
def test_refused_settings_name_the_field(extra: str, field: str, words: str) -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(INSTANT.replace("profile: instant,", f"profile: instant, {extra},"))
    text = str(e.value.diagnostics[0])
    assert field in text and words in text


def test_ipv6_only_targets_refused() -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(INSTANT.replace("[198.51.100.1, 198.51.100.2]", "['2001:db8::1']"))
    assert "tracking.targets" in str(e.value.diagnostics[0]) and "IPv4" in str(e.value.diagnostics[0])


def test_compiled_sections_and_plan_effects(tmp_path: Path) -> None:
    _, c = _compiled(INSTANT, tmp_path)
    m = c.routers["mother"]
    assert "mwanctl" in m.packages
    secs = {s.name: s for s in m.sections["mwanctl"]}
    assert list(secs) == ["mw_tracker", "mw_dsl"]               # lte keeps plain mwan3 tracking
    assert secs["mw_dsl"].options == {"device": "mw_dsl", "interval": "0.2", "window": "0.6", "stable": "1",
                                      "target": ("198.51.100.1", "198.51.100.2")}
    assert secs["mw_tracker"].options["files"] == tracker.digest()
    state = RouterState(packages={p: parse("", p) if p != "mwanctl" else None for p in m.packages})
    plan = plan_router(m, state)
    assert plan.apply is not None and "mwanctl-track" in plan.apply.reload
    assert set(plan.apply.files) == {tracker.SCRIPT, tracker.INIT}
    assert plan.apply.links == {tracker.LINK: "../init.d/mwanctl-track"}
    assert "PROG=/etc/mwanctl/mwanctl-track" in plan.apply.files[tracker.INIT]

    # the setting goes: the plan deletes the sections and removes the files, reloading nothing
    _, c2 = _compiled(BASE, tmp_path)
    m2 = c2.routers["mother"]
    from mwanctl.uci.model import UciPackage
    from mwanctl.uci.render import export
    had = UciPackage("mwanctl", list(m.sections["mwanctl"]))
    state2 = RouterState(packages={**{p: parse("", p) for p in m2.packages}, "mwanctl": parse(export(had), "mwanctl")})
    plan2 = plan_router(m2, state2, packages_=("mwanctl",))
    assert plan2.apply is not None
    assert plan2.apply.remove == [tracker.LINK, tracker.INIT, tracker.SCRIPT]
    assert "mwanctl-track" not in plan2.apply.reload and not plan2.apply.files
    # without the tracker and with nothing there: nothing to do, nothing rendered
    state3 = RouterState(packages={"mwanctl": None})
    assert plan_router(m2, state3, packages_=("mwanctl",)).apply is None


def test_needs_ssh(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as e:
        _compiled(INSTANT + "access:\n  mother: {transport: ubus}\n", tmp_path)
    assert "needs the ssh transport" in e.value.diagnostics[0].message
    # a ubus mother without the tracker never reads /etc/config/mwanctl (rpcd's ACL may not allow it)
    _, c = _compiled(BASE + "access:\n  mother: {transport: ubus}\n", tmp_path)
    assert "mwanctl" not in c.routers["mother"].packages


def test_router_scripts_parse_under_busybox_sh() -> None:
    for path, text in tracker.files().items():
        r = subprocess.run(["busybox", "sh", "-n"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, (path, r.stderr)


def test_tracker_view_from_state_file_format() -> None:
    # the format mwanctl-track's engine prints (see its tick function)
    text = ("== mw_dsl\ndevice=mw_dsl\nstate=down\nsince=100.00\nnow=103.00\nlast_answer=99.40\n"
            "sent=600\nanswered=540\nrtt_avg_ms=12.500\nrtt_max_ms=40.100\nwindow=0.6\nstable=1\n"
            "reason=no answer from 198.51.100.1 198.51.100.2 for 0.7 s\n== mw_lte\nstate=bogus\n")
    v = parse_tracker_probe(text, uptime=104.0)
    assert list(v) == ["mw_dsl"]
    d = v["mw_dsl"]
    assert (d.state, d.since, d.last_answer_age, d.loss_pct, d.rtt_avg_ms) == ("down", 4.0, 4.6, 10.0, 12.5)
    assert d.text() == ("tracker down: answer 4.6s ago, loss 10%, rtt 12.5/40.1 ms "
                        "(no answer from 198.51.100.1 198.51.100.2 for 0.7 s)")
