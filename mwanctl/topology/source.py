"""Reading YAML with positions, so every diagnostic can name file, line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mwanctl.errors import Diagnostic, Location


class Source:
    """A loaded YAML document plus the file name, able to locate any key or list item."""

    def __init__(self, file: str, data: Any):
        self.file = file
        self.data = data

    def key(self, node: Any, key: str) -> Location:
        """Location of ``key`` inside mapping ``node`` (the key itself, 1-based)."""
        try:
            line, col = node.lc.key(key)
            return Location(self.file, line + 1, col + 1)
        except (AttributeError, KeyError, TypeError):
            return self.of(node)

    def value(self, node: Any, key: str) -> Location:
        """Location of the value stored under ``key``."""
        try:
            line, col = node.lc.value(key)
            return Location(self.file, line + 1, col + 1)
        except (AttributeError, KeyError, TypeError):
            return self.key(node, key)

    def item(self, node: Any, index: int) -> Location:
        try:
            line, col = node.lc.item(index)
            return Location(self.file, line + 1, col + 1)
        except (AttributeError, KeyError, TypeError, IndexError):
            return self.of(node)

    def of(self, node: Any) -> Location:
        """Where a mapping or sequence starts (falls back to the top of the file)."""
        lc = getattr(node, "lc", None)
        if lc is not None and lc.line is not None:
            return Location(self.file, lc.line + 1, lc.col + 1)
        return Location(self.file, 1, 1)


def read_source(text: str, file: str) -> tuple[Source | None, list[Diagnostic]]:
    """Parse YAML text; a syntax error becomes a Diagnostic instead of a traceback."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [Diagnostic(loc, "yaml", f"{_yaml_message(problem)}; fix the YAML syntax here")]
    except YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        return None, [Diagnostic(Location(file, 1, 1), "yaml", str(exc).splitlines()[0])]
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        return None, [Diagnostic(Location(file, 1, 1), "(top level)",
                                 "expected a mapping with keys like `site`, `mother` and `uplinks`")]
    return Source(file, data), []


def read_file(path: str | Path) -> tuple[Source | None, list[Diagnostic]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Diagnostic(None, str(p), f"cannot read topology file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Diagnostic(Location(str(p), 1, 1), str(p), "file is not UTF-8 text")]
    return read_source(text, str(p))


def _yaml_message(problem: str) -> str:
    problem = " ".join(problem.split())
    if "found duplicate key" in problem:
        return problem.split(" with value")[0]
    return problem


__all__ = ["Source", "read_source", "read_file", "CommentedMap", "CommentedSeq"]
