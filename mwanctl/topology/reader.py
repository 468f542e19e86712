"""Typed reads from a YAML mapping that record a Diagnostic instead of raising.

Every getter returns a usable value (the default when the input is wrong), so the loader can
continue and report *all* problems in one run.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any, Callable, Iterable, Optional, TypeVar

from mwanctl.errors import Diagnostic, Location
from mwanctl.topology.source import CommentedMap, CommentedSeq, Source

T = TypeVar("T")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_MISSING = object()


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "a number"
    if isinstance(v, float):
        return "a decimal number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, CommentedSeq)):
        return "a list"
    if isinstance(v, (dict, CommentedMap)):
        return "a mapping"
    if v is None:
        return "nothing"
    return type(v).__name__


class Reader:
    """Collects diagnostics while reading values out of one Source."""

    def __init__(self, source: Source):
        self.src = source
        self.diags: list[Diagnostic] = []

    # -- reporting ---------------------------------------------------------------------------
    def error(self, loc: Optional[Location], field: str, msg: str) -> None:
        self.diags.append(Diagnostic(loc, field, msg))

    def warn(self, loc: Optional[Location], field: str, msg: str) -> None:
        self.diags.append(Diagnostic(loc, field, msg, severity="warning"))

    # -- structure ---------------------------------------------------------------------------
    def mapping(self, parent: Any, key: str, path: str, required: bool = False) -> Optional[CommentedMap]:
        """The mapping under ``key`` (None when absent or wrong)."""
        if parent is None or key not in parent:
            if required:
                self.error(self.src.of(parent), path, f"missing; add a `{key}:` section")
            return None
        v = parent[key]
        if v is None:
            return CommentedMap()
        if not isinstance(v, CommentedMap):
            self.error(self.src.value(parent, key), path, f"expected a mapping, got {_type_name(v)}")
            return None
        return v

    def seq(self, parent: Any, key: str, path: str, required: bool = False) -> Optional[CommentedSeq]:
        if parent is None or key not in parent:
            if required:
                self.error(self.src.of(parent), path, f"missing; add a `{key}:` list")
            return None
        v = parent[key]
        if v is None:
            return CommentedSeq()
        if not isinstance(v, CommentedSeq):
            self.error(self.src.value(parent, key), path, f"expected a list, got {_type_name(v)}")
            return None
        return v

    def known_keys(self, node: Any, path: str, allowed: Iterable[str]) -> None:
        """Unknown keys are errors with a did-you-mean (a typo must never be silently ignored)."""
        if not isinstance(node, CommentedMap):
            return
        allowed = list(allowed)
        for k in node:
            if k in allowed:
                continue
            close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(sorted(allowed))
            self.error(self.src.key(node, k), _join(path, str(k)), f"unknown key; {hint}")

    # -- scalars -----------------------------------------------------------------------------
    def value(self, node: Any, key: str, path: str, default: Any = _MISSING) -> Any:
        if node is None or key not in node or node[key] is None:
            if default is _MISSING:
                self.error(self.src.of(node) if node is not None else None, _join(path, key),
                           f"missing; set `{key}:`")
                return None
            return default
        return node[key]

    def string(self, node: Any, key: str, path: str, default: Any = _MISSING,
               pattern: Optional[re.Pattern[str]] = None, hint: str = "") -> Any:
        v = self.value(node, key, path, default)
        if v is None or v is default:
            return v
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.error(self.src.value(node, key), _join(path, key), f"expected a string, got {_type_name(v)}")
            return default if default is not _MISSING else None
        v = str(v)
        if pattern is not None and not pattern.fullmatch(v):
            self.error(self.src.value(node, key), _join(path, key), f"{v!r} is not valid; {hint}")
            return default if default is not _MISSING else None
        return v

    def integer(self, node: Any, key: str, path: str, default: Any = _MISSING,
                lo: Optional[int] = None, hi: Optional[int] = None, why: str = "") -> Any:
        v = self.value(node, key, path, default)
        if v is None or v is default:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            self.error(self.src.value(node, key), _join(path, key),
                       f"expected a whole number, got {_type_name(v)} {v!r}")
            return default if default is not _MISSING else None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.error(self.src.value(node, key), _join(path, key),
                       f"{v} is out of range; use {rng}{why}")
            return default if default is not _MISSING else None
        return int(v)

    def boolean(self, node: Any, key: str, path: str, default: bool = False) -> bool:
        v = self.value(node, key, path, default)
        if isinstance(v, bool):
            return v
        self.error(self.src.value(node, key), _join(path, key), f"expected true or false, got {v!r}")
        return default

    def choice(self, node: Any, key: str, path: str, choices: Iterable[str], default: Any = _MISSING) -> Any:
        choices = list(choices)
        v = self.string(node, key, path, default)
        if v is None or v is default or v in choices:
            return v
        close = difflib.get_close_matches(v, choices, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else "use one of: " + ", ".join(choices)
        self.error(self.src.value(node, key), _join(path, key), f"{v!r} is not allowed; {hint}")
        return default if default is not _MISSING else None

    def strings(self, node: Any, key: str, path: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a one-element list."""
        if node is None or key not in node or node[key] is None:
            return default
        v = node[key]
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return (str(v),)
        if not isinstance(v, CommentedSeq):
            self.error(self.src.value(node, key), _join(path, key), f"expected a list, got {_type_name(v)}")
            return default
        out = []
        for i, item in enumerate(v):
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                self.error(self.src.item(v, i), f"{_join(path, key)}[{i}]",
                           f"expected a string, got {_type_name(item)}")
                continue
            out.append(str(item))
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
            self.error(self.src.value(node, key), _join(path, key), f"{v!r} is not {what} ({exc})")
            return default if default is not _MISSING else None

    def host(self, node: Any, key: str, path: str, default: Any = _MISSING) -> Any:
        v = self.string(node, key, path, default)
        if v is None or v is default:
            return v
        if is_ip(v) or (_HOSTNAME.match(v) and not v.replace(".", "").isdigit()):
            return v
        self.error(self.src.value(node, key), _join(path, key),
                   f"{v!r} is neither an IP address nor a host name")
        return default if default is not _MISSING else None


def is_ip(v: str) -> bool:
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
