"""The contract every transport fulfils (napalm's load/compare/commit/confirm/rollback, split so
that the pure planner in ``mwanctl.deploy`` computes everything and the transport only executes).

Round trips matter: a router may sit behind a slow LTE link. ``read_state`` is one round trip,
``apply`` one, ``confirm`` one (on a *fresh* connection, proving the router is still reachable).

Everything every transport must agree on is defined here once: what each operation means and
which errors it raises (``Transport``), the receipt an apply hands to its confirm (``Receipt``),
the read-only probes (``PROBES``), the WireGuard peer check and its retry policy (``PEER_CHECK_*``,
``Transport._check_peers``), who applies (``deploy_owner``) and how secrets are kept out of
messages (``mask_secrets``). The contract suite, tests/test_transport_contract.py, runs the same
cases against ssh, ubus and local.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from mwanctl.errors import ApplyError, CommandError

# The plain data the contract carries lives in mwanctl.router (the pure planner's input and
# output too); re-exported here, where every transport and its tests look for it.
from mwanctl.router import SECRET_OPTIONS as SECRET_OPTIONS
from mwanctl.router import ApplyPlan as ApplyPlan
from mwanctl.router import Pending as Pending
from mwanctl.router import RouterState as RouterState
from mwanctl.wgdump import missing_peers


@dataclass
class Counters:
    """Measured by every transport, printed by bench/deploy.py."""

    round_trips: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class Receipt:
    """What an apply hands to its confirm: which apply, on which router, until when.

    ``token`` identifies the apply on the router (ssh: the token in the router's lock dir; ubus:
    the rpcd session that applied; local: the token in the pending record), so a confirm never
    confirms somebody else's apply. ``deadline`` is ``time.monotonic()`` on this machine by which
    the router restores its old config by itself (the router's own clock decides; this one is
    for messages). ``armed`` is False when the apply turned out to change nothing, so there is
    nothing to confirm. A receipt confirms once.
    """

    router: str
    transport: str           # "ssh" | "ubus" | "local"
    token: str
    timeout: int             # the confirm timeout the apply armed, in seconds
    deadline: float          # time.monotonic() when the router's rollback is due
    armed: bool = True
    confirmed: bool = False

    @classmethod
    def armed_now(cls, router: str, transport: str, token: str, timeout: int) -> "Receipt":
        return cls(router, transport, token, int(timeout), time.monotonic() + int(timeout))

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


def to_confirm(receipt: Receipt | None) -> bool:
    """Whether ``confirm`` has anything to do: not for an apply that changed nothing (no rollback
    was armed); a receipt confirms once, so using it twice is the caller's bug (ValueError)."""
    if receipt is not None and not receipt.armed:
        return False
    if receipt is not None and receipt.confirmed:
        raise ValueError("this receipt was already confirmed")
    return True


def rolled_back_late(router: str, receipt: Receipt | None) -> str:
    """Why a confirm found its apply gone, in every transport's words: the router restored its old
    config by itself (how late the confirm came, when it came after the deadline)."""
    late = -receipt.seconds_left() if receipt else 0.0
    when = f" ({late:.0f} s after its {receipt.timeout} s deadline)" if receipt and late > 0 else ""
    return f"{router}: rolled back by the router before the confirm arrived{when}: it is on its old config"


# The read-only probes of ``Transport.query``: name -> what it returns (raw text).
PROBES: Mapping[str, str] = {
    "mwan3_status": "`ubus call mwan3 status` (JSON)",
    "wg_dump": "`wg show all dump`, private keys replaced by (hidden)",
    "wan_status": "`ubus call network.interface.wan status` (JSON)",
    "uptime": "/proc/uptime",
    "epoch": "the router's clock, `date +%s`, to age WireGuard handshakes against",
    "tracker": "mwanctl's handover tracker: `== <iface>` then its state file, per uplink",
    "dns": "dnsmasq's upstreams as it runs them, mwan3's rules, and whether each answers (mwanctl/dnsview.py)",
    "ip_addr": "`ip -o addr show`: live addresses, to compare with the config after a deploy",
    "ip_link": "`ip -o link show`: live MTUs",
    # the protocols netifd registered (JSON, one key each): before a `wan:` block's section is
    # written, its proto must be there (a missing handler leaves the interface INVALID_PROTO)
    "proto_handlers": "`ubus call network get_proto_handlers` (JSON)",
    # every netifd interface's state (JSON): after a deploy changed an uplink's WAN, is it up?
    "iface_dump": "`ubus call network.interface dump` (JSON)",
}


def check_probes(names: Sequence[str]) -> None:
    """The one place that refuses an unknown probe name (a programming error: ValueError)."""
    for n in names:
        if n not in PROBES:
            raise ValueError(f"unknown probe {n!r} (known: {', '.join(PROBES)})")


