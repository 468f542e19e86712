"""Rendered config of every example, byte for byte, against golden files.

Keys are fixed per example (tests/golden/<example>/state.json holds test-only keys), so the
output is reproducible. Regenerate with MWANCTL_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.keys import KeyStore
from mwanctl.topology.load import load_topology

try:
    from tests.example_secrets import EXAMPLE_SECRETS
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from example_secrets import EXAMPLE_SECRETS  # type: ignore[no-redef]

HERE = Path(__file__).parent
ROOT = HERE.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((HERE / "topologies").glob("*.yaml"))
UPDATE = bool(os.environ.get("MWANCTL_UPDATE_GOLDEN"))


def _state_dir(tmp_path: Path, example: Path) -> Path:
    """A state dir holding the example's fixed test keys (created once when updating)."""
    site = load_topology(example).site
    golden_state = HERE / "golden" / example.stem / "state.json"
    state_dir = tmp_path / "state"
    (state_dir / site).mkdir(parents=True)
    if golden_state.exists():
        shutil.copy(golden_state, state_dir / site / "state.json")
        os.chmod(state_dir / site / "state.json", 0o600)
    return state_dir


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_matches_golden(example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(name, value)
    state_dir = _state_dir(tmp_path, example)
    out = tmp_path / "out"
    assert main(["--state-dir", str(state_dir), "render", str(example), "-o", str(out), "--batch"]) == 0
    golden = HERE / "golden" / example.stem
    site = load_topology(example).site
    if UPDATE:
        for d in golden.glob("*"):
            if d.is_dir():
                shutil.rmtree(d)
        shutil.copytree(out, golden, dirs_exist_ok=True)
        shutil.copy(state_dir / site / "state.json", golden / "state.json")
    expected = {k: v for k, v in _tree(golden).items() if k != "state.json"}
    assert _tree(out) == expected
    # rendered files carry private keys: never world-readable
    for p in out.rglob("*"):
        if p.is_file():
            assert p.stat().st_mode & 0o077 == 0, p
    # re-rendering reuses the stored keys: the store is unchanged
    before = (golden / "state.json").read_text()
    assert json.loads((state_dir / site / "state.json").read_text()) == json.loads(before)


def test_render_never_prints_private_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "examples" / "home.yaml"
    state_dir = _state_dir(tmp_path, example)
    assert main(["--state-dir", str(state_dir), "render", str(example), "-o", str(tmp_path / "o")]) == 0
    assert main(["--state-dir", str(state_dir), "keys", "show", str(example), "--json"]) == 0
    printed = capsys.readouterr()
    store = KeyStore.open("home", state_dir)
    secrets = [store.pair(u, end).private for u in ("dsl", "lte") for end in ("mother", "uplink")]
    publics = [store.pair(u, end).public for u in ("dsl", "lte") for end in ("mother", "uplink")]
    for s in secrets:
        assert s not in printed.out and s not in printed.err
    keys = json.loads(printed.out[printed.out.index("{"):])
    assert sorted(k["public_key"] for k in keys["keys"]) == sorted(publics)


def test_first_render_creates_keys_with_mode_0600(tmp_path: Path) -> None:
    example = ROOT / "examples" / "home.yaml"
    state_dir = tmp_path / "fresh"
    assert main(["--state-dir", str(state_dir), "render", str(example), "-o", str(tmp_path / "o")]) == 0
    path = state_dir / "home" / "state.json"
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert main(["--state-dir", str(state_dir), "render", str(example), "-o", str(tmp_path / "o2")]) == 0
    assert path.read_text() == first
    assert _tree(tmp_path / "o") == _tree(tmp_path / "o2")
