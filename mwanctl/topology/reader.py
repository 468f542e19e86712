"""Typed reads from a YAML mapping that record a Diagnostic instead of raising.

Every getter returns a usable value (the default when the input is wrong), so the loader can
continue and report *all* problems in one run.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable, Optional, TypeVar

from mwanctl.errors import Diagnostic, Location
from mwanctl.topology.grammar import MAX_TEXT, is_host, is_ip, short, text_problem
from mwanctl.topology.rules import (  # the rule ids of the per-field reading
    BAD_TEXT,
    BAD_VALUE,
    MISSING,
    NOT_ALLOWED,
    NUMBER_TEXT,
    OUT_OF_RANGE,
    UNKNOWN_KEY,
    WRONG_TYPE,
)
from mwanctl.topology.source import Source, YamlMap, YamlSeq

T = TypeVar("T")
N = TypeVar("N", YamlMap, YamlSeq)   # the two container nodes of a YAML document
_MISSING = object()
REQUIRED = _MISSING     # as a default: the key must be given



def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "a number"
    if isinstance(v, float):
        return "a decimal number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, YamlSeq)):
        return "a list"
    if isinstance(v, (dict, YamlMap)):
        return "a mapping"
    if v is None:
        return "nothing"
    if hasattr(v, "isoformat"):
        return "a date (YAML reads unquoted dates; quote it if it is text)"
    if isinstance(v, (list, tuple)):
        return "a list"
    return type(v).__name__


class Reader:
    """Collects diagnostics while reading values out of one Source."""

    def __init__(self, source: Source):
        self.src = source
        self.diags: list[Diagnostic] = []

    # -- reporting ---------------------------------------------------------------------------
    def error(self, loc: Optional[Location], field: str, msg: str, rule: str) -> None:
        self.diags.append(Diagnostic(loc, field, msg, rule=rule))

    def warn(self, loc: Optional[Location], field: str, msg: str, rule: str) -> None:
        self.diags.append(Diagnostic(loc, field, msg, severity="warning", rule=rule))

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diags)

    # -- structure ---------------------------------------------------------------------------
    def mapping(self, parent: Any, key: str, path: str, required: bool = False) -> Optional[YamlMap]:
        """The mapping under ``key`` (None when absent or wrong)."""
        return self._node(parent, key, path, required, YamlMap, "mapping", "section")

    def seq(self, parent: Any, key: str, path: str, required: bool = False) -> Optional[YamlSeq]:
        return self._node(parent, key, path, required, YamlSeq, "list", "list")

    def _node(self, parent: Any, key: str, path: str, required: bool, kind: type[N], what: str,
              add: str) -> Optional[N]:
        """The ``kind`` node under ``key``: empty when the key has no value, None (and an error when
        it is ``required`` or of another type) when absent or wrong; mappings and lists alike."""
        if parent is None or key not in parent:
            if required:
                self.error(self.src.of(parent), path, f"missing; add a `{key}:` {add}", MISSING)
            return None
        v = parent[key]
        if v is None:
            return kind()
        if not isinstance(v, kind):
            self.error(self.src.value(parent, key), path, f"expected a {what}, got {_type_name(v)}", WRONG_TYPE)
            return None
        return v

    def known_keys(self, node: Any, path: str, allowed: Iterable[str]) -> None:
        """Unknown keys are errors with a did-you-mean (a typo must never be silently ignored)."""
        if not isinstance(node, YamlMap):
            return
        allowed = list(allowed)
        for k in node:
            if k in allowed:
                continue
            shown = (str(k) if len(str(k)) <= 64 else short(str(k))) if isinstance(k, (str, int)) \
                else f"({_type_name(k)} as a key)"
            close = difflib.get_close_matches(str(k)[:64], allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(sorted(allowed))
            self.error(self.src.key(node, k), _join(path, shown), f"unknown key; {hint}", UNKNOWN_KEY)

    # -- scalars -----------------------------------------------------------------------------
    def value(self, node: Any, key: str, path: str, default: Any = _MISSING) -> Any:
        if node is None or key not in node or node[key] is None:
            if default is _MISSING:
                self.error(self.src.of(node) if node is not None else None, _join(path, key),
                           f"missing; set `{key}:`", MISSING)
                return None
            return default
        return node[key]

    def string(self, node: Any, key: str, path: str, default: Any = _MISSING,
               pattern: Optional[re.Pattern[str]] = None, hint: str = "", max_len: int = MAX_TEXT) -> Any:
        """Text: one printable line of at most ``max_len`` characters, matching ``pattern``."""
        v = self.value(node, key, path, default)
        if v is None or v is default:
            return v
        fallback = default if default is not _MISSING else None
        text = self._text(v, (node, key), _join(path, key), pattern, hint, max_len)
        return fallback if text is None else text

    def _text(self, v: Any, at: tuple[Any, Any], field: str,
              pattern: Optional[re.Pattern[str]], hint: str, max_len: int) -> Optional[str]:
        """The checks every string value passes, wherever it sits: ``at`` is (mapping, key) or
        (list, index); its position and source text are looked up only when needed."""
        seq = isinstance(at[0], YamlSeq)

        def loc() -> Optional[Location]:
            return self.src.item(*at) if seq else self.src.value(*at)
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.error(loc(), field, f"expected a string, got {_type_name(v)}", WRONG_TYPE)
            return None
        if isinstance(v, int):
            raw = self.src.raw_item(*at) if seq else self.src.raw_value(*at)
            if raw != str(v):
                self.error(loc(), field, f"YAML reads `{raw}` as the number {v}; put the text in quotes "
                           f"(\"{raw}\") if that is what you mean", NUMBER_TEXT)
                return None
            v = str(v)
        problem = text_problem(v, max_len)
        if problem:
            self.error(loc(), field, f"{short(v)} {problem}", BAD_TEXT)
            return None
        if pattern is not None and not pattern.fullmatch(v):
            self.error(loc(), field, f"{short(v)} is not valid; {hint}", BAD_VALUE)
            return None
        return str(v)

    def integer(self, node: Any, key: str, path: str, default: Any = _MISSING,
                lo: Optional[int] = None, hi: Optional[int] = None, why: str = "") -> Any:
        v = self.value(node, key, path, default)
        if v is None or v is default:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            self.error(self.src.value(node, key), _join(path, key),
                       f"expected a whole number, got {_type_name(v)}"
                       + (f" {short(v)}" if isinstance(v, (str, float)) else ""), WRONG_TYPE)
            return default if default is not _MISSING else None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.error(self.src.value(node, key), _join(path, key),
                       f"{short(v)} is out of range; use {rng}{why}", OUT_OF_RANGE)
            return default if default is not _MISSING else None
        return int(v)

    def boolean(self, node: Any, key: str, path: str, default: bool = False) -> bool:
        v = self.value(node, key, path, default)
        if isinstance(v, bool):
            return v
        self.error(self.src.value(node, key), _join(path, key), f"expected true or false, got {short(v)}",
                   WRONG_TYPE)
        return default

    def choice(self, node: Any, key: str, path: str, choices: Iterable[str], default: Any = _MISSING) -> Any:
        choices = list(choices)
        v = self.string(node, key, path, default)
        if v is None or v is default or v in choices:
            return v
        close = difflib.get_close_matches(v[:64], choices, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else "use one of: " + ", ".join(choices)
        self.error(self.src.value(node, key), _join(path, key), f"{short(v)} is not allowed; {hint}",
                   NOT_ALLOWED)
        return default if default is not _MISSING else None

    def strings(self, node: Any, key: str, path: str, default: tuple[str, ...] = (),
                max_len: int = MAX_TEXT) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a one-element list."""
        if node is None or key not in node or node[key] is None:
            return default
        v = node[key]
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            one = self.string(node, key, path, None, max_len=max_len)
            return (one,) if one is not None else ()
        if not isinstance(v, YamlSeq):
            self.error(self.src.value(node, key), _join(path, key), f"expected a list, got {_type_name(v)}",
                       WRONG_TYPE)
            return default
        out = []
        for i, item in enumerate(v):
            text = self._text(item, (v, i), f"{_join(path, key)}[{i}]", None, "", max_len)
            if text is not None:
                out.append(text)
        return tuple(out)

    def parsed(self, node: Any, key: str, path: str, parse: Callable[[str], T], what: str,
               default: Any = _MISSING) -> Any:
        """A string converted by ``parse`` (e.g. an IP network); ValueError becomes a diagnostic."""
        v = self.string(node, key, path, default)
        if v is None or v is default:
            return v
        try:
            return parse(v)
        except ValueError as exc:
            self.error(self.src.value(node, key), _join(path, key), f"{short(v)} is not {what} ({exc})",
                       BAD_VALUE)
            return default if default is not _MISSING else None

    def host(self, node: Any, key: str, path: str, default: Any = _MISSING) -> Any:
        v = self.string(node, key, path, default)
        if v is None or v is default:
            return v
        if is_host(v):
            return v
        self.error(self.src.value(node, key), _join(path, key),
                   f"{short(v)} is neither an IP address nor a host name", BAD_VALUE)
        return default if default is not _MISSING else None


__all__ = ["Reader", "is_ip"]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
