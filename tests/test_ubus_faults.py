"""Injected failures through `mwanctl deploy` over ubus (rpcd stand-ins): each ends fully-old or
fully-new on the router, is reported as what it is, with the exit code the README documents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mwanctl.cli import main
from mwanctl.errors import ExitStatus

try:
    from tests.polling import wait_for as _wait
    from tests.test_deploy_ubus_e2e import site  # noqa: F401 - the fixture
except ImportError:  # pragma: no cover
    from polling import wait_for as _wait  # type: ignore[no-redef]
    from test_deploy_ubus_e2e import site  # type: ignore[no-redef]  # noqa: F401

SCALE = 0.1   # the stand-ins' clock: 30 s of confirm timeout last 3 s


def _files(rpcd: Any) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(rpcd.confdir).iterdir() if p.is_file()}




def _lines(err: str, out: str) -> dict[str, str]:
    """The outcome line of each router (stdout, or stderr's error lines; not the progress)."""
    lines = {}
    for line in out.splitlines() + [x for x in err.splitlines() if x.startswith("mwanctl: error: ")]:
        text = line.removeprefix("mwanctl: error: ")
        name, _, msg = text.partition(": ")
        if name in ("mother", "dsl", "lte"):
            lines[name] = msg
    return lines


def _deploy(pre: list[str], topo: Path, capsys: Any) -> tuple[int, str, dict[str, str]]:
    """``mwanctl deploy --yes``: the exit code, all it printed, and its line per router."""
    code = main(pre + ["deploy", str(topo), "--yes"])
    out, err = capsys.readouterr()
    return code, out + err, _lines(err, out)


def _faulty_dsl(site: Any) -> tuple[Path, list[str], Any, dict[str, bytes]]:
    """The site with a 1 s connect timeout to uplink dsl: its topology file, the CLI's leading
    arguments, dsl's rpcd stand-in (to make it hang) and dsl's config files as they are now."""
    topo, servers, pre = site
    _short_timeout(topo, "dsl")
    dsl = servers["dsl"].rpcd
    return topo, pre, dsl, _files(dsl)


def _short_timeout(topo: Path, router: str) -> None:
    text = topo.read_text()
    topo.write_text(text.replace(f"  {router}:\n", f"  {router}:\n    connect_timeout: 1\n", 1))


def test_a_late_confirm_is_reported_rolled_back_with_exit_7(site: Any, capsys: Any) -> None:
    topo, servers, pre = site
    dsl = servers["dsl"].rpcd
    before = _files(dsl)
    # routers are armed for confirm timeout + tunnel-check window (30 + 25 s): the confirm,
    # held 70 s, reaches rpcd well after its rollback
    dsl.hang[("uci", "confirm")] = 70
    dsl.script_timeout = 1000                 # uhttpd would cut the call at 60 s: not the case tested
    code, said, lines = _deploy(pre, topo, capsys)
    assert code == ExitStatus.ROLLED_BACK, said
    assert "rolled back by the router before the confirm arrived" in lines["dsl"]
    # the mother is confirmed first; the other uplink's tunnel was proven against it, so it is kept
    assert lines["mother"] == "applied and confirmed"
    assert lines["lte"] == "applied and confirmed"
    assert _files(dsl) == before and dsl.pending is None          # fully old
    assert "dsl: dsl:" not in said


def test_connection_lost_after_the_commit_is_not_confirmed_and_rolls_back(site: Any, capsys: Any) -> None:
    topo, pre, dsl, before = _faulty_dsl(site)
    dsl.hang[("uci", "apply")] = 20          # rpcd commits 2 s later; the client gave up after 1 s
    code, said, lines = _deploy(pre, topo, capsys)
    assert code == ExitStatus.NOT_CONFIRMED, said
    assert "answer was lost" in lines["dsl"] and "not confirmed" in lines["dsl"]
    assert "may have armed" not in said
    assert _wait(lambda: dsl.pending is not None, 5)              # rpcd did commit and arm...
    assert _wait(lambda: dsl.pending is None, 10)                 # ...and rolled back by itself
    assert _files(dsl) == before                                  # fully old


def test_connection_lost_before_the_commit_leaves_the_old_config(site: Any, capsys: Any) -> None:
    topo, pre, dsl, before = _faulty_dsl(site)
    dsl.hang[("uci", "add")] = 20            # staging never answers
    code, said, lines = _deploy(pre, topo, capsys)
    assert code == ExitStatus.CONNECT, said   # the cause; lte going back adds no code
    assert "nothing was committed" in lines["dsl"] and "old config" in lines["dsl"]
    assert "not confirmed because dsl failed; rolled back" in lines["lte"]
    assert "not applied because dsl failed" in lines["mother"]
    time.sleep(2.5)                           # the hung staging call finishes: still nothing committed
    assert _files(dsl) == before and dsl.pending is None
