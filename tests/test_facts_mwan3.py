"""mwan3 facts: the recorded real outputs (tests/vectors/mwan3), hand-written fixtures for the other
plugin shapes of reference §2 (tests/facts/mwan3/<case>.json + <case>.expected.json), malformed input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mwanctl.errors import CommandError
from mwanctl.facts import (
    Mwan3Status,
    TrackTarget,
    parse_mwan3_status,
)
from mwanctl.status import ExpectedMember, compute_shares
from tests.mwan3_text import parse_mwan3_interfaces_text, parse_mwan3_policies_text

HERE = Path(__file__).parent
VECTORS = HERE / "vectors" / "mwan3"
FIXTURES = HERE / "facts" / "mwan3"
BALANCED = (ExpectedMember("wanA", 1, 3), ExpectedMember("wanB", 1, 2))


def vector(name: str) -> str:
    return (VECTORS / name).read_text()


def status(name: str) -> Mwan3Status:
    return parse_mwan3_status(vector(name), "mother")


def carrying(st: Mwan3Status) -> set[str]:
    return {n for n, i in st.interfaces.items() if i.status in ("online", "disconnecting")}


# --------------------------------------------------------------------------- recorded vectors


def test_every_vector_is_covered() -> None:
    covered = {"mwan3-status-both-online.json", "mwan3-status-wanA-offline.json",
               "mwan3-status-wanB-disabled.json", "mwan3-status-cli-both-online.txt",
               "mwan3-interfaces-wanB-disabled.txt"}
    # the subdirectories (failover/, rotation/) and README.md are used by their own tests
    assert {p.name for p in VECTORS.iterdir() if p.is_file() and p.name != "README.md"} == covered


def test_both_online() -> None:
    st = status("mwan3-status-both-online.json")
    assert set(st.interfaces) == {"wanA", "wanB"}
    a = st.interfaces["wanA"]
    assert (a.status, a.tracking, a.enabled, a.running, a.up) == ("online", "active", True, True, True)
    assert (a.age, a.online, a.offline, a.uptime, a.score, a.lost, a.turn) == (4, 4, 0, 291, 11, 0, 1)
    assert a.since == 4
    assert a.track_ip == (TrackTarget("198.51.100.1", "up", 0, 0), TrackTarget("198.51.100.2", "skipped", 0, 0))
    assert not any(t.measured for t in a.track_ip)  # no check_quality: 0/0 is "not measured"
    assert st.policies["ipv6"] == {}
    assert "224.0.0.0/3" in st.connected["ipv4"] and st.connected["ipv6"] == ("fe80::/64",)


def test_ucode_percent_is_truncated_but_computed_shares_are_60_40() -> None:
    st = status("mwan3-status-both-online.json")
    reported = {m.iface: m.percent for m in st.policies["ipv4"]["balanced"]}
    assert reported == {"wanA": 100, "wanB": 0}  # what the 25.12 plugin says: wrong
    shares = compute_shares(BALANCED, carrying(st))
    assert shares == pytest.approx({"wanA": 0.6, "wanB": 0.4})
    cli = parse_mwan3_policies_text(vector("mwan3-status-cli-both-online.txt"))
    assert {m.iface: m.percent for m in cli["ipv4"]["balanced"]} == {"wanA": 60, "wanB": 40}


def test_wanA_offline() -> None:
    st = status("mwan3-status-wanA-offline.json")
    a, b = st.interfaces["wanA"], st.interfaces["wanB"]
    assert (a.status, a.online, a.offline, a.since, a.lost) == ("offline", 0, 18, 18, 8)
    assert [t.status for t in a.track_ip] == ["down", "down"]
    assert (b.status, b.since) == ("online", 75)
    assert [m.iface for m in st.policies["ipv4"]["balanced"]] == ["wanB"]
    assert compute_shares(BALANCED, carrying(st)) == {"wanA": 0.0, "wanB": 1.0}


def test_wanB_disabled() -> None:
    st = status("mwan3-status-wanB-disabled.json")
    b = st.interfaces["wanB"]
    assert (b.status, b.tracking, b.enabled, b.running, b.up) == ("unknown", "down", False, False, True)
    assert b.since is None
    assert [t.status for t in b.track_ip] == ["unknown", "unknown"]
    assert compute_shares(BALANCED, carrying(st)) == {"wanA": 1.0, "wanB": 0.0}


@pytest.mark.parametrize("json_name, text_name", [
    ("mwan3-status-both-online.json", "mwan3-status-cli-both-online.txt"),
    ("mwan3-status-wanB-disabled.json", "mwan3-interfaces-wanB-disabled.txt"),
])
def test_json_reading_agrees_with_what_mwan3_printed_at_the_same_moment(json_name: str, text_name: str) -> None:
    """Each text vector is mwan3's own CLI report of the state its JSON vector was recorded in."""
    st = status(json_name)
    lines = parse_mwan3_interfaces_text(vector(text_name), "mother")
    assert set(lines) == set(st.interfaces)
    for name, line in lines.items():
        iface = st.interfaces[name]
        assert (iface.status, iface.tracking) == (line.status, line.tracking), name
        if line.online_for is not None:
            assert (iface.since, iface.uptime) == (line.online_for, line.uptime), name


def test_cli_status_text_interfaces() -> None:
    lines = parse_mwan3_interfaces_text(vector("mwan3-status-cli-both-online.txt"), "mother")
    assert set(lines) == {"wanA", "wanB"}
    a = lines["wanA"]
    assert (a.status, a.tracking, a.errors, a.online_for, a.uptime, a.hotplug_state) == (
        "online", "active", 0, 4, 291, "online")


