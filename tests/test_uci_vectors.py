"""Replay every recorded run of the real ``uci`` binary through the stand-in, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "standins" / "uci"
VECTORS = sorted((HERE / "vectors" / "uci").glob("*.json"))
EXTRA = HERE / "vectors" / "uci-local" / "extra-quirks.json"


def run_uci(tmp: Path, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the stand-in the way the recorder ran the real tool: ``uci -c CONFDIR -t SAVEDIR ...``."""
    env = dict(os.environ)
    env.update({
        "UCI_STANDIN_SAVEDIR": str(tmp / "default-save"),
        "UCI_STANDIN_CONF2DIR": str(tmp / "conf2"),
        "UCI_STANDIN_CONFDIR": str(tmp / "default-conf"),
    })
    return subprocess.run(check=False, args=
        [str(STANDIN), "-c", str(tmp / "config"), "-t", str(tmp / "save"), *argv],
        input=None if stdin is None else stdin.encode(),
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, env=env, timeout=60,
    )


def normalise(text: bytes, tmp: Path) -> str:
    return text.decode("utf-8", "surrogateescape").replace(str(STANDIN), "uci").replace(str(tmp), "$TMP")


def read_dir(path: Path) -> dict[str, str]:
    if not path.is_dir():
        return {}
    return {p.name: p.read_bytes().decode() for p in sorted(path.iterdir()) if p.is_file()}


def test_every_vector_is_replayed() -> None:
    assert len(VECTORS) >= 12


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.stem)
def test_vector(vector: Path, tmp_path: Path) -> None:
    replay(json.loads(vector.read_text()), tmp_path)


def test_extra_recording(tmp_path: Path) -> None:
    """Recorded the same way with `uci` built locally from openwrt/uci 66127cd76c5d (the tree the
    shared vectors come from, see its description): quirks the shared vectors do not cover."""
    replay(json.loads(EXTRA.read_text()), tmp_path)


def replay(rec: dict, tmp_path: Path) -> None:
    """Run every step of a recording and compare outputs, exit codes and files byte for byte."""
    conf = tmp_path / "config"
    conf.mkdir()
    for name, text in rec["files"].items():
        (conf / name).write_bytes(text.encode())
    for n, step in enumerate(rec["steps"]):
        res = run_uci(tmp_path, step["argv"], step.get("stdin"))
        where = f"step {n}: uci {' '.join(step['argv'])}"
        assert normalise(res.stdout, tmp_path) == step["stdout"], where
        assert normalise(res.stderr, tmp_path) == step["stderr"], where
        assert res.returncode == step["exit"], where
    assert read_dir(conf) == rec["files_after"]
    assert read_dir(tmp_path / "save") == rec["changes_pending_after"]
    assert not (tmp_path / "default-save").exists()
