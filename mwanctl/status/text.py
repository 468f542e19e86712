"""Words and numbers as people read them in ``status``: durations, byte counts, a row's name and
state. Shared by the builder's problem messages and the renderers, so both say the same thing.
"""

from __future__ import annotations

from mwanctl.status.model import UplinkRow


def format_duration(seconds: int | float | None) -> str:
    """12s, 4m12s, 3h04m, 2d03h; "never" for None."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # unreachable, keeps type checkers calm


def row_label(row: UplinkRow) -> str:
    """The uplink's name, or "<name> IPv6" for a dual-stack tunnel's IPv6 side."""
    return row.label or row.name


def state_text(row: UplinkRow) -> str:
    """'offline for 4m12s', 'disconnecting for ~12s (2 of 3 failed rounds)'."""
    when = ""
    if row.since is not None:
        when = f" for {'~' if row.since_estimated else ''}{format_duration(row.since)}"
    if row.rounds is not None:
        kind = "failed" if row.state == "disconnecting" else "good"
        when += f" ({row.rounds[0]} of {row.rounds[1]} {kind} rounds)"
    return f"{row.state}{when}"


def handshake_text(row: UplinkRow, none: str = "-", ago: str = "") -> str:
    """The tunnel's last handshake as an age ("4m12s", with ``ago`` after it), "never", "?" (age
    unknown) or ``none`` (no tunnel or no peer): the table and the web page say the same."""
    if row.wg is None or row.wg.peer_public_key is None:
        return none
    if row.wg.latest_handshake is None:
        return "never"
    return f"{format_duration(row.wg.handshake_age)}{ago}" if row.wg.handshake_age is not None else "?"
