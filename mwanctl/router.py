"""What is read from a router and what is sent to it, as plain data: the planner's input
(``RouterState``) and output (``ApplyPlan``), and the payloads of the transports' contract
(``mwanctl.transports.base``, which re-exports them). No I/O here, so the pure planner needs
nothing from the transports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage

# WireGuard keys, and the WAN secrets an uplink's `wan:` block writes (PPPoE/cellular `password`,
# the SIM's `pincode`): never printed, in plans, diffs or error messages (transports.base masks
# the same options in UCI text)
SECRET_OPTIONS = frozenset({"private_key", "preshared_key", "password", "pincode"})


@dataclass
class Pending:
    """A deploy that was applied but not yet confirmed (the router's rollback timer is armed)."""

    owner: str            # who applied it (free text: user@host, pid)
    since: int            # router uptime or epoch seconds when applied
    deadline: int         # seconds left before the router restores the old files (may be <= 0)


@dataclass
class RouterState:
    """What ``read_state`` learns in its single round trip."""

    packages: dict[str, UciPackage | None]   # None: /etc/config/<pkg> does not exist
    pending: Pending | None = None           # a previous apply awaiting confirmation (lock held)
    # Raw texts of what a transport learns besides the packages, each read by name:
    #   "last_rollback"   the router's record of its last rollback, "<epoch> <owner>" (ssh's
    #                     remote/lib.sh mw_restore; the local transport writes the same); absent
    #                     where no such record is kept (rpcd)
    #   "pending_timer"   with ``pending``: the rollback timer as the router reports it ("gone")
    #   "proto_handlers"  the netifd protocol handlers the router has (deploy's extra probe)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class ApplyPlan:
    """Everything a transport needs to apply one router's change, computed without I/O."""

    changes: dict[str, list[Op]]            # per package, in order
    expected: dict[str, str]                # per package: exact `uci export <pkg>` text after the ops
    reload: list[str] = field(default_factory=list)          # init scripts to reload, in order
    restart_ifaces: list[str] = field(default_factory=list)  # netifd ifaces to take down and up
    renew_ifaces: list[str] = field(default_factory=list)    # `ubus call network.interface.X renew`
    check_peers: dict[str, list[str]] = field(default_factory=dict)  # iface -> pubkeys `wg` must show
    # files besides /etc/config (the handover tracker): installed, symlinked, removed; the
    # router snapshots them with the config and restores them on rollback
    files: dict[str, str] = field(default_factory=dict)      # path -> text
    links: dict[str, str] = field(default_factory=dict)      # path -> symlink target
    remove: list[str] = field(default_factory=list)

    @property
    def packages(self) -> list[str]:
        return [p for p, ops in self.changes.items() if ops]


__all__ = ["SECRET_OPTIONS", "ApplyPlan", "Pending", "RouterState"]
