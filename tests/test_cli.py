"""The command line as documentation: every command has help with an example and is in the
README; errors are one line; the wheel carries the blueprints and remote scripts. Commands run
in-process through an injected Environment (streams, terminal, environment, clock); a few runs
go through the installed entry point as a user's shell would; the README's exit-code tables are
the exit enums."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import click
import pytest

import mwanctl
from mwanctl.cli import cli, main
from mwanctl.environment import Environment
from mwanctl.errors import ExitStatus
from mwanctl.exits import FAMILY, BasicExit, DeployExit, StatusExit

ROOT = Path(__file__).resolve().parents[1]


def commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += commands(cmd, full + " ")
        else:
            out.append((full, cmd))
    return out


@pytest.mark.parametrize("name,cmd", commands(), ids=[n for n, _ in commands()])
def test_every_command_has_help_with_example_and_is_documented(name: str, cmd: click.Command) -> None:
    assert cmd.help and "Example: mwanctl " + name in cmd.help, name
    assert f"mwanctl {name}" in (ROOT / "README.md").read_text(), f"`mwanctl {name}` missing from README"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 64
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert mwanctl.__version__ in capsys.readouterr().out


def test_internal_error_is_one_line_without_traceback(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import mwanctl.topology.load as load
    monkeypatch.setattr(load, "diagnose", lambda path: 1 / 0)
    monkeypatch.delenv("MWANCTL_TRACEBACK", raising=False)
    assert main(["validate", str(ROOT / "examples" / "home.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err and "Traceback" not in err


def test_wheel_holds_templates_remote_scripts_and_acl(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("mwanctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for tpl in (ROOT / "uci_templates").glob("*.uci"):
        assert f"mwanctl/uci_templates/{tpl.name}" in names
    for script in (ROOT / "mwanctl" / "remote").glob("*.sh"):
        assert f"mwanctl/remote/{script.name}" in names
    assert "mwanctl/data/rpcd-acl-mwanctl.json" in names


# --- in-process runs through an injected Environment -------------------------------------------

HOME = ROOT / "examples" / "home.yaml"


class Run:
    """One in-process run of mwanctl: its exit code and what it wrote on each stream."""

    def __init__(self, argv: list[str], *, stdin: str = "", tty: bool = False,
                 environ: dict[str, str] | None = None, clock: float | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        env = Environment(io.StringIO(stdin), self.out, self.err, stdin_isatty=tty,
                          environ=environ if environ is not None else {})
        if clock is not None:
            env.clock = lambda: clock
        if sleep is not None:
            env.sleep = sleep
        self.code = main(argv, env)

    @property
    def stdout(self) -> str:
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        return self.err.getvalue()


def test_in_process_output_goes_to_the_injected_streams(capsys: pytest.CaptureFixture[str]) -> None:
    r = Run(["validate", str(HOME)])
    assert r.code == 0 and r.stdout.endswith(f"{HOME}: ok\n") and r.stderr == ""
    assert capsys.readouterr() == ("", "")          # nothing reached the process's own streams
    r = Run(["--help"])
    assert r.code == 0 and "Usage: mwanctl" in r.stdout
    r = Run(["validate"])
    assert r.code == 64 and "Missing argument 'TOPOLOGY'" in r.stderr and r.stdout == ""


def test_state_dir_comes_from_the_injected_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MWANCTL_STATE_DIR", str(tmp_path / "not-this-one"))
    r = Run(["render", str(HOME), "-o", str(tmp_path / "out")], environ={"MWANCTL_STATE_DIR": str(tmp_path / "st")})
    assert r.code == 0, r.stderr
    assert (tmp_path / "st" / "home" / "state.json").is_file() and not (tmp_path / "not-this-one").exists()
    (tmp_path / "file").write_text("")
    r = Run(["validate", str(HOME)], environ={"MWANCTL_STATE_DIR": str(tmp_path / "file")})
    assert r.code == 64 and "Invalid value for '--state-dir'" in r.stderr and "is a file" in r.stderr


def _rendered(tmp_path: Path) -> dict[str, str]:
    """A state directory with keys for examples/home.yaml (render creates them)."""
    environ = {"MWANCTL_STATE_DIR": str(tmp_path / "state")}
    assert Run(["render", str(HOME), "-o", str(tmp_path / "out")], environ=environ).code == 0
    return environ


def test_rotation_asks_only_on_a_terminal_and_reads_the_answer_from_stdin(tmp_path: Path) -> None:
    environ = _rendered(tmp_path)
    r = Run(["keys", "rotate", str(HOME)], environ=environ)        # stdin not a terminal: refuses to ask
    assert r.code == 64 and r.stderr == "mwanctl: error: pass --yes to rotate non-interactively\n"
    assert r.stdout == "rotating 2 tunnel(s), one at a time: dsl, lte\n"
    r = Run(["keys", "rotate", str(HOME)], environ=environ, tty=True, stdin="maybe\nn\n")
    assert r.code == 0 and r.stderr == "Rotate now? [y/N]: Error: invalid input\nRotate now? [y/N]: "
    r = Run(["keys", "rotate", str(HOME)], environ=environ, tty=True, stdin="")   # end of input
    assert r.code == 130 and r.stderr.endswith("mwanctl: aborted\n")


def test_rotation_age_is_measured_on_the_injected_clock(tmp_path: Path) -> None:
    environ = _rendered(tmp_path)
    now = time.time()
    r = Run(["keys", "rotate", str(HOME), "--older-than", "90d"], environ=environ, clock=now)
    assert r.code == 0 and r.stdout == "nothing to rotate: no key is older than 90d\n"
    r = Run(["keys", "rotate", str(HOME), "--older-than", "90d"], environ=environ, clock=now + 91 * 86400)
    assert r.code == 64 and r.stdout.startswith("rotating 2 tunnel(s)")


def _unreachable_topology(tmp_path: Path) -> Path:
    """Routers on a closed loopback port; the mother's password in an environment variable."""
    path = tmp_path / "t.yaml"
    path.write_text("site: t\nmother: {host: 127.0.0.1}\nuplinks:\n  - {name: u1, host: 127.0.0.2}\n"
                    "access:\n  defaults: {port: 1, connect_timeout: 2}\n"
                    "  mother: {port: 1, password_env: MW_TEST_PW}\n")
    return path