# The WireGuard peer check after an apply: netifd needs a moment after `ifup` before `wg` shows
# the peers, so the check polls. One policy for every transport (apply.sh gets it as arguments).
PEER_CHECK_TRIES = 10
PEER_CHECK_PAUSE = 1.0   # seconds between tries
# How long a renewed device may take to show its new key: netifd runs wireguard.sh's renew as a
# process of its own after answering the ubus call (movepeer.sh gets it as MW_WAIT; key rotation
# waits as long where a transport cannot wait on the router).
RENEW_WAIT = 10


def deploy_owner() -> str:
    """Who applies, as every transport leaves it with a pending deploy (``user@host pid N``): what
    another operator's refused deploy and ``status`` name."""
    try:
        user = os.getlogin()
    except OSError:
        user = os.environ.get("USER", "?")
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def move_peer_steps(iface: str, peer: str, allowed_ips: Sequence[str], endpoint: Optional[str],
                    remove: Optional[str]) -> list[list[str]]:
    """The ``wg`` argument lists of :meth:`Transport.move_peer_live`, to run in order, every value
    checked to its grammar (interface name, base64 key, IP networks, ``ip:port``) before it
    reaches ``wg``.

    Two steps, not one: wireguard-go starts a peer it creates only after it has read all of that
    peer's settings (device/uapi.go), and drops a packet routed to a peer not started yet
    (device/send.go), so a peer created with allowed IPs in one ``wg set`` is a short blackhole
    for them (a packet lost now and then; tests/test_peer_swap_netns.py makes the window long).
    Created first (with its endpoint), it is running when the second step moves the allowed IPs
    over to it. A peer without an endpoint gets one step:
    it could send nothing before the other end's handshake anyway, and rotation moves only the
    mother's peers, which dial (the shipped rpcd ACL allows exactly these forms)."""
    head = ["set", _checked(_IFACE_RE, iface, "interface"), "peer", _checked(_PUBKEY_RE, peer, "public key")]
    create = [*head, "endpoint", _checked(_ENDPOINT_RE, endpoint, "endpoint")] if endpoint else []
    try:
        nets = [str(ipaddress.ip_network(a, strict=False)) for a in allowed_ips]
    except ValueError as e:
        raise CommandError(f"not a valid allowed IP for wg: {e}") from None
    move = [*head, "allowed-ips", ",".join(nets)] if nets else []
    if remove:
        move = [*(move or head), "peer", _checked(_PUBKEY_RE, remove, "public key"), "remove"]
    return [s for s in (create, move) if s] or [head]


_IFACE_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_PUBKEY_RE = re.compile(r"^[A-Za-z0-9+/]{42,43}=?$")
_ENDPOINT_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")   # as `wg show` prints


def _checked(rx: re.Pattern[str], value: str, what: str) -> str:
    if not rx.match(value):
        raise CommandError(f"not a valid {what} for wg: {value!r}")
    return value


_SECRET_LINE = re.compile(r"^(\s*option\s+'?(?:private_key|preshared_key|password|pincode)'?\s+).*$", re.M)


def mask_value(option: str | None, value: object) -> object:
    """A value as it may appear in a message: secrets never do."""
    return "<hidden>" if option in SECRET_OPTIONS and value is not None else value


def mask_secrets(text: str) -> str:
    """UCI text (export or file) with the values of secret options replaced by <hidden>."""
    return _SECRET_LINE.sub(lambda m: m.group(1) + "<hidden>", text)


