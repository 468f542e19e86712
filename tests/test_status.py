"""build_status, exit codes, the JSON schema and the rich table, on the recorded mwan3 outputs."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from mwanctl.errors import CommandError
from mwanctl.status import (
    CRITICAL,
    OK,
    SCHEMA,
    UNKNOWN,
    WARNING,
    Expectation,
    ExpectedMember,
    ExpectedUplink,
    SiteStatus,
    TrackTimes,
    build_status,
    exit_code,
    format_bytes,
    format_duration,
    render_table,
    status_or_unknown,
    summary_line,
    to_json,
)

HERE = Path(__file__).parent
VECTORS = HERE / "vectors" / "mwan3"
DOC = HERE.parent / "docs" / "status-json.md"

KEY1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="   # up1's public key (peer on mother's wanA)
KEY2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="   # up2's public key (peer on mother's wanB)
OTHER = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
NOW = 1763770252  # router epoch the tests compare handshakes against

LTE = ExpectedUplink("lte", "wanA", "tunnel", 1, 3, "wanA", KEY1, None, "up1")
DSL = ExpectedUplink("dsl", "wanB", "tunnel", 1, 2, "wanB", KEY2, None, "up2")
BALANCED = {"balanced": (ExpectedMember("wanA", 1, 3), ExpectedMember("wanB", 1, 2))}
EXP = Expectation("mother", (LTE, DSL), BALANCED)


def vector(name: str) -> str:
    return (VECTORS / name).read_text()


def peer_line(iface: str, key: str, endpoint: str, handshake: int, rx: int, tx: int) -> str:
    head = f"{iface}\tPRIVATE\t(pub)\t51820\toff\n"
    return head + f"{iface}\t{key}\t(none)\t{endpoint}\t0.0.0.0/0\t{handshake}\t{rx}\t{tx}\t25\n"


def wg(hs_a: int = NOW - 52, hs_b: int = NOW - 12, key_a: str = KEY1) -> str:
    return (peer_line("wanA", key_a, "203.0.113.7:40123", hs_a, 183012, 99120)
            + peer_line("wanB", KEY2, "198.51.100.20:51820", hs_b, 2200311, 1093002))


def probes(mwan3: str = "mwan3-status-both-online.json", dump: str | None = None, **extra: str) -> dict[str, str]:
    return {"mwan3_status": vector(mwan3), "wg_dump": wg() if dump is None else dump,
            "uptime": "5123.40 9000.10\n", "epoch": f"{NOW}\n", **extra}


def mutate(mwan3: str, **ifaces: dict[str, object]) -> str:
    data = json.loads(vector(mwan3))
    for name, fields in ifaces.items():
        data["interfaces"][name].update(fields)
    return json.dumps(data)


def build(mwan3: str = "mwan3-status-both-online.json", exp: Expectation = EXP, **kw: object) -> SiteStatus:
    p = probes(mwan3, kw.pop("dump", None))  # type: ignore[arg-type]
    if "mwan3_text" in kw:
        p["mwan3_status"] = kw.pop("mwan3_text")  # type: ignore[assignment]
    return build_status(exp, p, **kw)  # type: ignore[arg-type]


def text_of(site: SiteStatus, **console_kw: object) -> str:
    console = Console(width=170, record=True, file=io.StringIO(), **console_kw)  # type: ignore[arg-type]
    render_table(site, console)
    return console.export_text()


def problems(site: SiteStatus) -> list[tuple[str, str, str]]:
    return [(p.severity, p.kind, p.message) for p in site.problems]


# --------------------------------------------------------------------------- cases


def test_all_online() -> None:
    site = build()
    assert [u.state for u in site.uplinks] == ["online", "online"]
    assert [u.shares for u in site.uplinks] == [{"balanced": 0.6}, {"balanced": 0.4}]  # not 100/0
    assert site.problems == () and exit_code(site) == 0
    assert summary_line(site) == "2/2 uplinks online"
    lte = site.uplinks[0]
    assert lte.since == 4 and lte.wg is not None and lte.wg.handshake_age == 52
    assert [(t.ip, t.status, t.latency_ms, t.loss_pct) for t in lte.targets] == [
        ("198.51.100.1", "up", None, None), ("198.51.100.2", "skipped", None, None)]
    assert site.router_uptime == 5123.4


def test_degraded_one_offline() -> None:
    site = build("mwan3-status-wanA-offline.json")
    assert [(u.state, u.since) for u in site.uplinks] == [("offline", 18), ("online", 75)]
    assert [u.shares["balanced"] for u in site.uplinks] == [0.0, 1.0]
    assert problems(site) == [("error", "offline", "lte: offline for 18s")]
    assert exit_code(site) == 1
    assert summary_line(site) == "1/2 uplinks online — lte offline for 18s"


def test_disabled_uplink() -> None:
    site = build("mwan3-status-wanB-disabled.json")
    assert [u.state for u in site.uplinks] == ["online", "disabled"]
    assert [u.shares["balanced"] for u in site.uplinks] == [1.0, 0.0]
    assert exit_code(site) == 1 and summary_line(site) == "1/2 uplinks online — dsl disabled"


def test_all_down() -> None:
    down = {"status": "offline", "online": 0, "offline": 30}
    site = build(mwan3_text=mutate("mwan3-status-wanA-offline.json", wanB=down))
    assert [u.state for u in site.uplinks] == ["offline", "offline"]
    assert site.policies[0].last_resort
    assert exit_code(site) == 2
    assert summary_line(site) == "0/2 uplinks online — lte offline for 18s, dsl offline for 30s"
    # the router still listing wanB in the policy is a (transient-looking) mismatch: a warning
    assert ("warning", "mismatch", "policy balanced: router uses wanB, topology expects no member") in problems(site)


# balanced, 2 targets: a failed round is 2 lost 2 s probes, a good one about nothing
BAL = TrackTimes(down=3, up=3, failure_interval=2, recovery_interval=2, failed_round=4, good_round=0)
TRACKED = Expectation("mother", (replace(LTE, track=BAL), replace(DSL, track=BAL)), BALANCED)


def test_connecting_and_disconnecting() -> None:
    # mwan3 still reports `online` 99 (since it went online) while dsl disconnects, and `offline` 18
    # while lte connects: neither is how long the current state has lasted (issue 9).
    text = mutate("mwan3-status-wanA-offline.json",
                  wanA={"status": "connecting", "score": 2, "age": 1},          # 2 of 3 good rounds
                  wanB={"status": "disconnecting", "score": 4, "age": 1, "online": 99})  # 2 of 3 failed
    site = build(mwan3_text=text, exp=TRACKED)
    # connecting began at the end of good round 1: age + 1 × (recovery_interval + good round);
    # disconnecting at the end of failed round 1: age + 1 × (failure_interval + failed round)
    assert [(u.state, u.since, u.since_estimated, u.rounds) for u in site.uplinks] == [
        ("connecting", 3, True, (2, 3)), ("disconnecting", 7, True, (2, 3))]
    assert summary_line(site) == ("0/2 uplinks online — lte connecting for ~3s (2 of 3 good rounds), "
                                  "dsl disconnecting for ~7s (2 of 3 failed rounds)")
    assert "1m39s" not in json.dumps(to_json(site)) + text_of(site, no_color=True)
    assert exit_code(site) == 1          # dsl still carries the traffic: degraded, not critical
    # a disconnecting member is still in the policy; a connecting one not yet
    assert [u.shares["balanced"] for u in site.uplinks] == [0.0, 1.0]
    # without the tracker settings (or with a score that does not fit them) nothing is guessed
    assert [u.since for u in build(mwan3_text=text).uplinks] == [None, None]
    odd = mutate("mwan3-status-wanA-offline.json", wanB={"status": "disconnecting", "score": 11, "online": 99})
    assert build(mwan3_text=odd, exp=TRACKED).uplinks[1].since is None


def test_failover_tiers_use_lowest_metric_only() -> None:
    backup = ExpectedUplink("sat", "wanB", "tunnel", 2, 1, "wanB", KEY2, None, "up2")
    exp = Expectation("mother", (LTE, backup),
                      {"failover": (ExpectedMember("wanA", 1, 3), ExpectedMember("wanB", 2, 1))})
    assert [u.shares for u in build(exp=exp).uplinks] == [{"failover": 1.0}, {"failover": 0.0}]
    site = build("mwan3-status-wanA-offline.json", exp=exp)
    assert [u.shares for u in site.uplinks] == [{"failover": 0.0}, {"failover": 1.0}]


def test_no_tracking_counts_as_online_when_up() -> None:
    untracked = {"status": "unknown", "tracking": "disabled", "running": False, "track_ip": [], "uptime": 4000}
    site = build(mwan3_text=mutate("mwan3-status-both-online.json", wanB=untracked))
    dsl = site.uplinks[1]
    assert (dsl.state, dsl.since, dsl.ok, dsl.targets) == ("not tracking", 4000, True, ())
    assert exit_code(site) == 0 and dsl.shares == {"balanced": 0.4}
    site = build(mwan3_text=mutate("mwan3-status-both-online.json", wanB={**untracked, "up": False}))
    assert site.uplinks[1].ok is False and exit_code(site) == 1


def test_measured_latency_is_kept() -> None:
    quality = {"track_ip": [{"ip": "198.51.100.1", "status": "up", "latency": 23, "packetloss": 0}]}
    site = build(mwan3_text=mutate("mwan3-status-both-online.json", wanA=quality))
    t = site.uplinks[0].targets[0]
    assert (t.latency_ms, t.loss_pct) == (23, 0)
    assert "198.51.100.1 up 23ms 0%" in text_of(site, no_color=True)


def test_stale_handshake_while_online() -> None:
    site = build(dump=wg(hs_a=NOW - 181, hs_b=0))
    assert problems(site) == [
        ("error", "stale-handshake", "lte: mwan3 says online but the last handshake was 3m01s ago"),
        ("error", "stale-handshake", "dsl: mwan3 says online but the tunnel never had a handshake"),
    ]
    assert exit_code(site) == 1
    assert build(dump=wg(hs_a=NOW - 180)).problems == ()  # the limit itself is not stale
    limit = Expectation("mother", (LTE, DSL), BALANCED, stale_handshake_after=10)
    assert [p.uplink for p in build(exp=limit).problems] == ["lte", "dsl"]  # 52s and 12s


def test_stale_handshake_not_reported_for_offline_uplink() -> None:
    site = build("mwan3-status-wanA-offline.json", dump=wg(hs_a=0))
    assert [p.kind for p in site.problems] == ["offline"]


def test_mismatch_uplink_missing_from_mwan3() -> None:
    sat = ExpectedUplink("sat", "wanC", "tunnel", 2, 1, "wanC", OTHER, None, "up3")
    site = build(exp=Expectation("mother", (LTE, DSL, sat), BALANCED))
    row = site.uplinks[2]
    assert (row.state, row.since, row.shares) == ("missing", None, {})
    assert problems(site) == [
        ("error", "mismatch", "sat: mwan3 does not list interface wanC"),
        ("error", "mismatch", "sat: WireGuard interface wanC is missing from `wg show`"),
    ]
    assert exit_code(site) == 1 and summary_line(site) == "2/3 uplinks online — sat missing"


def test_mismatch_peer_key() -> None:
    site = build(dump=wg(key_a=OTHER))
    assert problems(site) == [("error", "mismatch", "lte: wanA has HIgo9xNz..., topology expects peer xTIBA5rb...")]
    assert site.uplinks[0].wg is not None and site.uplinks[0].wg.peer_public_key == OTHER  # shown anyway
    assert exit_code(site) == 1


def test_mismatch_policy() -> None:
    only_a = Expectation("mother", (LTE, DSL), {"balanced": (ExpectedMember("wanA", 1, 3),)})
    assert problems(build(exp=only_a)) == [
        ("error", "mismatch", "policy balanced: router uses wanB, which the topology does not put in it")]
    other = Expectation("mother", (LTE, DSL), {**BALANCED, "lte_only": (ExpectedMember("wanA", 1, 1),)})
    assert problems(build(exp=other)) == [("error", "mismatch", "policy lte_only is not on the router")]
    tiers = Expectation("mother", (LTE, DSL), {"balanced": (ExpectedMember("wanA", 1, 3),
                                                            ExpectedMember("wanB", 2, 2))})
    assert problems(build(exp=tiers)) == [
        ("warning", "mismatch", "policy balanced: router uses wanA, wanB, topology expects wanA")]


def test_extra_enabled_interface_on_router_is_a_warning() -> None:
    site = build(exp=Expectation("mother", (LTE,), {"balanced": (ExpectedMember("wanA", 1, 3),
                                                                  ExpectedMember("wanB", 1, 2))}))
    assert site.problems == ()  # wanB is a policy member of the topology: known
    site = build(exp=Expectation("mother", (LTE,), {}))
    assert problems(site) == [
        ("warning", "mismatch", "mwan3 interface wanB is enabled on the router but not in the topology")]
    assert exit_code(site) == 0


def test_wan_kind_has_no_wireguard() -> None:
    wan = ExpectedUplink("fibre", "wanB", "wan", 1, 2, None, None, None, None)
    site = build(exp=Expectation("mother", (LTE, wan), BALANCED), dump="")
    assert site.uplinks[1].wg is None
    assert [p.message for p in site.problems] == ["lte: WireGuard interface wanA is missing from `wg show`"]


def test_wg_probe_failed_is_a_problem_not_a_crash() -> None:
    site = build(dump="ERROR: sh: wg: not found")
    assert [u.wg for u in site.uplinks] == [None, None]
    assert problems(site) == [("error", "probe-failed", "mother: `wg show all dump` failed: sh: wg: not found")]


def test_mwan3_probe_failed_or_nonsense_raises() -> None:
    with pytest.raises(CommandError, match=r"^mother: `ubus call mwan3 status` failed: Command failed: Not found$"):
        build(mwan3_text="ERROR: Command failed: Not found")
    with pytest.raises(CommandError, match="did not print JSON"):
        build(mwan3_text="<html>")
    with pytest.raises(CommandError, match="was not run"):
        build_status(EXP, {"wg_dump": ""})


def test_handshake_clock() -> None:
    p = probes()
    del p["epoch"]
    no_clock = build_status(EXP, p)
    assert no_clock.uplinks[0].wg is not None and no_clock.uplinks[0].wg.handshake_age is None
    assert no_clock.problems == ()  # an unknown age is not called stale
    ours = build_status(EXP, p, now=NOW + 100)
    assert ours.uplinks[0].wg is not None and ours.uplinks[0].wg.handshake_age == 152


def test_uplink_routers_own_wan() -> None:
    up = {"up1": {"wan_status": json.dumps({"up": True, "ipv4-address": [{"address": "100.64.3.9", "mask": 10}]})},
          "up2": {"wan_status": json.dumps({"up": False, "ipv4-address": []})}}
    site = build(uplink_probes=up)
    assert [(u.wan.up, u.wan.address) for u in site.uplinks if u.wan] == [(True, "100.64.3.9"), (False, None)]
    assert problems(site) == [("error", "wan-down", "dsl: own WAN of up2 is down")]
    up["up2"] = {"wan_status": "ERROR: connection refused"}
    site = build(uplink_probes=up)
    assert site.uplinks[1].wan is not None and site.uplinks[1].wan.error is not None
    assert [(p.severity, p.kind) for p in site.problems] == [("warning", "probe-failed")]
    assert exit_code(site) == 0
    assert build().uplinks[0].wan is None  # without --uplinks


def test_unreachable() -> None:
    site = SiteStatus.unreachable("mother", "connection timed out")
    assert exit_code(site) == 3
    assert summary_line(site) == "mother unreachable: connection timed out"
    doc = to_json(site)
    assert (doc["reachable"], doc["error"], doc["uplinks"], doc["exit_code"]) == (
        False, "connection timed out", [], 3)
    assert text_of(site, no_color=True).strip().splitlines() == [
        "error: mother unreachable: connection timed out", "mother unreachable: connection timed out"]


def test_no_uplinks_at_all_is_exit_2() -> None:
    assert exit_code(build(exp=Expectation("mother", (), BALANCED))) == 2


# --------------------------------------------------------------------------- JSON schema


def test_json_schema_keys_are_stable() -> None:
    doc = to_json(build(uplink_probes={"up1": {"wan_status": '{"up": true}'}}))
    json.dumps(doc)  # serialisable as is
    assert doc["schema"] == SCHEMA == "mwanctl.status/2"
    assert list(doc) == ["schema", "router", "reachable", "error", "router_uptime", "exit_code", "summary",
                         "uplinks", "policies", "problems"]
    assert list(doc["summary"]) == ["online", "total", "families", "text"]
    assert doc["summary"]["families"] == {"ipv4": {"online": 2, "total": 2}}
    up = doc["uplinks"][0]
    assert list(up) == ["name", "label", "iface", "kind", "family", "router", "tier", "weight", "state", "since",
                        "since_estimated", "rounds", "tracking", "up", "targets", "wireguard", "shares", "wan",
                        "tracker"]
    assert list(up["targets"][0]) == ["ip", "status", "latency_ms", "loss_pct"]
    assert list(up["wireguard"]) == ["iface", "peer_public_key", "endpoint", "latest_handshake", "handshake_age",
                                     "rx_bytes", "tx_bytes"]
    assert list(up["wan"]) == ["up", "address", "error"]
    assert list(doc["policies"][0]) == ["name", "last_resort", "members"]
    assert list(doc["policies"][0]["members"][0]) == ["iface", "metric", "weight", "share"]
    assert doc["policies"][0]["members"][1]["share"] == 0.4
    problem = to_json(build("mwan3-status-wanA-offline.json"))["problems"][0]
    assert list(problem) == ["severity", "kind", "uplink", "message"]


def test_json_docstring_and_doc_name_every_key() -> None:
    doc_text = DOC.read_text()
    documented = to_json.__doc__ or ""
    full = to_json(build(uplink_probes={"up1": {"wan_status": '{"up": true}'}}))
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in ("balanced",):  # policy names are data, not schema
                    keys.add(k)
                walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(full)
    walk(to_json(build("mwan3-status-wanA-offline.json")))
    assert keys  # the walk found something
    assert not [k for k in keys if f"`{k}`" not in doc_text], "key missing from docs/status-json.md"
    assert not [k for k in keys if k not in documented], "key missing from to_json's docstring"


def test_doc_example_is_real_output() -> None:
    block = re.search(r"## Example.*?```json\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    site = build("mwan3-status-wanA-offline.json", dump=wg(hs_a=NOW - 252))  # offline: not "stale"
    assert json.loads(block.group(1)) == to_json(site)


# --------------------------------------------------------------------------- table


def test_table_text_degraded() -> None:
    out = text_of(build("mwan3-status-wanA-offline.json", dump=wg(hs_a=NOW - 252)), no_color=True)
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert re.search(r"│ lte +│ offline +│ +18s │ +1 │ +3 │ +0% │ 198\.51\.100\.1 down +│ 4m12s +│ "
                     r"178\.7 KiB / 96\.8 KiB +│ 203\.0\.113\.7:40123 +│", rows[0])
    assert re.search(r"│ dsl +│ online +│ +1m15s │ +1 │ +2 │ +100% │ 198\.51\.100\.1 up +│ 12s +│", rows[2])
    assert out.splitlines()[-2:] == ["error: lte: offline for 18s", "1/2 uplinks online — lte offline for 18s"]
    assert "Own WAN" not in out


def test_table_shares_and_never() -> None:
    out = text_of(build(dump=wg(hs_b=0)), no_color=True)
    assert re.search(r"│ lte .*│ +60% │.*│ 52s", out)
    assert re.search(r"│ dsl .*│ +40% │.*│ never", out)
    assert "error: dsl: mwan3 says online but the tunnel never had a handshake" in out


def test_table_without_terminal_has_no_escape_codes_and_colour_with_one() -> None:
    site = build("mwan3-status-wanA-offline.json")
    plain = text_of(site)  # a StringIO is not a terminal
    assert "\x1b[" not in plain and "offline" in plain
    console = Console(width=170, file=io.StringIO(), force_terminal=True, color_system="standard")
    render_table(site, console)
    coloured = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1;31moffline" in coloured
    console = Console(width=170, file=io.StringIO(), force_terminal=True, color_system="standard", no_color=True)
    render_table(site, console)
    assert "\x1b[31m" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_table_ascii_console_uses_plain_dash() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")  # e.g. LANG=C: an em dash would not encode
    console = Console(width=170, file=stream, record=True)
    render_table(build("mwan3-status-wanA-offline.json"), console)
    stream.flush()
    assert raw.getvalue().decode("ascii").splitlines()[-1] == "1/2 uplinks online - lte offline for 18s"


def test_table_own_wan_column() -> None:
    out = text_of(build(uplink_probes={"up1": {"wan_status": json.dumps(
        {"up": True, "ipv4-address": [{"address": "100.64.3.9"}]})}}), no_color=True)
    assert "Own WAN" in out and "up 100.64.3.9" in out and "not queried" not in out.split("\n")[0]


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize("seconds, text", [
    (None, "never"), (0, "0s"), (12, "12s"), (59, "59s"), (60, "1m00s"), (252, "4m12s"), (3599, "59m59s"),
    (3600, "1h00m"), (3 * 3600 + 4 * 60 + 5, "3h04m"), (2 * 86400 + 3 * 3600, "2d03h"), (-5, "0s"),
])
def test_format_duration(seconds: int | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("n, text", [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                     (183012, "178.7 KiB"), (5 * 1024 ** 3, "5.0 GiB")])
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


# --------------------------------------------------------------------------- other plugin shapes


def fixture_status(case: str, exp: Expectation = EXP) -> SiteStatus:
    text = (HERE / "facts" / "mwan3" / f"{case}.json").read_text()
    return build_status(exp, {"mwan3_status": text, "wg_dump": wg(), "epoch": str(NOW)})


def test_shell_2305_notracking_and_raw_enabled() -> None:
    fibre = ExpectedUplink("fibre", "wan", "wan", 2, 1, None, None, None, None)
    site = fixture_status("shell-23.05", Expectation("mother", (LTE, DSL, fibre), BALANCED))
    assert [(u.state, u.tracking, u.since) for u in site.uplinks] == [
        ("online", "unknown", 300), ("not tracking", "unknown", 302), ("disabled", "unknown", None)]
    assert [u.shares for u in site.uplinks] == [{"balanced": 0.6}, {"balanced": 0.4}, {}]
    assert [(t.latency_ms, t.loss_pct) for t in site.uplinks[0].targets] == [(18, 0), (999999, 100)]
    assert summary_line(site) == "2/3 uplinks online — fibre disabled"


def test_shell_2410_connecting_and_paused() -> None:
    lte_only = ExpectedUplink("sat", "lte", "tunnel", 3, 1, None, None, None, "up3")
    site = fixture_status("shell-24.10", Expectation("mother", (LTE, replace(DSL, track=BAL), lte_only),
                                                       BALANCED))
    # `offline` 9 is since it went offline; connecting (score 2) began one good round + age 2 ago
    assert [(u.state, u.since) for u in site.uplinks] == [("online", 812), ("connecting", 4), ("unknown", None)]
    assert [u.shares["balanced"] for u in site.uplinks[:2]] == [1.0, 0.0]
    assert exit_code(site) == 1


def test_ipv6_members_balance_per_family() -> None:
    members = {"balanced": BALANCED["balanced"] + (ExpectedMember("wanA6", 1, 3, "ipv6"),
                                                   ExpectedMember("wanB6", 1, 2, "ipv6"))}
    v6 = ExpectedUplink("lte6", "wanA6", "wan", 1, 3, None, None, None, None)
    site = fixture_status("ipv6-policies", Expectation("mother", (LTE, DSL, v6), members))
    assert [u.shares["balanced"] for u in site.uplinks] == [0.6, 0.4, 1.0]
    assert [p.kind for p in site.problems] == []  # router lists wanA, wanB (ipv4) and wanA6 (ipv6)


# --------------------------------------------------------------------------- exit codes, one per code


def test_exit_code_0_ok() -> None:
    assert exit_code(build()) == OK == 0


def test_exit_code_1_warning_degraded() -> None:
    assert exit_code(build("mwan3-status-wanA-offline.json")) == WARNING == 1


def test_exit_code_2_critical_no_uplink_online() -> None:
    text = mutate("mwan3-status-wanA-offline.json", wanB={"status": "offline", "online": 0, "offline": 30})
    assert exit_code(build(mwan3_text=text)) == CRITICAL == 2


def test_exit_code_3_unknown_when_the_mwan3_probe_fails_and_json_still_says_why() -> None:
    p = probes()
    p["mwan3_status"] = "ERROR: Command failed: Not found\n"
    site = status_or_unknown(EXP, p, now=NOW)
    assert exit_code(site) == UNKNOWN == 3
    doc = to_json(site)
    assert doc["exit_code"] == 3 and doc["reachable"] is True and "Not found" in doc["error"]
    assert doc["problems"][0]["kind"] == "probe-failed" and doc["uplinks"] == []
    assert summary_line(site).startswith("status unknown: ")
    nonsense = status_or_unknown(EXP, {**p, "mwan3_status": "<html>"})
    assert exit_code(nonsense) == 3 and nonsense.error
    assert exit_code(SiteStatus.unreachable("mother", "timed out")) == 3


# --------------------------------------------------------------------------- IPv6 aliases


def _dual_stack() -> tuple[Expectation, dict[str, object]]:
    from mwanctl.expect import expectation
    from mwanctl.topology import load_topology
    topo = load_topology(str(HERE / "topologies" / "dual-stack.yaml"))
    exp = expectation(topo, {})
    both = json.loads(vector("mwan3-status-both-online.json"))
    online = both["interfaces"]["wanB"]
    ifaces = {e.iface: dict(online) for e in exp.uplinks}
    return exp, {"interfaces": ifaces, "connected": both["connected"], "policies": {}}


def test_offline_ipv6_alias_is_counted_and_reported() -> None:
    """Issue 10 item 5: with mw_dsl6 offline, status printed "2/2 uplinks online", exit 0, no problem."""
    exp, data = _dual_stack()
    assert [(e.iface, e.family, e.label) for e in exp.uplinks] == [
        ("wan", "ipv4", "wan"), ("wan6", "ipv6", "wan6"), ("mw_dsl", "ipv4", "dsl"),
        ("mw_dsl6", "ipv6", "dsl IPv6"), ("mw_lte", "ipv4", "lte"), ("mw_lte6", "ipv6", "lte IPv6")]
    data["interfaces"]["mw_dsl6"].update(status="offline", online=0, offline=40)  # type: ignore[index]
    site = build_status(exp, {"mwan3_status": json.dumps(data)})
    assert summary_line(site) == "IPv4 3/3, IPv6 2/3 uplinks online — dsl IPv6 offline for 40s"
    assert exit_code(site) == 1
    assert [(p.kind, p.uplink, p.message) for p in site.problems] == [("offline", "dsl", "dsl IPv6: offline for 40s")]
    doc = to_json(site)
    assert doc["summary"]["families"] == {"ipv4": {"online": 3, "total": 3}, "ipv6": {"online": 2, "total": 3}}
    row = next(u for u in doc["uplinks"] if u["iface"] == "mw_dsl6")
    assert (row["name"], row["label"], row["family"], row["wireguard"]) == ("dsl", "dsl IPv6", "ipv6", None)
    assert "dsl IPv6" in text_of(site, no_color=True)


def test_no_ipv6_uplink_online_is_critical_even_with_ipv4_fine() -> None:
    exp, data = _dual_stack()
    for name in ("wan6", "mw_dsl6", "mw_lte6"):
        data["interfaces"][name].update(status="offline", online=0, offline=5)  # type: ignore[index]
    site = build_status(exp, {"mwan3_status": json.dumps(data)})
    assert exit_code(site) == 2
    assert summary_line(site).startswith("IPv4 3/3, IPv6 0/3 uplinks online — ")


def test_disconnecting_alias_is_dated_with_its_own_ipv6_settings() -> None:
    exp, data = _dual_stack()
    alias = next(e for e in exp.uplinks if e.iface == "mw_lte6")
    assert alias.track == TrackTimes(3, 3, 2, 2, failed_round=4.0, good_round=0)   # balanced, 2 IPv6 targets
    data["interfaces"]["mw_lte6"].update(status="disconnecting", score=5, age=2, online=99)  # type: ignore[index]
    row = next(u for u in build_status(exp, {"mwan3_status": json.dumps(data)}).uplinks if u.iface == "mw_lte6")
    assert (row.since, row.since_estimated, row.rounds) == (2, True, (1, 3))