def test_status_reads_password_env_from_the_injected_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    topo = _unreachable_topology(tmp_path)
    monkeypatch.setenv("MW_TEST_PW", "from-the-process")        # must not be used
    environ = {"MWANCTL_STATE_DIR": str(tmp_path / "state")}
    r = Run(["status", str(topo), "--json"], environ=environ)
    doc = json.loads(r.stdout)
    assert r.code == 3 and doc["exit_code"] == 3 and doc["reachable"] is False
    assert doc["error"] == "mother: environment variable MW_TEST_PW is not set"
    r = Run(["status", str(topo), "--json"], environ={**environ, "MW_TEST_PW": "x"})
    doc = json.loads(r.stdout)
    assert r.code == 3 and "environment variable" not in doc["error"]    # got as far as connecting


def test_status_watch_sleeps_on_the_injected_sleep_and_exits_with_the_last_poll(tmp_path: Path) -> None:
    topo = _unreachable_topology(tmp_path)
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    r = Run(["status", str(topo), "--watch", "--interval", "7"], environ={"MWANCTL_STATE_DIR": str(tmp_path)},
            sleep=sleep)
    assert r.code == 3 and naps == [7, 7]
    assert "mother unreachable: mother: environment variable MW_TEST_PW is not set" in r.stdout