class Transport(ABC):
    """One router. The contract every transport fulfils, proven on each by the contract suite.

    Errors: ``ApplyError`` — the router is on its old config (nothing was committed, or the
    change was rolled back at once). ``ApplyInterrupted`` — the apply was sent but its answer was
    lost: the router ends on its old config by the confirm timeout. Any ``TransportError`` from
    ``apply`` means nothing was sent that could change the router (connect, login, permission).
    ``ConfirmError`` — the router could not be reached to confirm: it rolls back by itself.
    ``RolledBack`` (a ``ConfirmError``) — the router answered: this apply is no longer pending.
    """

    kind = "?"   # "ssh" | "ubus" | "local": the receipt's transport

    def __init__(self, router: str, owner: str | None = None):
        self.router = router
        self.owner = owner or deploy_owner()
        self.counters = Counters()
        self.peer_check_tries, self.peer_check_pause = PEER_CHECK_TRIES, PEER_CHECK_PAUSE

    @abstractmethod
    def read_state(self, packages: Sequence[str]) -> RouterState:
        """Read the named config packages as committed, and any pending apply (one round trip)."""

    @abstractmethod
    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        """Atomically apply ``plan`` and arm the router-side rollback; return the receipt.

        Takes the router's deploy lock (refusing with ``ApplyError`` "... pending ..." while
        another apply, from any session, awaits its confirm), snapshots the touched files, stages
        the ops, verifies the staged result equals ``plan.expected``, commits, arms a timer that
        restores the snapshot after ``confirm_timeout`` seconds unless confirmed (it survives
        the connection ending), reloads ``plan.reload``, restarts ``plan.restart_ifaces``, renews
        ``plan.renew_ifaces`` (a rollback renews them again) and checks ``plan.check_peers`` as
        ``_check_peers`` does; a failure after the commit restores the snapshot at once and raises
        ``ApplyError``. Messages never show secrets.
        """

    @abstractmethod
    def confirm(self, receipt: Receipt | None = None) -> None:
        """From a fresh connection: keep the change of the apply ``receipt`` names.

        The router decides: if that apply is no longer pending (its deadline passed, it was rolled
        back, another apply replaced it) this raises ``RolledBack`` and the router is on its old
        config; if the router cannot be reached, ``ConfirmError``. Without a receipt (the
        ``mwanctl confirm`` command) it confirms whatever apply is pending there, and raises
        ``RolledBack`` when none is.
        """

    @abstractmethod
    def rollback(self) -> bool:
        """Restore the pending apply's snapshot now and reload; False when nothing was pending.

        Over ubus only the rpcd login that applied may roll back (``CommandError`` otherwise)."""

    @abstractmethod
    def query(self, names: Sequence[str]) -> dict[str, str]:
        """Run read-only status probes (names from ``PROBES``) in one round trip; raw text by
        name. A probe that fails returns its error text prefixed with "ERROR: "."""

    def rehandshake(self, peers: dict[str, list[str]]) -> None:
        """Start a new WireGuard session with these peers now (iface -> peer public keys): the
        peer is removed and ``renew`` puts it back from the config. For the end that dials (the
        mother) after the other end rebuilt its device: otherwise it keeps sending on the old
        session for ~15 s."""
        raise NotImplementedError(f"{type(self).__name__} cannot ask for a new handshake")

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

    #: whether :meth:`move_peer_live` is there (key rotation then renews without the gap)
    can_move_peer_live = False

    def move_peer_live(self, iface: str, peer: str, allowed_ips: Sequence[str],
                       endpoint: Optional[str] = None, remove: Optional[str] = None,
                       renew: bool = False, key: Optional[str] = None) -> Optional[int]:
        """``wg set`` on the live device, no config change (:func:`move_peer_steps`): ``peer`` is
        added (or updated) with ``endpoint``, then given ``allowed_ips``, then peer ``remove`` (if
        given) is removed; with
        ``renew``, ``iface`` is renewed right after in the same round trip, and this session's
        pending apply (which must exist: ``CommandError`` otherwise, nothing done) renews it on
        rollback too.

        Why: WireGuard moves an allowed IP from the peer holding it to a running ``peer`` in one
        step, so no packet finds no peer; a renew's `wg syncconf` instead removes a peer that left the config
        before it adds its successor (10-20 ms without a peer in wireguard-go). Key rotation
        brings the mother's committed new keys live this way (new peer first, then the renew,
        which only drops the old peer), and uses ``remove`` to put the old peer back when the
        renew did not run. Any renew (a rollback's too) makes the device equal to the config
        again, so a moved peer never outlives a rollback. ``CommandError`` on failure.

        ``key`` (with ``renew``): the router's own new public key. netifd answers ``renew`` before
        its handler runs, so a transport that can waits on the router until the device has taken
        ``key`` and returns the port it listens on then; None means it did not wait (the caller
        must, before it brings the other end live)."""
        raise NotImplementedError(f"{type(self).__name__} cannot change a live WireGuard peer")

    @abstractmethod
    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        """Take an mwan3 interface out of (or back into) use at run time, without a config edit
        (`mwan3 ifdown/ifup <iface>`): the mwan3 package is not touched, so mwan3 does not restart.

        ``forget``: addresses (the tunnel's own, which the LAN is NATed to) whose connection-tracking
        entries are deleted after draining. Without it, flows already on the interface stay pinned
        to it by conntrack (pitfalls: "connection tracking keeps flows on the uplink they started
        on"); with it, their next packet is routed again, over the remaining uplinks."""

    def _check_peers(self, check: Mapping[str, Sequence[str]]) -> None:
        """After an apply: poll ``wg show all dump`` until every expected peer (iface -> keys) is
        live, ``peer_check_tries`` times ``peer_check_pause`` apart (apply.sh does the same on the
        router for SSH); ``ApplyError`` naming the missing ones when they never show."""
        if not check:
            return
        missing: list[str] = []
        tries = max(1, self.peer_check_tries)
        for attempt in range(tries):
            dump = self.query(["wg_dump"])["wg_dump"]
            if dump.startswith("ERROR: "):
                raise CommandError(f"{self.router}: cannot read WireGuard state: {dump[7:]}")
            missing = missing_peers(dump, self.router, check)
            if not missing:
                return
            if attempt + 1 < tries:
                time.sleep(self.peer_check_pause)
        raise ApplyError(f"{self.router}: WireGuard peers missing after apply: {', '.join(missing)}")

    def close(self) -> None:  # noqa: B027 - a transport without connections has nothing to release
        """Release connections."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