def test_cli_policies_text_last_resort_has_no_members() -> None:
    cli = parse_mwan3_policies_text(vector("mwan3-status-cli-both-online.txt"))
    assert cli["ipv6"] == {"balanced": ()}
    assert [m.iface for m in cli["ipv4"]["balanced"]] == ["wanB", "wanA"]


def test_interfaces_text_disabled_error_bits() -> None:
    lines = parse_mwan3_interfaces_text(vector("mwan3-interfaces-wanB-disabled.txt"))
    b = lines["wanB"]
    assert (b.status, b.tracking, b.errors, b.online_for) == ("unknown", "down", 31, None)
    assert len(b.error_reasons) == 5
    assert lines["wanA"].uptime == 4 * 60 + 43


def test_interfaces_text_partial_error_bits() -> None:
    text = "Interface status:\n interface lte is offline and tracking is active (16)\n"
    line = parse_mwan3_interfaces_text(text)["lte"]
    assert line.errors == 16 and line.error_reasons == ("no default route in the interface's table",)


# --------------------------------------------------------------------------- other shapes (fixtures)

CASES = sorted(p.name[: -len(".json")] for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json"))


def test_fixture_set() -> None:
    assert CASES == ["ipv6-policies", "no-tracking", "shell-23.05", "shell-24.10"]


@pytest.mark.parametrize("case", CASES)
def test_fixture_parses_to_expected(case: str) -> None:
    parsed = parse_mwan3_status((FIXTURES / f"{case}.json").read_text(), "mother")
    got = json.loads(json.dumps(dataclasses.asdict(parsed)))
    assert got == json.loads((FIXTURES / f"{case}.expected.json").read_text())


def fixture(case: str) -> Mwan3Status:
    return parse_mwan3_status((FIXTURES / f"{case}.json").read_text(), "mother")


def test_shell_2305_raw_enabled_and_notracking() -> None:
    st = fixture("shell-23.05")
    assert {n: i.enabled for n, i in st.interfaces.items()} == {"wanA": True, "wanB": True, "wan": False}
    assert {i.tracking for i in st.interfaces.values()} == {"unknown"}  # 23.05 has no `tracking`
    b = st.interfaces["wanB"]
    assert b.status == "notracking" and b.age is None and b.online is None  # "" counters: unknown, no crash
    good, lost = st.interfaces["wanA"].track_ip
    assert good.measured and (good.latency, good.packetloss) == (18, 0)
    assert lost.measured and (lost.latency, lost.packetloss) == (999999, 100)


def test_shell_2410_percent_is_correct_there_and_empty_policy() -> None:
    st = fixture("shell-24.10")
    assert st.interfaces["wanB"].status == "connecting" and st.interfaces["wanB"].since == 9
    lte = st.interfaces["lte"]
    assert (lte.status, lte.tracking, lte.uptime, lte.up, lte.track_ip) == ("unknown", "paused", 0, False, ())
    assert st.policies["ipv4"]["wanB_only"] == ()
    assert st.policy_members("wanB_only") == ()
    assert st.policy_members("nope") is None


def test_no_tracking() -> None:
    st = fixture("no-tracking")
    assert all(i.tracking == "disabled" and i.track_ip == () for i in st.interfaces.values())
    assert st.interfaces["wanA"].up is True and st.interfaces["wanB"].up is False


def test_ipv6_policies_by_family() -> None:
    st = fixture("ipv6-policies")
    assert [m.iface for m in st.policies["ipv6"]["balanced"]] == ["wanA6"]
    assert [m.iface for m in st.policy_members("balanced") or ()] == ["wanB", "wanA", "wanA6"]
    members = BALANCED + (ExpectedMember("wanA6", 1, 3, "ipv6"), ExpectedMember("wanB6", 1, 2, "ipv6"))
    shares = compute_shares(members, carrying(st))  # each family balances on its own
    assert shares == pytest.approx({"wanA": 0.6, "wanB": 0.4, "wanA6": 1.0, "wanB6": 0.0})


# --------------------------------------------------------------------------- tolerance and errors


def test_missing_fields_read_as_unknown() -> None:
    st = parse_mwan3_status('{"interfaces": {"wanA": {}, "wanB": {"track_ip": [1, {"ip": "x"}, "y"]}}}', "m")
    a = st.interfaces["wanA"]
    assert (a.status, a.tracking, a.enabled, a.online, a.since, a.track_ip) == (
        "unknown", "unknown", None, None, None, ())
    assert st.interfaces["wanB"].track_ip == (TrackTarget("x", "unknown"), TrackTarget("y", "unknown"))
    assert st.policies == {} and st.connected == {}


@pytest.mark.parametrize("text, needle", [
    ("", "did not print JSON"),
    ("Command failed: Not found\n", "did not print JSON"),
    ("[1, 2]", "JSON list"),
    ('"interfaces"', "JSON str"),
    ('{"connected": {}, "policies": {}}', "no 'interfaces'"),
    ('{"interfaces": []}', "'interfaces' as a list"),
    ('{"interfaces": {"wanA": "online"}}', "interface 'wanA' as a str"),
    ("ERROR: Command failed: Not found\n", "failed: Command failed: Not found"),
])
def test_malformed_is_one_line_command_error(text: str, needle: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_mwan3_status(text, "mother")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("mother: `ubus call mwan3 status` ")
    assert needle in msg


def test_interfaces_text_without_header_is_an_error() -> None:
    with pytest.raises(CommandError, match="^r1: `mwan3 interfaces` printed no 'Interface status:' header$"):
        parse_mwan3_interfaces_text("sh: mwan3: not found\n", "r1")
