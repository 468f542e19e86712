"""The one place that decides how UCI names and values are checked and quoted.

Rules follow libuci (`util.c`: ``uci_validate_str``/``uci_validate_text``); quoting follows what
``uci export``/``uci show`` write, so text we generate is byte-identical to what a router writes.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9_]+")
_PACKAGE = re.compile(r"[A-Za-z0-9_-]+")
_TYPE = re.compile(r"[\x21-\x7e]+")


def uci_escape(text: str) -> str:
    """``'`` spelled ``'\\''``, nothing else: how libuci writes a section type (escaped, not quoted)."""
    return text.replace("'", "'\\''")


def uci_quote(value: str) -> str:
    """Single-quote ``value`` for a UCI file, a delta file or a ``uci batch`` line."""
    return "'" + uci_escape(value) + "'"


def valid_name(s: str) -> bool:
    """Section and option names: ``[A-Za-z0-9_]+`` (no ``-``, no ``.``)."""
    return _NAME.fullmatch(s) is not None


def valid_package(s: str) -> bool:
    """Package (config file) names: ``[A-Za-z0-9_-]+``."""
    return _PACKAGE.fullmatch(s) is not None


def valid_type(s: str) -> bool:
    """Section types: any printable non-space ASCII, at least one character."""
    return _TYPE.fullmatch(s) is not None


def valid_text(s: str) -> bool:
    """libuci's ``uci_validate_text``: no control character below 32 except TAB, LF, CR."""
    return all(ord(c) >= 32 or c in "\t\n\r" for c in s)


def valid_value(s: str) -> bool:
    """A value mwanctl may emit: libuci accepts it and it can be sent as UTF-8."""
    return valid_text(s) and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
