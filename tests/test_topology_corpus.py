"""The hostile corpus (tests/hostile_corpus.py): every case is refused the way a user can act on.

For each: exit 1, every error line starts with file:line:col and ends with a rule id, one of the
rule ids the case names is reported, nothing reads as an internal error, and validate takes
well under a second (a loose sanity bound; bench/validate.py measures it).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hostile_corpus import NOT_UTF8, Case, corpus

from mwanctl.cli import main

CASES = corpus()
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): .* \[(?P<rule>MW\d{3})\]$")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 150


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    code = main(["validate", str(path)])
    elapsed = time.perf_counter() - t0
    out, err = capsys.readouterr()
    return code, err, elapsed


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_topology_is_refused_with_a_location(case: Case, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(case.text, encoding="utf-8", errors="surrogatepass")
    code, err, elapsed = _validate(path, capsys)
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[-1].startswith("mwanctl: ") and "error(s); nothing was changed" in lines[-1], err
    errors = [ln for ln in lines[:-1] if ": warning: " not in ln]
    assert errors, err
    found = set()
    for ln in lines[:-1]:
        m = LINE.match(ln)
        assert m and m["file"] == str(path), ln
        assert len(ln) < 1000, "one readable line, even for a 70,000-character value"
        found.add((m["rule"], int(m["line"])))
    assert {r for r, _ in found} & case.rules, (case.rules, err)
    if case.line is not None:
        assert any(r in case.rules and ln == case.line for r, ln in found), (case.line, err)
    assert elapsed < 10, elapsed   # sanity only: a hang or quadratic blow-up, not a timing claim


def test_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(NOT_UTF8)
    code, err, _ = _validate(path, capsys)
    assert code == 1 and f"{path}:4:1: " in err and "[MW100]" in err, err


@pytest.mark.parametrize("case", [c for c in CASES if "MW100" not in c.rules][::7], ids=lambda c: c.id)
def test_pure_python_parser_reads_the_same(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ruamel.yaml.clib is missing (the OpenWrt package), the pure parser must give the same
    tree and so the same diagnostics (libyaml and ruamel word syntax errors differently, so cases
    refused as unreadable YAML are left out)."""
    from mwanctl.topology import source
    from mwanctl.topology.load import diagnose_text
    fast = [str(d) for d in diagnose_text(case.text, "t.yaml")[1]]
    monkeypatch.setattr(source, "USE_LIBYAML", False)
    pure = [str(d) for d in diagnose_text(case.text, "t.yaml")[1]]
    assert pure == fast
