"""Parser, writer, planner and batch generator against libuci's recorded behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwanctl.errors import UciParseError
from mwanctl.shellquote import sh_quote
from mwanctl.uci import (
    Code,
    Op,
    UciOpError,
    UciPackage,
    UciSection,
    apply_ops,
    batch_script,
    diff,
    export,
    file_text,
    get_text,
    parse,
    show,
    uci_quote,
    valid_name,
    valid_type,
    valid_value,
)
from mwanctl.uci.diff import run_batch
from mwanctl.uci.engine import Store, anon_id
from mwanctl.uci.parse import parse_store

VEC = Path(__file__).resolve().parent / "vectors" / "uci"


def vector(name: str) -> dict:
    return json.loads(next(VEC.glob(f"{name}-*.json")).read_text())


def step(rec: dict, argv: list[str]) -> dict:
    return next(s for s in rec["steps"] if s["argv"] == argv)


# -- parse / show / export against the recordings ---------------------------------------------

@pytest.mark.parametrize("num,pkg", [("01", "network"), ("02", "firewall"), ("03", "mwan3"),
                                     ("04", "network"), ("05", "quoting"), ("06", "merge")])
def test_show_and_export_match_recording(num: str, pkg: str) -> None:
    rec = vector(num)
    p = parse(rec["files"][pkg], pkg)
    assert show(p) == step(rec, ["show", pkg])["stdout"]
    if any(s["argv"] == ["-X", "show", pkg] for s in rec["steps"]):
        assert show(p, anon_ids=True) == step(rec, ["-X", "show", pkg])["stdout"]
    if any(s["argv"] == ["export", pkg] for s in rec["steps"]):
        assert export(p) == step(rec, ["export", pkg])["stdout"]


def test_anonymous_ids_follow_counter_and_type_hash() -> None:
    p = parse(vector("02")["files"]["firewall"], "firewall")
    assert [s.anon_id for s in p] == ["cfg01e63d", "cfg02dc81", "cfg03dc81", "cfg04ad58", "cfg0592bd"]
    assert anon_id(3, "rule") == "cfg0392bd"
    assert all(s.name is None for s in p)


@pytest.mark.parametrize("num,pkg", [("06", "conflict"), ("11", "broken1"), ("11", "broken2"),
                                     ("11", "broken3"), ("11", "broken4")])
def test_parse_errors_report_reason_line_and_byte_like_uci(num: str, pkg: str) -> None:
    rec = vector(num)
    with pytest.raises(UciParseError) as info:
        parse(rec["files"][pkg], pkg)
    assert "uci: " + str(info.value) + "\n" == step(rec, ["show", pkg])["stderr"]
    assert info.value.package == pkg


def test_get_and_show_paths_match_recording() -> None:
    rec = vector("02")
    p = parse(rec["files"]["firewall"], "firewall")
    assert get_text(p, "@zone[1].name") == "wan\n"
    assert get_text(p, "@zone[-1].network") == step(rec, ["get", "firewall.@zone[-1].network"])["stdout"]
    assert show(p, path="@zone[0]") == step(rec, ["show", "firewall.@zone[0]"])["stdout"]
    assert show(p, delimiter=",", path="@zone[1].network") == "firewall.cfg03dc81.network='wan','wan6'\n"
    with pytest.raises(UciOpError) as info:
        get_text(p, "@zone[5].name")
    assert info.value.code is Code.NOTFOUND


def test_get_quotes_list_elements_with_whitespace_only() -> None:
    p = parse("config a 'b'\n\tlist l '8.8.8.8'\n\tlist l 'a b'\n\toption o 'x y'\n", "t")
    assert get_text(p, "b.l") == "8.8.8.8 'a b'\n"
    assert get_text(p, "b.o") == "x y\n"
    assert get_text(p, "b") == "a\n"


def test_grammar_details() -> None:
    text = (
        "c t 'a'\n"
        "\to one 'x'; o two y\n"          # ';' after a quote starts a new statement
        "\to three z; o four w\n"         # unquoted 'z;' swallows the rest of the line (libuci)
        "\to cont ab\\\ncd\n"             # backslash-newline continues the token
        "\to dq \"a\\\"b\\\\c\"\n"
        "\to multi 'l1\nl2'\n"
        "\to empty ''\n"
        "\tl lst ''\n"
        "\to hash a#b\n"
        "\to conv 'p'\n"
        "\tl conv 'q'\n"
    )
    s = parse(text, "t").get("a")
    assert s is not None
    assert s.options == {"one": "x", "two": "y", "three": "z", "cont": "abcd", "dq": 'a"b\\c',
                         "multi": "l1\nl2", "lst": ("",), "hash": "a", "conv": ("p", "q")}


def test_same_name_merges_and_empty_value_never_deletes_in_files() -> None:
    p = parse("config i 'a'\n\toption x '1'\nconfig i 'a'\n\toption x ''\n\toption y '2'\n", "m")
    assert [(s.name, s.options) for s in p] == [("a", {"x": "1", "y": "2"})]


def test_non_strict_skips_bad_lines() -> None:
    text = "config a 'b'\n\toption x 1 2\n\toption y 3\n"
    with pytest.raises(UciParseError):
        parse(text, "p")
    assert parse(text, "p", strict=False).sections[0].options == {"x": "1", "y": "3"}


def test_file_text_matches_commit_output() -> None:
    rec = vector("07")
    export_after = step(rec, ["export", "mwan3"])["stdout"]
    p = parse(export_after, "mwan3")
    assert file_text(p) == rec["files_after"]["mwan3"]
    assert export(p) == export_after


# -- quoting --------------------------------------------------------------------------------------

def test_quote_functions() -> None:
    assert uci_quote("it's") == "'it'\\''s'"
    assert sh_quote("plain-word_1.2/3") == "plain-word_1.2/3"
    assert sh_quote("a b'c") == "'a b'\\''c'"
    assert sh_quote("") == "''"
    assert valid_name("wan_1") and not valid_name("wan-1") and not valid_name("")
    assert valid_type("my-type") and not valid_type("a b")
    assert valid_value("tab\tand\nnewline") and not valid_value("bell\x07")


def test_batch_quoting_matches_recorded_batch() -> None:
    recorded = vector("08")["steps"][0]["stdin"].splitlines()
    ops = [Op("set", "network", "lan", "d1", "it's got 'single' quotes"),
           Op("set", "network", "lan", "d3", "a;b|c&d`e`$(f)"),
           Op("set", "network", "lan", "d4", "  spaces  ")]
    lines = batch_script(ops).splitlines()
    assert lines == [recorded[0], recorded[2], recorded[3]]


def test_batch_script_shapes() -> None:
    ops = [Op("add_section", "mwan3", "wanb", None, "interface"),
           Op("set_list", "mwan3", "wanb", "track_ip", ("1.1.1.1", "9.9.9.9")),
           Op("delete_option", "mwan3", "wan", "reliability"),
           Op("delete_section", "mwan3", "old"),
           Op("reorder", "mwan3", "wanb", None, "1")]
    assert batch_script(ops) == (
        "set mwan3.wanb=interface\n"
        "set mwan3.wanb.track_ip='1.1.1.1'\n"
        "delete mwan3.wanb.track_ip\n"
        "add_list mwan3.wanb.track_ip='1.1.1.1'\n"
        "add_list mwan3.wanb.track_ip='9.9.9.9'\n"
        "delete mwan3.wan.reliability\n"
        "delete mwan3.old\n"
        "reorder mwan3.wanb=1\n")


# -- batch execution semantics ---------------------------------------------------------------------

def test_list_rebuild_prints_nothing_through_the_standin(tmp_path) -> None:
    """A batch creating a list on a new section must leave stderr empty: the SSH apply treats
    any batch output as a failed line."""
    import subprocess
    conf, save = tmp_path / "c", tmp_path / "s"
    conf.mkdir()
    save.mkdir()
    (conf / "mwan3").write_text("")
    ops = [Op("add_section", "mwan3", "wanb", None, "interface"),
           Op("set_list", "mwan3", "wanb", "track_ip", ("1.1.1.1", "9.9.9.9"))]
    uci = Path(__file__).parent / "standins" / "uci"
    r = subprocess.run([str(uci), "-c", str(conf), "-t", str(save), "batch"], input=batch_script(ops),
                       capture_output=True, text=True, env={"UCI_STANDIN_SAVEDIR": str(save), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    r = subprocess.run([str(uci), "-c", str(conf), "-t", str(save), "export", "mwan3"], capture_output=True,
                       text=True, env={"UCI_STANDIN_SAVEDIR": str(save), "PATH": "/usr/bin:/bin"})
    assert "\tlist track_ip '1.1.1.1'\n\tlist track_ip '9.9.9.9'\n" in r.stdout


def test_failing_batch_lines_are_skipped_not_fatal() -> None:
    rec = vector("09")
    store = parse_store(rec["files"]["network"], "network")
    errors = run_batch(store, rec["steps"][0]["stdin"])
    assert [getattr(e, "code", None) for e in errors] == [Code.INVAL, Code.INVAL, Code.PARSE]
    changes = "".join(d.changes_line("network") for d in store.deltas)
    assert changes == step(rec, ["changes", "network"])["stdout"]


def test_in_memory_batch_matches_recorded_edit_with_rename_and_reorder() -> None:
    rec = vector("07")
    store = parse_store(rec["files"]["mwan3"], "mwan3")
    lines = [ln for ln in rec["steps"][0]["stdin"].splitlines(True) if " mwan3." in ln]
    assert run_batch(store, "".join(lines)) == []
    assert export(store.pkg) == step(rec, ["export", "mwan3"])["stdout"]


# -- diff / apply_ops --------------------------------------------------------------------------

MWAN3 = vector("03")["files"]["mwan3"]


def owned(s: UciSection) -> bool:
    return s.name is not None and s.name.startswith(("wan", "default_rule"))


def test_diff_of_package_against_itself_is_empty() -> None:
    p = parse(MWAN3, "mwan3")
    desired = [s for s in p if owned(s)]
    assert diff(p, desired, "mwan3", owned) == []
    assert diff(p, desired, "mwan3", owned, keep_order=True) == []


def test_diff_adds_updates_deletes_and_leaves_foreign_sections() -> None:
    text = MWAN3 + "\nconfig rule 'mine_old'\n\toption x '1'\n"
    p = parse(text, "mwan3")
    desired = [
        UciSection("interface", "wan", {"enabled": "1", "track_ip": ("1.1.1.1",), "family": "ipv4"}),
        UciSection("member", "wan_m1_w3", {"interface": "wan", "metric": "1", "weight": "3"}),
        UciSection("policy", "wan_only", {"use_member": ("wan_m1_w3",)}),
        UciSection("rule", "default_rule_v4", {"dest_ip": "0.0.0.0/0", "use_policy": "wan_only",
                                               "family": "ipv4"}),
        UciSection("interface", "wanb", {"enabled": "1"}),
    ]
    ops = diff(p, desired, "mwan3", lambda s: owned(s) or s.name == "mine_old")
    assert ops == [
        Op("delete_section", "mwan3", "mine_old"),
        Op("delete_option", "mwan3", "wan", "reliability"),
        Op("set_list", "mwan3", "wan", "track_ip", ("1.1.1.1",)),
        Op("delete_option", "mwan3", "wan", "family"),
        Op("set", "mwan3", "wan", "family", "ipv4"),
        Op("add_section", "mwan3", "wanb", None, "interface"),
        Op("set", "mwan3", "wanb", "enabled", "1"),
    ]
    after = apply_ops(p, "mwan3", ops)
    assert after.get("globals") == p.get("globals")
    assert after.get("wan") == desired[0]
    assert diff(after, desired, "mwan3", owned) == []
    assert parse(text, "mwan3") == p  # apply_ops is pure


def test_type_change_deletes_and_recreates() -> None:
    p = parse("config rule 'r1'\n\toption a '1'\n", "mwan3")
    ops = diff(p, [UciSection("policy", "r1", {"a": "1"})], "mwan3", owned)
    assert [o.kind for o in ops] == ["delete_section", "add_section", "set"]
    assert apply_ops(p, "mwan3", ops).sections == [UciSection("policy", "r1", {"a": "1"})]


def test_keep_order_puts_owned_rules_first_in_desired_order() -> None:
    text = ("config globals 'globals'\n\toption x '1'\n"
            "config rule 'user_rule'\n\toption a '1'\n"
            "config rule 'wan_r2'\n\toption a '2'\n"
            "config rule 'wan_r1'\n\toption a '3'\n")
    p = parse(text, "mwan3")
    desired = [UciSection("rule", "wan_r1", {"a": "3"}), UciSection("rule", "wan_r2", {"a": "2"}),
               UciSection("rule", "wan_r3", {"a": "4"})]
    ops = diff(p, desired, "mwan3", owned, keep_order=True)
    after = apply_ops(p, "mwan3", ops)
    assert [s.name for s in after] == ["globals", "wan_r1", "wan_r2", "wan_r3", "user_rule"]
    assert [o.kind for o in ops].count("reorder") == 3
    assert diff(after, desired, "mwan3", owned, keep_order=True) == []
    assert diff(after, desired, "mwan3", owned) == []


def test_option_order_is_reproduced() -> None:
    p = parse("config interface 'wan'\n\toption b '2'\n\toption a '1'\n\tlist l 'x'\n\toption z '9'\n",
              "mwan3")
    want = UciSection("interface", "wan", {"a": "1", "l": ("x", "y"), "b": "2", "z": "9"})
    after = apply_ops(p, "mwan3", diff(p, [want], "mwan3", owned))
    assert export(after) == export(UciPackage("mwan3", [want]))


def test_store_reorder_and_retype_quirks() -> None:
    st = parse_store("config a\nconfig b 'x'\nconfig c 'y'\n", "p")
    first = st.pkg.sections[0]
    assert first.anon_id == "cfg01" + anon_id(1, "a")[5:]
    run_batch(st, f"reorder p.{first.anon_id}=99\nset p.y=cc\n")
    assert [s.ref for s in st.pkg.sections] == ["x", "y", first.anon_id]
    run_batch(st, f"set p.{first.anon_id}=longer_type\n")
    assert first.name == first.ref and first.anon_id is None  # retype to another length names it
    assert Store.empty("q").add_section("rule").anon_id == "cfg0192bd"


def test_stand_in_batch_keeps_going_and_exits_zero(tmp_path: Path) -> None:
    import subprocess

    rec = vector("09")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "network").write_text(rec["files"]["network"])
    standin = Path(__file__).resolve().parent / "standins" / "uci"
    base = [str(standin), "-c", str(tmp_path / "c"), "-t", str(tmp_path / "s")]
    env = {"PATH": "/usr/bin:/bin", "UCI_STANDIN_SAVEDIR": str(tmp_path / "d")}
    res = subprocess.run(check=False, args=base + ["batch"], input=rec["steps"][0]["stdin"].encode(), capture_output=True, env=env)
    assert res.returncode == 0 and res.stderr.count(b"uci: ") == 3
    got = subprocess.run(check=False, args=base + ["get", "network.lan.ok3"], capture_output=True, env=env)
    assert got.stdout == b"3\n"  # the line after the failures still ran


def test_standin_batch_fast_path_equals_reload_per_line(tmp_path) -> None:
    """The stand-in keeps packages loaded across a plain batch (mwanctl's kind) instead of
    reloading per line as libuci does; both must leave identical deltas and exports."""
    import subprocess
    uci = Path(__file__).parent / "standins" / "uci"
    lines = []
    for i in range(30):
        lines += [f"set network.mw_u{i}=interface", f"set network.mw_u{i}.proto='wireguard'",
                  f"set network.mw_u{i}.addresses='x'", f"delete network.mw_u{i}.addresses",
                  f"add_list network.mw_u{i}.addresses='10.0.{i}.1/30'", f"reorder network.mw_u{i}={i}"]
    lines += ["delete network.wan6", "set network.lan.ipaddr='192.168.9.1'"]
    results = []
    for extra in ("", "delete network.@nosuch[0]\n"):     # the second line forces reload per line
        conf, save = tmp_path / f"c{len(extra)}", tmp_path / f"s{len(extra)}"
        conf.mkdir()
        save.mkdir()
        (conf / "network").write_text((Path(__file__).parent / "data" / "stock" / "network").read_text())
        env = {"UCI_STANDIN_SAVEDIR": str(save), "PATH": "/usr/bin:/bin"}
        r = subprocess.run([str(uci), "-c", str(conf), "-t", str(save), "batch"], input="\n".join(lines) + "\n" + extra,
                           capture_output=True, text=True, env=env)
        out = subprocess.run([str(uci), "-c", str(conf), "-t", str(save), "export", "network"],
                             capture_output=True, text=True, env=env).stdout
        results.append((out, (save / "network").read_text(), r.stderr.replace("uci: Entry not found\n", "")))
    assert results[0] == results[1]
