"""Reading YAML with positions, so every diagnostic can name file, line and column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from ruamel.yaml import YAML, events
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mwanctl.errors import Diagnostic, Location
from mwanctl.topology import rules

RULE = rules.YAML      # the YAML itself cannot be read
MAX_DEPTH = 64         # nesting far beyond any topology
USE_LIBYAML = True     # tests turn it off to prove the pure-Python fallback reads the same
_TOKEN = re.compile(r"[^\s,\[\]{}#]+")


class LineCol:
    """0-based positions of a container, its keys and values (``data[key]`` = [kl, kc, vl, vc])
    or its items (``data[i]`` = [l, c]); the same interface as ruamel's round-trip ``lc``."""

    __slots__ = ("line", "col", "data")

    def __init__(self, line: Optional[int] = None, col: Optional[int] = None):
        self.line, self.col = line, col
        self.data: dict[Any, list[int]] = {}

    def key(self, k: Any) -> tuple[int, int]:
        v = self.data[k]
        return v[0], v[1]

    def value(self, k: Any) -> tuple[int, int]:
        v = self.data[k]
        return v[2], v[3]

    def item(self, i: int) -> tuple[int, int]:
        v = self.data[i]
        return v[0], v[1]


class YamlMap(dict):  # type: ignore[type-arg]
    """A mapping read from YAML: a plain dict (fast) plus ``lc``, where each key and value is."""

    __slots__ = ("lc",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lc = LineCol()


class YamlSeq(list):  # type: ignore[type-arg]
    """A list read from YAML plus ``lc``, where each item is."""

    __slots__ = ("lc",)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.lc = LineCol()


class Source:
    """A loaded YAML document plus the file name, able to locate any key or list item."""

    def __init__(self, file: str, data: Any, text: str = ""):
        self.file = file
        self.data = data
        self._lines = text.splitlines()

    def key(self, node: Any, key: str) -> Location:
        """Location of ``key`` inside mapping ``node`` (the key itself, 1-based)."""
        return self._at(lambda: node.lc.key(key), lambda: self.of(node))

    def value(self, node: Any, key: str) -> Location:
        """Location of the value stored under ``key``."""
        return self._at(lambda: node.lc.value(key), lambda: self.key(node, key))

    def item(self, node: Any, index: int) -> Location:
        return self._at(lambda: node.lc.item(index), lambda: self.of(node))

    def _at(self, where: Callable[[], Any], otherwise: Callable[[], Location]) -> Location:
        """ruamel's 0-based (line, col) from ``where`` as a 1-based Location; ``otherwise()`` when
        the node carries no position for it (a plain dict or list, a key it does not hold)."""
        try:
            line, col = where()
            return Location(self.file, line + 1, col + 1)
        except (AttributeError, KeyError, TypeError, IndexError):
            return otherwise()

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


def read_source(text: str, file: str) -> tuple[Source | None, list[Diagnostic]]:
    """Parse YAML text; any problem reading it becomes a Diagnostic instead of a traceback."""
    try:
        data = _Builder(file).build(_events(text))
    except _Problem as exc:
        return None, [Diagnostic(Location(file, exc.line, exc.col), "yaml", exc.msg, rule=RULE)]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        return None, [Diagnostic(loc, "yaml", f"{_yaml_message(problem)}; fix the YAML syntax here", rule=RULE)]
    except (YAMLError, ValueError, TypeError) as exc:
        return None, [Diagnostic(Location(file, 1, 1), "yaml",
                                 f"cannot read the file as YAML ({type(exc).__name__})", rule=RULE)]
    if data is None:
        data = YamlMap()
    if not isinstance(data, YamlMap):
        return None, [Diagnostic(Location(file, 1, 1), "(top level)",
                                 "expected a mapping with keys like `site`, `mother` and `uplinks`", rule=RULE)]
    return Source(file, data, text), []


def _events(text: str) -> Iterator[Any]:
    """YAML parse events, from libyaml when ruamel.yaml.clib is there (10x faster), else pure."""
    try:
        if not USE_LIBYAML:
            raise ImportError("pure parser requested")
        from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
    except ImportError:   # OpenWrt ships no ruamel.yaml.clib: the pure parser gives the same events
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = CParser(text)
    while parser.check_event():
        yield parser.get_event()


class _Problem(Exception):
    def __init__(self, mark: Any, msg: str):
        super().__init__(msg)
        self.line, self.col, self.msg = mark.line + 1, mark.column + 1, msg


_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
# YAML 1.2 core schema: what a plain scalar means. Dates, `yes`/`no`, `0b1`, `1_000` and
# sexagesimal numbers (YAML 1.1) stay text, so `description: 2024-02-30` is just text.
_CORE = (
    (re.compile(r"(?:~|null|Null|NULL|)\Z"), _NULL),
    (re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z"), _BOOL),
    (re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z"), _INT),
    (re.compile(r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"), _FLOAT),
)
MAX_ALIAS_WEIGHT = 100_000   # values all aliases may stand for, expanded (a "billion laughs" guard)


def _scalar(tag: str, value: str, mark: Any) -> Any:
    if tag == _STR:
        return value
    if tag == _NULL:
        if value in ("", "~", "null", "Null", "NULL"):
            return None
    elif tag == _BOOL:
        if value in ("true", "True", "TRUE", "false", "False", "FALSE"):
            return value[0] in "tT"
    elif tag == _INT:
        v = value
        try:
            if re.fullmatch(r"[-+]?0x[0-9a-fA-F]+", v):
                return int(v, 16)
            if re.fullmatch(r"[-+]?0o[0-7]+", v):
                return int(v.replace("0o", ""), 8)
            if re.fullmatch(r"[-+]?[0-9]+", v):
                return int(v)
        except ValueError:
            pass
    elif tag == _FLOAT:
        low = value.lower()
        if low.lstrip("+-") in (".inf", ".nan"):
            return float(low.replace(".", ""))
        try:
            return float(value)
        except ValueError:
            pass
    else:
        raise _Problem(mark, f"the tag `{tag.replace('tag:yaml.org,2002:', '!!')}` is not supported here; "
                       "write plain values, lists and mappings")
    raise _Problem(mark, f"cannot read {value[:40]!r} as {tag.rsplit(':', 1)[-1]}; quote it if it is text")


class _Builder:
    """YAML events -> YamlMap/YamlSeq with line/column of every key, value and item.

    Iterative (a stack, no recursion), so no input can exhaust Python's stack or libyaml's;
    nesting deeper than MAX_DEPTH is refused where it happens. Anchors and aliases share one
    object (never expanded), `<<` merge keys work, duplicate keys are errors.
    """

    def __init__(self, file: str):
        self.file = file
        self.anchors: dict[str, tuple[Any, int]] = {}   # anchor -> (object, events it spans)
        self.weight = 0

    def build(self, events: Iterable[Any]) -> Any:
        # frame: [container, start mark, anchor, (unused), pending key, key mark, merges,
        #         expanded size of what it holds so far]
        stack: list[list[Any]] = []
        root: Any = None
        docs = 0
        n = 0
        for ev in events:
            n += 1
            kind = _KIND.get(type(ev)) or type(ev).__name__
            if kind == "ScalarEvent":
                tag = ev.tag
                if tag is None or tag == "!":
                    tag = _STR if (tag == "!" or ev.style not in (None, "")) else _resolve(ev.value)
                value = _scalar(tag, ev.value, ev.start_mark) if tag is not _STR else ev.value
                mark = ev.start_mark
                if ev.anchor is not None:
                    self.anchors[ev.anchor] = (value, 1)
                if stack:
                    stack[-1][7] += 1
                    self._add(stack[-1], value, mark)
                else:
                    root = value
                continue
            if kind in ("StreamStartEvent", "StreamEndEvent", "DocumentEndEvent"):
                continue
            if kind == "DocumentStartEvent":
                docs += 1
                if docs > 1:
                    raise _Problem(ev.start_mark, "a second YAML document; a topology is one document")
                continue
            if kind in ("MappingEndEvent", "SequenceEndEvent"):
                frame = stack.pop()
                obj = frame[0]
                if frame[6]:
                    self._merge(obj, frame[6])
                size = frame[7] + 1
                if frame[2] is not None:
                    self.anchors[frame[2]] = (obj, size)
                value, mark = obj, frame[1]
            elif kind == "AliasEvent":
                if ev.anchor not in self.anchors:
                    raise _Problem(ev.start_mark, f"the alias *{ev.anchor} names no anchor defined before it")
                value, size = self.anchors[ev.anchor]
                self.weight += size     # what the alias stands for, expanded
                if self.weight > MAX_ALIAS_WEIGHT:
                    raise _Problem(ev.start_mark, "aliases expand to more than "
                                   f"{MAX_ALIAS_WEIGHT} values; a topology needs far fewer")
                mark = ev.start_mark
            elif kind in ("MappingStartEvent", "SequenceStartEvent"):
                want = _MAP if kind == "MappingStartEvent" else _SEQ
                if ev.tag not in (None, "!", want):
                    raise _Problem(ev.start_mark, f"the tag `{ev.tag.replace('tag:yaml.org,2002:', '!!')}` is "
                                   "not supported here; write plain values, lists and mappings")
                if len(stack) >= MAX_DEPTH:
                    raise _Problem(ev.start_mark, f"nested more than {MAX_DEPTH} levels deep; a topology "
                                   "needs a few")
                obj = YamlMap() if want == _MAP else YamlSeq()
                obj.lc.line, obj.lc.col = ev.start_mark.line, ev.start_mark.column
                if ev.anchor is not None:        # visible to aliases inside it (a recursive structure)
                    self.anchors[ev.anchor] = (obj, 1)
                stack.append([obj, ev.start_mark, ev.anchor, n, _NO_KEY, None, [], 0])
                continue
            else:   # pragma: no cover - every event type is handled above
                raise _Problem(ev.start_mark, f"unexpected YAML event {kind}")
            if not stack:
                root = value
                continue
            stack[-1][7] += size
            self._add(stack[-1], value, mark)
        return root

    def _add(self, frame: list[Any], value: Any, mark: Any) -> None:
        obj = frame[0]
        if type(obj) is YamlSeq:
            obj.lc.data[len(obj)] = [mark.line, mark.column]
            obj.append(value)
            return
        if frame[4] is _NO_KEY:          # this value is a key
            if isinstance(value, (YamlMap, YamlSeq)):
                raise _Problem(mark, "a list or mapping used as a key; keys are plain names")
            if value in obj:
                raise _Problem(mark, f"found duplicate key {str(value)[:40]!r}; every key appears once")
            frame[4], frame[5] = value, mark
            return
        key, kmark = frame[4], frame[5]
        frame[4] = _NO_KEY
        if key == "<<":
            sources = value if isinstance(value, YamlSeq) else [value]
            if not all(isinstance(m, YamlMap) for m in sources):
                raise _Problem(mark, "`<<` merges mappings only (an alias of a mapping, or a list of them)")
            frame[6].extend(sources)
            return
        obj.lc.data[key] = [kmark.line, kmark.column, mark.line, mark.column]
        obj[key] = value

    @staticmethod
    def _merge(obj: YamlMap, sources: list[YamlMap]) -> None:
        """`<<: *base`: keys of ``base`` that ``obj`` does not set itself (the first source wins)."""
        for src in sources:
            for k, v in src.items():
                if k not in obj:
                    pos = src.lc.data.get(k)
                    if pos is not None:
                        obj.lc.data[k] = pos
                    obj[k] = v


_NO_KEY = object()


_KIND = {getattr(events, n): n for n in (
    "ScalarEvent", "MappingStartEvent", "MappingEndEvent", "SequenceStartEvent", "SequenceEndEvent",
    "AliasEvent", "StreamStartEvent", "StreamEndEvent", "DocumentStartEvent", "DocumentEndEvent")}
_MAYBE_NOT_STR = frozenset("0123456789+-.~nNtTfF")


def _resolve(value: str) -> str:
    if value and value[0] not in _MAYBE_NOT_STR:
        return _STR
    for pattern, tag in _CORE:
        if pattern.match(value):
            return tag
    return _STR


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


__all__ = ["Source", "read_source", "read_file", "YamlMap", "YamlSeq"]
