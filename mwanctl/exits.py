"""Exit codes, one IntEnum per command family: they are API (scripts and monitoring read them),
documented in the README's "Exit status" tables, which a test holds to these enums.

Every family shares 0 (success), 64 (bad command line, click's usage errors) and 130
(interrupted); the codes between are the family's own. A value never changes meaning.
"""

from __future__ import annotations

import enum


class BasicExit(enum.IntEnum):
    """``validate``, ``render``, ``graph``, ``keys show``, ``web``."""

    OK = 0
    ERROR = 1          # invalid topology, unreadable key store, a file that cannot be written safely
    USAGE = 64
    INTERRUPTED = 130


class DeployExit(enum.IntEnum):
    """``plan``, ``deploy``, ``confirm``, ``rollback``, ``keys rotate``: the worst router's outcome.

    Errors carry these (``MwanctlError.exit_status``), so any command that fails on an error
    exits with its code from this table (1 for everything that touches no router)."""

    OK = 0
    ERROR = 1          # before any router changed: topology, key store, options; `validate`: invalid
    CHANGES = 2        # `plan` / `deploy --dry-run`: there are changes to apply
    CONNECT = 4        # cannot connect or authenticate
    APPLY_FAILED = 5   # apply failed; the router is on its old config
    NOT_CONFIRMED = 6  # apply done (or interrupted) but not confirmed; the router rolls itself back
    ROLLED_BACK = 7    # the confirm came too late: the router had already restored its old config
    USAGE = 64         # bad command line
    INTERRUPTED = 130


class StatusExit(enum.IntEnum):
    """``status``: the monitoring-plugin convention (Nagios, Icinga, Zabbix, Checkmk read it)."""

    OK = 0             # every uplink interface online, no error
    WARNING = 1        # degraded
    CRITICAL = 2       # no uplink carries a balanced family's traffic
    UNKNOWN = 3        # the state cannot be told
    USAGE = 64
    INTERRUPTED = 130


# Which family each command (as typed after `mwanctl`) belongs to.
FAMILY: dict[str, type[enum.IntEnum]] = {
    "validate": BasicExit, "render": BasicExit, "graph": BasicExit, "keys show": BasicExit,
    "web": BasicExit,
    "plan": DeployExit, "deploy": DeployExit, "confirm": DeployExit, "rollback": DeployExit,
    "keys rotate": DeployExit,
    "status": StatusExit,
}

__all__ = ["FAMILY", "BasicExit", "DeployExit", "StatusExit"]
