"""Reading YAML with positions, so every diagnostic can name file, line and column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from mwanctl.errors import Diagnostic, Location

RULE = "MW100"         # the YAML itself cannot be read (see the README's rule table)
MAX_DEPTH = 64         # nesting far beyond any topology; deeper input only exhausts the stack
_TOKEN = re.compile(r"[^\s,\[\]{}#]+")


class Source:
    """A loaded YAML document plus the file name, able to locate any key or list item."""

    def __init__(self, file: str, data: Any, text: str = ""):
        self.file = file
        self.data = data
        self._lines = text.splitlines()

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

    def raw_value(self, node: Any, key: str) -> Optional[str]:
        """The plain-scalar text as written under ``key`` (to tell `0x10` from `16`)."""
        return self._raw(self.value(node, key))

    def raw_item(self, node: Any, index: int) -> Optional[str]:
        return self._raw(self.item(node, index))

    def _raw(self, loc: Location) -> Optional[str]:
        if not 0 < loc.line <= len(self._lines):
            return None
        m = _TOKEN.match(self._lines[loc.line - 1], loc.col - 1)
        return m.group(0) if m else None


class _Constructor(RoundTripConstructor):
    """Round-trip construction whose value errors (a 30 February, `!!int 0x`, `!!bool maybe`,
    `!!set` on a scalar) carry the node's position instead of escaping as bare exceptions."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except MarkedYAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            raise _ValueAt(node, exc) from exc


class _ValueAt(Exception):
    def __init__(self, node: Any, exc: Exception):
        super().__init__(str(exc))
        self.node, self.exc = node, exc


def read_source(text: str, file: str) -> tuple[Source | None, list[Diagnostic]]:
    """Parse YAML text; any problem reading it becomes a Diagnostic instead of a traceback."""
    def fail(line: int, col: int, msg: str) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(Location(file, line, col), "yaml", msg, rule=RULE)]

    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return fail(mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                    f"{_yaml_message(problem)}; fix the YAML syntax here")
    except _ValueAt as exc:
        mark = exc.node.start_mark
        tag = str(getattr(exc.node, "tag", "") or "")
        value = getattr(exc.node, "value", "")
        shown = repr(value[:40]) if isinstance(value, str) else "this value"
        hint = f" as {tag.rsplit(':', 1)[-1]}" if tag else ""
        why = f" ({str(exc.exc)[:80]})" if isinstance(exc.exc, ValueError) and str(exc.exc) else ""
        return fail(mark.line + 1, mark.column + 1,
                    f"cannot read {shown}{hint}{why}; quote it if it is meant as text")
    except RecursionError:
        line, col = _too_deep(text) or (1, 1)
        return fail(line, col, f"nested more than {MAX_DEPTH} levels deep; a topology needs a few")
    except (YAMLError, ValueError, TypeError) as exc:
        return fail(1, 1, f"cannot read the file as YAML ({type(exc).__name__})")
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        return None, [Diagnostic(Location(file, 1, 1), "(top level)",
                                 "expected a mapping with keys like `site`, `mother` and `uplinks`", rule=RULE)]
    return Source(file, data, text), []


def _too_deep(text: str) -> Optional[tuple[int, int]]:
    """(line, col) where nesting first exceeds MAX_DEPTH; the event parser is iterative, so
    this is safe where composing (recursive) would overflow the stack."""
    depth = 0
    try:
        for ev in YAML(typ="rt").parse(text):
            if isinstance(ev, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return ev.start_mark.line + 1, ev.start_mark.column + 1
            elif isinstance(ev, CollectionEndEvent):
                depth -= 1
    except (YAMLError, RecursionError, ValueError, TypeError):
        return None   # load() reports syntax errors with their position
    return None


def read_file(path: str | Path) -> tuple[Source | None, list[Diagnostic]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Diagnostic(None, str(p), f"cannot read topology file: {exc.strerror}", rule=RULE)]
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        return None, [Diagnostic(Location(str(p), line, 1), str(p), "file is not UTF-8 text", rule=RULE)]
    except ValueError as exc:   # a NUL in the path itself
        return None, [Diagnostic(None, "topology", f"cannot read topology file: {exc}", rule=RULE)]
    return read_source(text, str(p))


def _yaml_message(problem: str) -> str:
    problem = " ".join(problem.split())
    if "found duplicate key" in problem:
        return problem.split(" with value")[0]
    return problem


__all__ = ["Source", "read_source", "read_file", "CommentedMap", "CommentedSeq"]
