"""Properties: values survive every path to the router, and plans converge in one step."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mwanctl.uci import (
    Op,
    UciPackage,
    UciSection,
    apply_ops,
    batch_script,
    diff,
    export,
    parse,
    valid_value,
)

STANDIN = Path(__file__).resolve().parent / "standins" / "uci"

values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).filter(valid_value)
names = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)


@given(values)
def test_valid_values_survive_export_and_parse(v: str) -> None:
    sec = UciSection("thing", "s", {"l": (v, v + "x")})
    if v:
        sec.options["o"] = v
    pkg = UciPackage("p", [sec])
    assert parse(export(pkg), "p") == pkg


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values.filter(bool), min_size=1, max_size=5), st.lists(values, min_size=1, max_size=3))
def test_values_survive_the_real_batch_path(tmp_path: Path, opts: list[str], items: list[str]) -> None:
    conf, save = tmp_path / "c", tmp_path / "s"
    conf.mkdir(exist_ok=True)
    (conf / "p").write_text("config thing 's'\n")
    for f in save.glob("*"):
        f.unlink()
    ops = [Op("set", "p", "s", f"o{i}", v) for i, v in enumerate(opts)]
    ops.append(Op("set_list", "p", "s", "l", tuple(items)))
    env = dict(os.environ, UCI_STANDIN_SAVEDIR=str(tmp_path / "dflt"))
    res = subprocess.run(check=False, args=[str(STANDIN), "-c", str(conf), "-t", str(save), "batch"],
                         input=(batch_script(ops) + "commit p\n").encode(), capture_output=True, env=env)
    assert res.returncode == 0
    assert res.stderr == b""  # set_list's set + delete + add_list never trips an error line
    want = UciPackage("p", [UciSection("thing", "s", {**{f"o{i}": v for i, v in enumerate(opts)},
                                                      "l": tuple(items)})])
    out = subprocess.run(check=False, args=[str(STANDIN), "-c", str(conf), "-t", str(save), "export", "p"],
                         capture_output=True, env=env).stdout.decode()
    assert out == export(want)
    assert apply_ops(parse("config thing 's'\n", "p"), "p", ops) == want


# -- planner ----------------------------------------------------------------------------------------

TYPES = ["rule", "member", "iface"]
OPT_NAMES = ["a", "b", "c", "d"]
opt_value = st.one_of(st.sampled_from(["1", "x y", "it's", ""]),
                      st.lists(st.sampled_from(["p", "q", ""]), min_size=0, max_size=3).map(tuple))
options = st.dictionaries(st.sampled_from(OPT_NAMES), opt_value, max_size=4)
sec_names = st.sampled_from(["o1", "o2", "o3", "o4", "f1", "f2", None])


@st.composite
def current_pkg(draw: st.DrawFn) -> UciPackage:
    secs = [UciSection(draw(st.sampled_from(TYPES)), draw(sec_names), draw(options))
            for _ in range(draw(st.integers(0, 6)))]
    return parse(export(UciPackage("p", secs)), "p", strict=False)  # merged, no empties, cfg ids


@st.composite
def desired_secs(draw: st.DrawFn) -> list[UciSection]:
    chosen = draw(st.lists(st.sampled_from(["o1", "o2", "o3", "o4"]), unique=True, max_size=4))
    return [UciSection(draw(st.sampled_from(TYPES)), n, draw(options)) for n in chosen]


def owns(s: UciSection) -> bool:
    return (s.name or "").startswith("o") or (s.name is None and s.type == "member")


def stored(sec: UciSection) -> UciSection:
    return UciSection(sec.type, sec.name, {k: v for k, v in sec.options.items() if v not in ("", ())})


def expected(cur: UciPackage, want: list[UciSection]) -> UciPackage:
    """Foreign sections stay put, kept owned sections are updated in place, the rest is appended."""
    by_name = {w.name: stored(w) for w in want}
    out, placed = [], set()
    for s in cur.sections:
        if not owns(s):
            out.append(s)
        elif s.name in by_name and by_name[s.name].type == s.type:
            out.append(by_name[s.name])
            placed.add(s.name)
    out += [by_name[w.name] for w in want if w.name not in placed]
    return UciPackage("p", out)


@settings(max_examples=300, deadline=None)
@given(current_pkg(), desired_secs())
def test_plan_converges_in_one_step(cur: UciPackage, want: list[UciSection]) -> None:
    ops = diff(cur, want, "p", owns)
    after = apply_ops(cur, "p", ops)
    assert diff(after, want, "p", owns) == []
    assert export(after) == export(expected(cur, want))


@settings(max_examples=300, deadline=None)
@given(current_pkg(), desired_secs())
def test_ordered_plan_converges_and_orders(cur: UciPackage, want: list[UciSection]) -> None:
    ops = diff(cur, want, "p", owns, keep_order=True)
    after = apply_ops(cur, "p", ops)
    assert diff(after, want, "p", owns, keep_order=True) == []
    exp = expected(cur, want)
    assert sorted(map(repr, after.sections)) == sorted(map(repr, exp.sections))
    names = [s.name for s in after.sections]
    mine = [n for n in names if n in {w.name for w in want}]
    assert mine == [w.name for w in want]
    for w in want:
        foreign_same_type = [i for i, s in enumerate(after.sections) if s.type == w.type and not owns(s)]
        assert all(names.index(w.name) < i for i in foreign_same_type)
    foreign = [s for s in after.sections if not owns(s)]
    assert foreign == [s for s in cur.sections if not owns(s)]
