"""The one function that quotes a word for a POSIX (busybox ash) command line."""

from __future__ import annotations

import re

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def sh_quote(s: str) -> str:
    """Quote ``s`` so that the shell passes it through as exactly one argument.

    Words made only of characters no shell treats specially are left bare (readable logs);
    everything else is single-quoted, with ``'`` spelled ``'\\''``.
    """
    if _SAFE.fullmatch(s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"
