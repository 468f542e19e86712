"""Many sites in one run (`mwanctl plan|deploy|status` over several files or a directory), end to
end: the CLI, the SSH transport and dropbear test routers, several sites of them at once."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.keys import KeyStore
from mwanctl.sites import DEPLOY_SEVERITY, STATUS_SEVERITY, expand, worst
from mwanctl.uci.parse import parse

try:
    from tests import sites_lab
    from tests.test_status_e2e import dump, recorded
except ImportError:  # pragma: no cover
    import sites_lab  # type: ignore[no-redef]
    from test_status_e2e import dump, recorded  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
ROOT = Path(__file__).resolve().parents[1]


def run(state: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--state-dir", str(state), "--no-color", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def table(out: str) -> dict[tuple[str, str], tuple[str, int]]:
    """The summary table: (site, router) -> (outcome, exit); a long outcome wraps onto lines
    whose site column is blank (only its first line is kept)."""
    rows = {}
    lines = out.splitlines()
    start = max(i for i, ln in enumerate(lines) if ln.split() == ["site", "router", "outcome", "exit"])
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        if ln[:2].isspace():
            continue
        parts = ln.split()
        if len(parts) < 4 or not parts[-1].isdigit():
            break
        rows[(parts[0], parts[1])] = (" ".join(parts[2:-1]), int(parts[-1]))
    return rows


# --- no routers needed ----------------------------------------------------------------------------

def test_worst_ranks_errors_above_changes_and_critical_above_unknown():
    assert worst([0, 2, 0]) == 2
    assert worst([2, 1]) == 1            # an invalid file outranks "there are changes"
    assert worst([4, 1, 2]) == 4
    assert worst([5, 7, 6, 4]) == 7
    assert worst([]) == 0
    assert worst([0, 3, 1], STATUS_SEVERITY) == 3
    assert worst([3, 2, 1], STATUS_SEVERITY) == 2
    assert list(DEPLOY_SEVERITY[:7]) == [0, 2, 1, 4, 5, 6, 7]


def test_expand_directory_sorted_yaml_only_and_no_duplicates(tmp_path):
    for n in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / n).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("x")
    got = expand([str(tmp_path), str(tmp_path / "b.yaml"), str(tmp_path / "missing.yaml")])
    assert got == [str(tmp_path / "a.yml"), str(tmp_path / "b.yaml"), str(tmp_path / "missing.yaml")]


def test_many_sites_deploy_needs_yes_and_status_watch_is_refused(tmp_path, capsys):
    sites = ROOT / "examples" / "sites"
    code, _out, err = run(tmp_path / "state", capsys, "deploy", str(sites))
    assert code == 64 and "--yes" in err
    code, _out, err = run(tmp_path / "state", capsys, "status", str(sites), "--watch")
    assert code == 64 and "--watch" in err
    code, _out, err = run(tmp_path / "state", capsys, "plan", str(tmp_path))   # no yaml in it
    assert code == 64 and "no topology files" in err


# --- dropbear routers -----------------------------------------------------------------------------

def test_two_sites_deploy_in_one_run_then_a_second_run_changes_nothing(router_factory, tmp_path, capsys):
    sites_dir, sites = sites_lab.start_sites(router_factory, tmp_path, ["north", "south"], uplinks=("dsl",))
    state = tmp_path / "state"
    code, out, err = run(state, capsys, "plan", str(sites_dir))
    assert code == 2, err
    rows = table(out)
    assert set(rows) == {(s, r) for s in ("north", "south") for r in ("dsl", "mother")}
    assert all(exit_ == 2 and outcome.endswith("change(s)") for outcome, exit_ in rows.values())
    assert "== north (" in out and "== south (" in out and "+ mw_dsl (interface)" in out

    code, out, err = run(state, capsys, "deploy", str(sites_dir), "--yes")
    assert code == 0, err
    rows = table(out)
    assert rows == {(s, r): ("applied", 0) for s in ("north", "south") for r in ("dsl", "mother")}
    for s in sites:
        for name, r in s.routers.items():
            net = parse(r.config_text("network"), "network")
            assert net.get("mw_dsl") is not None, f"{s.name}/{name} did not get its tunnel"
            assert not r.exists("/etc/mwanctl/pending"), f"{s.name}/{name} still holds a pending deploy"
    # each site has its own keys, and its routers carry them
    for s in sites:
        store = KeyStore.open(s.name, state)
        assert store.pair("dsl", "uplink").public in s.routers["mother"].config_text("network")

    before = {(s.name, n): (len(r.calls()), r.config_text("network")) for s in sites for n, r in s.routers.items()}
    code, out, err = run(state, capsys, "deploy", str(sites_dir), "--yes")
    assert code == 0, err
    assert set(table(out).values()) == {("up to date", 0)}
    after = {(s.name, n): (len(r.calls()), r.config_text("network")) for s in sites for n, r in s.routers.items()}
    assert after == before, "the second run touched a router"
    code, out, err = run(state, capsys, "plan", *(str(s.path) for s in sites))   # files instead of a dir
    assert code == 0 and set(table(out).values()) == {("up to date", 0)}


def test_unreachable_router_never_stops_the_healthy_site(router_factory, tmp_path, capsys):
    sites_dir, sites = sites_lab.start_sites(router_factory, tmp_path, ["good", "bad"], uplinks=("dsl",))
    bad = next(s for s in sites if s.name == "bad")
    bad.routers["dsl"].stop()                       # its SSH server is gone: connection refused
    before_bad_mother = bad.routers["mother"].config_text("network")
    code, out, err = run(tmp_path / "state", capsys, "deploy", str(sites_dir), "--yes")
    rows = table(out)
    assert rows[("good", "dsl")] == ("applied", 0) and rows[("good", "mother")] == ("applied", 0)
    assert rows[("bad", "dsl")] == ("unreachable", 4)
    assert rows[("bad", "mother")] == ("not applied", 0)
    assert code == 4
    assert re.search(r"mwanctl: error: bad/dsl: cannot connect", err), err
    good = next(s for s in sites if s.name == "good")
    assert parse(good.routers["mother"].config_text("network"), "network").get("mw_dsl") is not None
    assert bad.routers["mother"].config_text("network") == before_bad_mother


def test_invalid_files_are_all_shown_and_the_valid_sites_still_run(router_factory, tmp_path, capsys):
    sites_dir, sites = sites_lab.start_sites(router_factory, tmp_path, ["alpha"], uplinks=("dsl",))
    # two broken files: each error is named by file:line:col
    (sites_dir / "broken1.yaml").write_text("site: broken1\nmother:\n  host: 192.0.2.1\n  lan: {subnet: 10.0.0.0/33}\n"
                                            "uplinks:\n  - name: a\n    host: 192.0.2.2\n")
    (sites_dir / "broken2.yaml").write_text("site: broken2\nmother: [1, 2]\nuplinks: 7\n")
    # and two sites naming one router (alpha's dsl): both refused, alpha itself too
    alpha = sites[0]
    text = alpha.path.read_text()
    twin = sites_dir / "twin.yaml"
    twin.write_text(text.replace("site: alpha", "site: twin"))
    code, out, err = run(tmp_path / "state", capsys, "plan", str(sites_dir))
    for f, line in (("broken1.yaml", 4), ("broken2.yaml", 2)):
        assert re.search(rf"{re.escape(str(sites_dir / f))}:{line}:\d+: ", err), err
    rows = table(out)
    assert rows[("broken1.yaml", "-")] == ("invalid topology (1 error(s))", 1)
    assert rows[("broken2.yaml", "-")][1] == 1
    assert rows[("alpha", "-")] == ("refused", 1) and rows[("twin", "-")] == ("refused", 1)
    assert "named by more than one site" in err
    assert code == 1

    twin.unlink()
    code, out, err = run(tmp_path / "state", capsys, "plan", str(sites_dir))
    rows = table(out)
    assert rows[("alpha", "mother")][1] == 2 and rows[("alpha", "dsl")][1] == 2
    assert code == 1                                  # the invalid files outrank the changes
    assert "reload" not in "\n".join(alpha.routers["mother"].calls())     # plan changes nothing


def test_status_over_sites_is_one_json_document_and_one_table(router_factory, tmp_path, capsys):
    state = tmp_path / "state"
    sites_dir = tmp_path / "sites"
    sites_dir.mkdir()
    lab = []
    for name, vector in (("east", "mwan3-status-both-online.json"), ("west", "mwan3-status-wanA-offline.json"),
                         ("gone", None)):
        mother = router_factory(f"{name}-mother")
        s = sites_lab.write_lab_site(tmp_path, sites_dir, name, {"mother": mother}, ["a", "b"])
        s.path.write_text(s.path.read_text().replace("    weight: 1\n", "    weight: 3\n", 1))
        assert main(["--state-dir", str(state), "render", str(s.path), "-o", str(tmp_path / f"out-{name}")]) == 0
        if vector:
            mother.run("mkdir -p /etc/mwtest")
            mother.write("/etc/mwtest/mwan3_status.json", recorded(vector))
            mother.write("/etc/mwtest/wg_dump.txt", dump(KeyStore.open(name, state), 12))
        else:
            mother.stop()
        lab.append(s)
    capsys.readouterr()
    code, out, _err = run(state, capsys, "status", str(sites_dir), "--json")
    doc = json.loads(out)                               # the whole output is one document
    assert doc["schema"] == "mwanctl.status-sites/1"
    by_site = {s["site"]: s for s in doc["sites"]}
    assert [s["site"] for s in doc["sites"]] == ["east", "gone", "west"]       # file order
    assert by_site["east"]["schema"] == "mwanctl.status/2" and by_site["east"]["exit_code"] == 0
    assert by_site["west"]["exit_code"] == 1
    assert by_site["gone"]["exit_code"] == 3 and by_site["gone"]["reachable"] is False
    assert by_site["east"]["file"] == str(sites_dir / "east.yaml")
    assert doc["exit_code"] == 3 and code == 3
    assert doc["summary"] == {"sites": 3, "by_exit_code": {"0": 1, "1": 1, "3": 1}}

    code, out, _err = run(state, capsys, "status", str(sites_dir))
    rows = table(out)
    assert rows[("east", "mother")][1] == 0 and "2/2 uplinks online" in rows[("east", "mother")][0]
    assert rows[("west", "mother")][1] == 1 and rows[("gone", "mother")][1] == 3
    assert code == 3
    # a single site's output is the single-site document, not the many-site one
    code, out, _err = run(state, capsys, "status", str(sites_dir / "east.yaml"), "--json")
    assert json.loads(out)["schema"] == "mwanctl.status/2" and code == 0


def test_pool_bound_holds_on_the_routers_side(router_factory, tmp_path, capsys):
    """Four sites of 2 routers (3 connections each at most on the normal path), --connections 7:
    two sites at a time; the routers never see more than 7 connections at once, or more than 2
    on one router (the deploy's kept session and the fresh one its confirm opens)."""
    names = ["s1", "s2", "s3", "s4"]
    sites_dir, sites = sites_lab.start_sites(router_factory, tmp_path, names, uplinks=("dsl",))
    w = sites_lab.watch(sites)
    with w.running():
        code, out, err = run(tmp_path / "state", capsys, "deploy", str(sites_dir), "--yes", "--connections", "7")
    assert code == 0, err
    assert set(table(out).values()) == {("applied", 0)}
    assert w.samples > 100
    # two sites at once (each keeps 2 sessions through its deploy), never more than the pool
    assert 4 <= w.peak_total <= 7, w.peak_total
    assert max(w.peak_per_router.values()) <= 2, w.peak_per_router
    for s in sites:
        for r in s.routers.values():
            assert sites_lab.accepted(r) >= 2      # read + confirm at least, counted by dropbear


def test_example_sites_directory_validates_and_plans(router_factory, tmp_path, capsys):
    src = ROOT / "examples" / "sites"
    files = sorted(src.glob("*.yaml"))
    assert len(files) == 2
    for f in files:
        assert main(["validate", str(f)]) == 0
    capsys.readouterr()
    # the same two sites, their access pointed at dropbear routers (the examples' addresses are
    # documentation addresses, never contacted)
    copy = tmp_path / "sites"
    copy.mkdir()
    for f in files:
        text = f.read_text()
        routers = re.findall(r"^  - name: (\S+)", text, re.MULTILINE)
        rs = {"mother": router_factory(f"{f.stem}-mother")}
        rs.update({u: router_factory(f"{f.stem}-{u}", files=sites_lab._uplink_stock()) for u in routers})
        known = tmp_path / f"known-{f.stem}"
        known.write_text("".join(Path(r.known_hosts_path).read_text() for r in rs.values()))
        mother = re.search(r"^mother:\n(?:  .*\n)*?  name: (\S+)", text, re.MULTILINE)
        mname = mother.group(1) if mother else "mother"
        access = ["access:"]
        for name, r in rs.items():
            access += [f"  {mname if name == 'mother' else name}:", "    host: 127.0.0.1", f"    port: {r.port}",
                       f"    key: {r.key_path}", f"    known_hosts: {known}"]
        (copy / f.name).write_text(text + "\n".join(access) + "\n")
    code, out, err = run(tmp_path / "state", capsys, "plan", str(copy))
    assert code == 2, err
    rows = table(out)
    assert {s for s, _ in rows} == {"harbour", "hill"}
    assert all(e == 2 for _, e in rows.values())
    shutil.rmtree(copy)


def test_failed_apply_and_unreachable_router_never_stop_the_healthy_site(router_factory, tmp_path, capsys):
    """One site's uplink cannot commit (its `uci commit` fails, as on a full flash), another's
    uplink is down, the third is healthy: the third is applied and confirmed, the failed one is
    back on its old config, and the run exits with the worst outcome (5 outranks 4)."""
    sites_dir, sites = sites_lab.start_sites(router_factory, tmp_path, ["ok", "full", "down"], uplinks=("dsl",))
    by = {s.name: s for s in sites}
    full = by["full"].routers["dsl"]
    wrapper = full.root / "sbin" / "uci"
    target = wrapper.readlink()
    wrapper.unlink()
    wrapper.write_text("#!/bin/sh\n"
                       'for a in "$@"; do [ "$a" = commit ] && { echo "uci: I/O error" >&2; exit 1; }; done\n'
                       f'exec {target} "$@"\n')
    wrapper.chmod(0o755)
    before_full = full.config_text("network")
    by["down"].routers["dsl"].stop()
    code, out, err = run(tmp_path / "state", capsys, "deploy", str(sites_dir), "--yes")
    rows = table(out)
    assert rows[("ok", "dsl")] == ("applied", 0) and rows[("ok", "mother")] == ("applied", 0)
    assert rows[("full", "dsl")] == ("failed", 5), err
    assert rows[("full", "mother")][0] == "skipped"
    assert rows[("down", "dsl")] == ("unreachable", 4)
    assert code == 5
    assert full.config_text("network") == before_full
    assert "mwanctl: error: full/dsl:" in err
