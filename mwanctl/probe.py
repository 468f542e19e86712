"""What every parser of a probe's raw text shares (``Transport.query`` hands them text).

One spelling of the error, so a user sees the same one line whichever fact could not be read:
``<router>: `<command>` <what was wrong>``. A probe that failed on the router comes as text
starting with ``"ERROR: "`` (see ``Transport.query``) and raises the same way.
"""

from __future__ import annotations

from mwanctl.errors import CommandError

PROBE_ERROR = "ERROR: "


def fail(router: str, command: str, what: str) -> CommandError:
    """One line, always: router, command, what was wrong (newlines folded away)."""
    what = " ".join(what.split())
    return CommandError(f"{router}: `{command}` {what}")


def check_probe(text: object, router: str, command: str) -> str:
    """``text`` itself when it is a probe's output; raises when it is not text or the probe failed."""
    if not isinstance(text, str):
        raise fail(router, command, f"returned {type(text).__name__}, not text")
    if text.startswith(PROBE_ERROR):
        raise fail(router, command, "failed: " + (text[len(PROBE_ERROR):].strip() or "no message"))
    return text
