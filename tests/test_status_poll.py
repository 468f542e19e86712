"""status.poll: the one poll `mwanctl status` and the web poller share. Which router is asked what,
in which order, and how each failure becomes part of the status; the answers are the recorded
mwan3 2.12.2 output of tests/vectors/mwan3 (test_status_e2e.py runs the same poll over SSH)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mwanctl.errors import CommandError, ConnectError, MwanctlError
from mwanctl.status import build_status, exit_code, to_json
from mwanctl.status.poll import MOTHER_PROBES, OTHER_WAN_PROBES, UPLINK_PROBES, Answer, poll_site
from mwanctl.topology.load import diagnose
from mwanctl.topology.model import Topology

try:
    from tests.test_status import EXP, NOW, probes
except ImportError:  # pragma: no cover
    from test_status import EXP, NOW, probes  # type: ignore[no-redef]

WAN_UP = '{"up": true, "ipv4-address": [{"address": "100.64.3.9", "mask": 10}]}'


def _routers_of_exp(tmp_path: Path, up1_more: str = "") -> Topology:
    """The routers of test_status.EXP: a mother and the uplink routers up1 (with ``up1_more``
    keys), up2."""
    path = tmp_path / "t.yaml"
    path.write_text("site: t\nmother: {host: 192.0.2.1}\nuplinks:\n"
                    f"  - {{name: up1, host: 192.0.2.2{up1_more}}}\n  - {{name: up2, host: 192.0.2.3}}\n")
    t, diags = diagnose(path)
    assert t is not None, diags
    return t


@pytest.fixture
def topo(tmp_path: Path) -> Topology:
    return _routers_of_exp(tmp_path)


class Routers:
    """What each router answers, and the questions asked, in order."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def ask(self, router: str, wanted: tuple[str, ...]) -> Answer:
        self.asked.append((router, wanted))
        return self.answers[router]


def test_mother_first_then_each_uplink_and_the_status_is_the_builders(topo: Topology) -> None:
    mother = probes()
    r = Routers({"mother": mother, "up1": {"wan_status": WAN_UP}, "up2": ConnectError("up2: refused")})
    polled = poll_site(topo, EXP, r.ask, True, lambda: NOW)
    assert r.asked == [("mother", MOTHER_PROBES), ("up1", UPLINK_PROBES), ("up2", UPLINK_PROBES)]
    ups = {"up1": {"wan_status": WAN_UP}, "up2": {"wan_status": "ERROR: up2: refused"}}
    assert to_json(polled.status) == to_json(build_status(EXP, mother, ups, now=NOW))
    assert polled.reach() == {"mother": None, "up1": None, "up2": "up2: refused"}
    wan = {u.name: u.wan for u in polled.status.uplinks}
    assert wan["lte"] is not None and wan["lte"].address == "100.64.3.9"
    assert wan["dsl"] is not None
    assert wan["dsl"].error == "up2: `ubus call network.interface.wan status` failed: up2: refused"


def test_without_uplinks_only_the_mother_is_asked(topo: Topology) -> None:
    r = Routers({"mother": probes()})
    polled = poll_site(topo, EXP, r.ask, False, lambda: NOW)
    assert r.asked == [("mother", MOTHER_PROBES)] and exit_code(polled.status) == 0
    assert all(u.wan is None for u in polled.status.uplinks)


@pytest.mark.parametrize("error, reachable, code", [
    (ConnectError("mother: connection refused"), False, 3),       # could not be reached
    (CommandError("mother: `ubus call mwan3 status` failed: Not found"), True, 3),   # reached, probe failed
])
def test_a_mother_that_does_not_answer_is_unknown_and_no_uplink_is_asked(
        topo: Topology, error: MwanctlError, reachable: bool, code: int) -> None:
    r = Routers({"mother": error, "up1": {"wan_status": WAN_UP}, "up2": {"wan_status": WAN_UP}})
    polled = poll_site(topo, EXP, r.ask, True, lambda: NOW)
    assert r.asked == [("mother", MOTHER_PROBES)]
    assert (polled.status.reachable, exit_code(polled.status)) == (reachable, code)
    assert str(error) in (polled.status.error or "")


def test_gather_asks_every_router_at_once(topo: Topology) -> None:
    r = Routers({"mother": ConnectError("mother: timed out"), "up1": {"wan_status": WAN_UP},
                 "up2": {"wan_status": WAN_UP}})
    batches: list[list[str]] = []

    def gather(questions: dict[str, Callable[[], Answer]]) -> dict[str, Answer]:
        batches.append(list(questions))
        return {name: q() for name, q in questions.items()}

    polled = poll_site(topo, EXP, r.ask, True, lambda: NOW, gather)
    assert batches == [["mother", "up1", "up2"]] and len(r.asked) == 3   # the uplinks too, even now
    assert polled.reach() == {"mother": "mother: timed out", "up1": None, "up2": None}
    assert not polled.status.reachable and exit_code(polled.status) == 3


def test_the_tracker_probe_is_asked_only_when_an_uplink_uses_the_tracker(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("site: t\nmother: {host: 192.0.2.1}\nuplinks:\n"
                    "  - {name: up1, host: 192.0.2.2, tracking: {profile: instant}}\n")
    t, diags = diagnose(path)
    assert t is not None, diags
    r = Routers({"mother": probes()})
    poll_site(t, EXP, r.ask, False, lambda: NOW)
    assert r.asked == [("mother", MOTHER_PROBES + ("tracker",))]


def test_an_uplink_whose_wan_block_names_another_interface_is_asked_about_that_one(tmp_path: Path) -> None:
    """`wan: {interface: dsl0}`: its router is asked for netifd's interface dump and the row shows
    dsl0's state, not that of an interface called `wan` (which may be down or not exist)."""
    t = _routers_of_exp(tmp_path, ", wan: {proto: dhcp, device: eth1, interface: dsl0}")
    dump = ('{"interface": [{"interface": "wan", "up": false}, {"interface": "dsl0", "up": true,'
            ' "ipv4-address": [{"address": "100.64.7.7", "mask": 10}]}]}')
    r = Routers({"mother": probes(), "up1": {"iface_dump": dump}, "up2": {"wan_status": WAN_UP}})
    polled = poll_site(t, EXP, r.ask, True, lambda: NOW)
    assert r.asked == [("mother", MOTHER_PROBES), ("up1", OTHER_WAN_PROBES), ("up2", UPLINK_PROBES)]
    wan = {u.name: u.wan for u in polled.status.uplinks}
    assert wan["lte"] is not None and (wan["lte"].up, wan["lte"].address) == (True, "100.64.7.7")
    r = Routers({"mother": probes(), "up1": {"iface_dump": '{"interface": [{"interface": "wan", "up": true}]}'},
                 "up2": {"wan_status": WAN_UP}})
    wan = {u.name: u.wan for u in poll_site(t, EXP, r.ask, True, lambda: NOW).status.uplinks}
    assert wan["lte"] is not None and "netifd has no interface dsl0" in (wan["lte"].error or "")
