"""The command line as documentation: every command has help with an example and is in the
README; errors are one line; the wheel carries the blueprints and remote scripts."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

import mwanctl
from mwanctl.cli import cli, main

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