def test_no_color_is_read_from_the_injected_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topo = _unreachable_topology(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    environ = {"MWANCTL_STATE_DIR": str(tmp_path)}
    coloured = Run(["--color", "status", str(topo)], environ=environ)
    plain = Run(["--color", "status", str(topo)], environ={**environ, "NO_COLOR": "1"})
    assert coloured.code == plain.code == 3
    assert "\x1b[31m" in coloured.stdout and "\x1b[31m" not in plain.stdout and "\x1b[1;35m" not in plain.stdout
    assert "mother unreachable" in plain.stdout


@pytest.mark.ssh
def test_deploy_asks_on_a_terminal_and_applies_only_on_yes(router_factory: Any, tmp_path: Path) -> None:
    """Against dropbear test routers: the question, its answer from stdin, and what the router holds."""
    try:
        from tests.e2e import start_site
    except ImportError:  # pragma: no cover
        from e2e import start_site  # type: ignore[no-redef]
    site = start_site(router_factory, tmp_path, ["dsl"])
    mother = site.routers["mother"]
    before = mother.config_text("network")
    r = Run(site.argv("deploy", str(site.path)))                      # not a terminal: no question
    assert r.code == 64 and r.stderr.endswith(
        "mwanctl: error: not applying without confirmation; pass --yes to apply non-interactively\n")
    r = Run(site.argv("deploy", str(site.path)), tty=True, stdin="n\n")
    assert r.code == 0 and r.stderr.endswith("Apply these changes? [y/N]: nothing was changed\n"), r.stderr
    assert "mw_dsl (interface)" in r.stdout and mother.config_text("network") == before
    r = Run(site.argv("deploy", str(site.path)), tty=True, stdin="y\n")
    assert r.code == 0, r.stderr
    assert "mother: applied and confirmed" in r.stdout and "dsl: applied and confirmed" in r.stdout
    assert "mw_dsl" in mother.config_text("network")


def test_confirm_answers() -> None:
    for answer, default, want in (("y\n", False, True), ("YES\n", False, True), ("no\n", True, False),
                                  ("\n", True, True), ("\n", False, False), ("x\ny\n", False, True)):
        err = io.StringIO()
        env = Environment(io.StringIO(answer), io.StringIO(), err)
        assert env.confirm("Go?", default) is want, answer
        assert err.getvalue().startswith("Go? [Y/n]: " if default else "Go? [y/N]: ")


# --- the installed entry point, as a user runs it -------------------------------------------------

ENTRY = Path(sys.executable).with_name("mwanctl")


def _installed(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENTRY), *args], capture_output=True, text=True, timeout=60, **kw)


def test_installed_entry_point_matches_the_in_process_run() -> None:
    p = _installed("validate", str(HOME))
    r = Run(["validate", str(HOME)])
    assert (p.returncode, p.stdout, p.stderr) == (r.code, r.stdout, r.stderr) == (0, r.stdout, "")
    p = _installed("--version")
    assert p.returncode == 0 and mwanctl.__version__ in p.stdout


def test_installed_entry_point_exit_codes(tmp_path: Path) -> None:
    environ = _rendered(tmp_path)
    env = {**os.environ, **environ}
    p = _installed("keys", "rotate", str(HOME), env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 64 and "pass --yes" in p.stderr
    p = _installed("status", str(_unreachable_topology(tmp_path)), "--json", env=env)
    assert p.returncode == 3 and json.loads(p.stdout)["exit_code"] == 3
    p = _installed("frobnicate")
    assert p.returncode == 64 and "Traceback" not in p.stderr


# --- exit codes: the README's tables are the enums ------------------------------------------------

def _readme_exit_tables() -> dict[str, set[int]]:
    """Command -> the codes its README "Exit status" table lists."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Exit status\n"):]
    section = section[:section.index("\n## ", 1)]
    out: dict[str, set[int]] = {}
    for block in section.split("\n### ")[1:]:
        heading, _, body = block.partition("\n")
        codes = {int(m) for m in re.findall(r"^\| (\d+) \|", body, re.M)}
        for name in re.findall(r"`([a-z ]+)`", heading):
            out[name] = codes
    return out


def test_readme_exit_tables_and_enums_agree() -> None:
    tables = _readme_exit_tables()
    names = [n for n, _ in commands()]
    assert sorted(FAMILY) == sorted(names) == sorted(tables), "every command in one family and one table"
    for name in names:
        assert tables[name] == {int(c) for c in FAMILY[name]}, name


def test_exit_code_values_never_change() -> None:
    assert {c.name: int(c) for c in DeployExit} == {
        "OK": 0, "ERROR": 1, "CHANGES": 2, "CONNECT": 4, "APPLY_FAILED": 5, "NOT_CONFIRMED": 6,
        "ROLLED_BACK": 7, "USAGE": 64, "INTERRUPTED": 130}
    assert {c.name: int(c) for c in StatusExit} == {
        "OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3, "USAGE": 64, "INTERRUPTED": 130}
    assert {c.name: int(c) for c in BasicExit} == {"OK": 0, "ERROR": 1, "USAGE": 64, "INTERRUPTED": 130}
    assert ExitStatus is DeployExit
