"""The contract every transport fulfils (napalm's load/compare/commit/confirm/rollback, split so
that the pure planner in ``mwanctl.deploy`` computes everything and the transport only executes).

Round trips matter: a router may sit behind a slow LTE link. ``read_state`` is one round trip,
``apply`` one, ``confirm`` one (on a *fresh* connection, proving the router is still reachable).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Optional, Sequence

from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage


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
    extra: dict[str, str] = field(default_factory=dict)  # raw outputs of extra read-only probes


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


@dataclass
class Counters:
    """Measured by every transport, printed by bench/deploy.py."""

    round_trips: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


class Transport(ABC):
    """One router. Methods raise ``mwanctl.errors.TransportError`` subclasses or ``ApplyError``."""

    def __init__(self, router: str):
        self.router = router
        self.counters = Counters()

    @abstractmethod
    def read_state(self, packages: Sequence[str]) -> RouterState:
        """Read the named config packages (one round trip)."""

    @abstractmethod
    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> None:
        """Atomically apply ``plan`` and arm the router-side rollback (one round trip).

        Takes the router's deploy lock (refusing if held), snapshots the touched files, stages the
        ops, verifies the staged result equals ``plan.expected`` byte for byte, commits, arms a
        timer that restores the snapshot after ``confirm_timeout`` seconds unless confirmed (it
        must survive the connection ending), reloads ``plan.reload`` and restarts
        ``plan.restart_ifaces``. Any failure before the commit leaves the old config and raises
        ``ApplyError``.
        """

    @abstractmethod
    def confirm(self) -> None:
        """From a fresh connection: disarm the rollback timer, drop the snapshot, release the lock."""

    @abstractmethod
    def rollback(self) -> None:
        """Restore the snapshot now (if a deploy is pending), reload, release the lock."""

    @abstractmethod
    def query(self, names: Sequence[str]) -> dict[str, str]:
        """Run read-only status probes in one round trip; returns raw text by probe name.

        Probe names: "mwan3_status" (`ubus call mwan3 status`), "wg_dump" (`wg show all dump`),
        "wan_status" (`ubus call network.interface.wan status`), "uptime" (/proc/uptime),
        "epoch" (the router's clock, `date +%s`, to age WireGuard handshakes against).
        A probe that fails returns its error text prefixed with "ERROR: ".
        """

    #: whether :meth:`rekey_live` is there (key rotation falls back to a plain apply without it)
    can_rekey_live = False

    def rekey_live(self, iface: str, peer: str, endpoint: Optional[str], keepalive: int = 0) -> bool:
        """Key rotation on an uplink: an apply that committed the tunnel's new keys but made nothing
        live (no reload, no restart, no renew) is pending; bring it live (netifd rebuilds the
        tunnel; the pending rollback is made to rebuild it too), wait for ``peer`` in ``wg``, then
        start the handshake now: ``endpoint`` (``host:port``) set live, persistent keepalive on
        until the handshake is there (WireGuard then sends at once), then back to ``keepalive``.
        True when the handshake was seen (always False without an endpoint)."""
        raise NotImplementedError(f"{type(self).__name__} cannot bring a rotation live")

    @abstractmethod
    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        """Take an mwan3 interface out of (or back into) use at run time, without a config edit
        (`mwan3 ifdown/ifup <iface>`): the mwan3 package is not touched, so mwan3 does not restart.

        ``forget``: addresses (the tunnel's own, which the LAN is NATed to) whose connection-tracking
        entries are deleted after draining. Without it, flows already on the interface stay pinned
        to it by conntrack (pitfalls: "connection tracking keeps flows on the uplink they started
        on"); with it, their next packet is routed again, over the remaining uplinks."""

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
