"""Key rotation: new WireGuard keys on both ends of a tunnel without losing traffic on real mwan3.

Why this order (facts: tests/vectors/mwan3/, netifd e97e36f, wireguard.sh, mwan3 2.12.2): every
mwan3 event (`mwan3 ifdown/ifup`, netifd's ifdown/ifup hotplug of a restarted interface) rebuilds
the policy chain from empty, which loses new flows, and netifd's ifup after a restart puts a
drained tunnel back before its new handshake. So the mother never restarts its tunnel and mwan3
is never told anything: the tunnel keeps carrying traffic, and what the mother sends while the
two ends disagree is held by WireGuard (queued for the peer until its session exists), not lost.

Per tunnel, one at a time:
  1. new pairs for both ends are written to the store as ``pending`` (before any router changes);
     the mother's address as the uplink sees it is read (the uplink's learned endpoint);
  2. the uplink's new keys are committed with its rollback armed, nothing live yet;
  3. the mother gets its new keys live (uci commit, ``renew`` = wireguard.sh's `wg syncconf` on
     the same device; no network reload, which would restart it because private_key is a
     declared parameter): from now on what it sends into the tunnel waits for the new session.
     Just before the renew, in the same round trip, the uplink's new peer is put on the live
     device with the tunnel's allowed IPs (WireGuard moves them from the old peer in one step):
     `wg syncconf` removes a peer that left the config before adding its successor, and a
     packet sent in between met no peer (10-20 ms in wireguard-go). netifd answers the renew
     before it runs wireguard.sh's renew, so the mother's device is then watched until it holds
     its new key (the ssh transport does it on the router, in the same round trip), and its
     listen port is read after that;
  4. only then, at once, the uplink's keys go live (network reload: netifd rebuilds its tunnel; an uplink runs no
     mwan3) and the uplink starts the handshake (its new peer entry has no endpoint, and the
     mother's own first try, refused by the old keys, is retried only after ~5 s);
  5. a handshake on the new keys seen from the mother, then both routers are confirmed (uplink
     first) and ``pending`` becomes ``current``. Until confirmed, each router rolls back by
     itself (the mother by renew again, still without a restart).
The store is never behind the routers: every key a router might hold is stored (``current`` until
promotion, ``pending`` from before the first change). Running the command again after any failure
looks at which key each end holds and finishes the rotation.

Left open (said in the README): netifd keeps the mother's old private key in its own copy of the
interface config, so the next `network reload` on the mother that reads it restarts the rotated
tunnels once (mwan3 rebuilds then). Over ubus the uplink cannot be asked to start the handshake:
the mother's retry completes it after ~5 s, and queued traffic waits that long.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from mwanctl.compile import Compiled, compile_site
from mwanctl.compile.templates import Templates
from mwanctl.deploy import one_line
from mwanctl.errors import ApplyError, ApplyInterrupted, ConfirmError, MwanctlError, TransportError
from mwanctl.facts import parse_wg_dump
from mwanctl.keys import ENDS, KeyStore, generate, parse_time
from mwanctl.plan import plan_router
from mwanctl.topology.model import Topology, Uplink
from mwanctl.transports.base import RENEW_WAIT, Receipt, RouterState, Transport

Connect = Callable[[str], Transport]
Say = Callable[[str], None]

# The new keys count as working when the mother shows a handshake with the uplink's new key at
# most this old (by the mother's clock): WireGuard renews a session that carries traffic every
# REKEY_AFTER_TIME, 120 s, so an older stamp (say, from an earlier attempt with the same pending
# keys) proves nothing about the session now.
FRESH_HANDSHAKE = 120

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RotateError(MwanctlError):
    pass


def parse_age(text: str) -> _dt.timedelta:
    """`90d`, `12h`, `2w`, ... for --older-than."""
    m = _DURATION.match(text.strip())
    if not m:
        raise RotateError(f"cannot read the age {text!r}; use a number and a unit: 90d, 12h, 2w")
    return _dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def due(store: KeyStore, names: list[str], older_than: Optional[_dt.timedelta],
        now: _dt.datetime) -> list[str]:
    """Tunnels to rotate: all, or those whose oldest current key is older than the limit; a
    tunnel with an unfinished rotation (pending keys) is always due."""
    out = []
    for n in names:
        if any(store.pair(n, end, "pending") for end in ENDS):
            out.append(n)
            continue
        if older_than is None:
            out.append(n)
            continue
        created = [parse_time(p.created) for end in ENDS if (p := store.pair(n, end)) is not None]
        if created and now - min(created) >= older_than:
            out.append(n)
    return out


@dataclass(frozen=True)
class _Moved:
    """What :meth:`Rotation._bring_live_mother` changes on the mother's live device, and how to undo it."""

    old_peer: str
    old_ips: tuple[str, ...]
    old_endpoint: Optional[str]
    new_peer: str
    new_ips: tuple[str, ...]
    own_public: str      # the mother's public key before its renew


class _LiveFailed(MwanctlError):
    """The mother's apply is committed and armed, but bringing it live failed."""


@dataclass
class TunnelResult:
    uplink: str
    status: str            # "rotated" | "failed"
    message: str = ""
    seconds: float = 0.0


@dataclass
class Rotation:
    topology: Topology
    store: KeyStore
    connect: Connect
    templates: Templates = field(default_factory=Templates)
    confirm_timeout: int = 90
    handshake_timeout: float = 40.0
    say: Say = lambda msg: None
    clock: Callable[[], float] = time.time
    # the mother's listen port after its renew, as its transport reported it (one tunnel at a time)
    _mother_port: Optional[int] = field(default=None, init=False, repr=False)

    # -- store ---------------------------------------------------------------------------------
    def _start(self, name: str) -> None:
        """Pending keys exist for both ends and are on disk before any router is touched."""
        changed = False
        for end in ENDS:
            if self.store.pair(name, end, "pending") is None:
                self.store.set_pair(name, end, "pending", generate())
                changed = True
        if changed:
            self.store.save()

    def _promote(self, name: str) -> None:
        for end in ENDS:
            new = self.store.pair(name, end, "pending")
            if new is not None:
                self.store.set_pair(name, end, "current", new)
                self.store.set_pair(name, end, "pending", None)
        self.store.save()

    def _compiled(self, pending_for: str) -> Compiled:
        names = [u.name for u in self.topology.uplinks]
        keys = self.store.material(names)
        pending = self.store.material([pending_for], use="pending")
        keys[pending_for] = pending[pending_for]
        return compile_site(self.topology, keys, self.templates)

    # -- one tunnel ----------------------------------------------------------------------------
    def rotate(self, u: Uplink) -> TunnelResult:
        start = self.clock()
        self._mother_port = None
        try:
            for router, peer_end in ((u.name, "mother"), (self.topology.mother.name, "uplink")):
                self._check_deployed(u, router, peer_end)
        except MwanctlError as exc:
            return TunnelResult(u.name, "failed", f"{exc}; nothing was changed", self.clock() - start)
        self._start(u.name)
        mother = self.topology.mother.name
        armed: list[tuple[str, Transport, Receipt]] = []   # router, open connection, what to confirm
        first_armed: Optional[float] = None
        try:
            compiled = self._compiled(u.name)
            host = self._mother_seen_by_uplink(u)
            t_up = self.connect(u.name)
            deferred = t_up.can_rekey_live
            t_up.close()
            if deferred:    # the uplink's new keys committed and armed, not live yet
                first_armed = time.monotonic()
                a = self._apply_keys(compiled, u.name, u, "deferred")
                if a is not None:
                    armed.append((u.name, *a))
            first_armed = first_armed if armed else time.monotonic()
            a = self._apply_keys(compiled, mother, u, "live")
            if a is not None:
                armed.append((mother, *a))
            if not deferred:   # plain apply: netifd restarts the tunnel; the mother's retry finds it
                a = self._apply_keys(compiled, u.name, u, "restart")
                if a is not None:
                    armed.append((u.name, *a))
            up = next((t for r, t, _ in armed if r == u.name), None)
            if deferred and up is not None:
                self._bring_live(compiled, u, up, host, next((t for r, t, _ in armed if r == mother), None))
            # confirm (a fresh connection each, a few seconds) before the first window closes
            self._wait_handshake(u, first_armed + self.confirm_timeout - 10 if armed and first_armed else None)
            for router, _, receipt in sorted(armed, key=lambda a: a[0] != u.name):   # uplink first
                self._confirm(router, receipt)
            self._promote(u.name)
        except MwanctlError as exc:
            return TunnelResult(u.name, "failed", f"{exc}; the pending keys are kept"
                                + (f" (unconfirmed changes roll back by themselves within "
                                   f"{self.confirm_timeout} s)" if armed else "")
                                + ": run `mwanctl keys rotate` again to finish", self.clock() - start)
        finally:
            for _, t, _ in armed:
                t.close()
        return TunnelResult(u.name, "rotated", "new keys on both ends, handshake seen",
                            self.clock() - start)

    def _check_deployed(self, u: Uplink, router: str, peer_end: str) -> None:
        """Refuse, before any key is made or sent, a tunnel the router does not run with the key
        store's keys (its device missing, or no peer with the other end's current or pending
        public key): rendering makes keys without deploying them, and rotating then would fail
        half-way with wg's "No such device". A router that cannot be read is left to the steps
        that follow, which report it."""
        with self.connect(router) as t:
            dump = t.query(("wg_dump",)).get("wg_dump", "")
        if dump.startswith("ERROR"):
            return
        dev = parse_wg_dump(dump, router).get(u.iface)
        if dev is None:
            raise RotateError(f"{u.name}: {router} has no tunnel {u.iface}: deploy the topology before rotating")
        known = {k.public for w in ("current", "pending") if (k := self.store.pair(u.name, peer_end, w)) is not None}
        if not known & set(dev.peers):
            raise RotateError(f"{u.name}: {router}'s {u.iface} has no peer with the key store's {peer_end} key "
                              f"(deployed from another key store?): deploy the topology before rotating")

    def _mother_seen_by_uplink(self, u: Uplink) -> Optional[str]:
        """The mother's address as the uplink last heard it (its learned endpoint without the
        port; ``[v6]`` stays bracketed), read before any change."""
        with self.connect(u.name) as t:
            dump = t.query(("wg_dump",)).get("wg_dump", "")
        if dump.startswith("ERROR"):
            return None
        iface = parse_wg_dump(dump, u.name).get(u.iface)
        eps = [p.endpoint for p in iface.peers.values() if p.endpoint] if iface else []
        return eps[0].rsplit(":", 1)[0] if len(eps) == 1 else None

    def _listen_port(self, t: Transport, router: str, iface: str, key: str) -> Optional[int]:
        """The port the mother's tunnel listens on once its device has taken its new public key
        ``key``: wireguard.sh's renew runs `wg syncconf` without ListenPort (the mother has none
        configured), which in wireguard-go takes a new random port, and netifd answers `renew`
        before the handler runs, so the port read right after the call may be the old one."""
        deadline = time.monotonic() + RENEW_WAIT
        while True:
            dump = t.query(("wg_dump",)).get("wg_dump", "")
            if dump.startswith("ERROR"):
                return None
            dev = parse_wg_dump(dump, router).get(iface)
            if dev is None:
                return None
            if dev.public_key == key:
                return dev.listen_port
            if time.monotonic() > deadline:
                raise RotateError(f"{router}: {iface} did not take its new key within "
                                  f"{RENEW_WAIT} s of the renew")
            time.sleep(0.1)

    def _apply_keys(self, compiled: Compiled, router: str, u: Uplink,
                    mode: str) -> Optional[tuple[Transport, Receipt]]:
        """Apply (not yet confirm) the tunnel's two sections on one router, unless it already holds
        the new keys. ``mode``: "live" (renew only, no network reload: the mother), "deferred"
        (commit and arm, nothing live: the uplink, brought live by :meth:`_bring_live`) or
        "restart" (as planned: netifd rebuilds the tunnel). Returns the armed transport and the
        receipt its confirm must present, or None."""
        cfg = compiled.routers[router]
        t = self.connect(router)
        moved: Optional[_Moved] = None
        try:
            state = self._settled_state(t, router)
            plan = plan_router(cfg, state, only={u.iface, f"{u.iface}_peer"}, packages_=("network",))
            if plan.problems:
                raise RotateError(f"{router}: " + "; ".join(plan.problems))
            if plan.apply is None:   # nothing changed (`plan.changed`)
                self.say(f"{u.name}: {router} already holds the new keys")
                t.close()
                return None
            if mode in ("live", "deferred"):
                plan.apply.reload = [p for p in plan.apply.reload if p != "network"]
                plan.apply.restart_ifaces = []
                plan.apply.renew_ifaces = [u.iface] if mode == "live" else []
                if mode == "deferred":
                    plan.apply.check_peers = {}
            self.say(f"{u.name}: new keys on {router}"
                     + {"live": " (live, no restart)", "deferred": " (committed, not live yet)"}.get(mode, ""))
            move = self._peer_move(t, router, u, compiled) if mode == "live" else None
            if move is not None:   # the renew runs after the new peer is in: see _bring_live_mother
                plan.apply.renew_ifaces, plan.apply.check_peers = [], {}
            receipt = t.apply(plan.apply, self.confirm_timeout)
            if move is not None:
                moved = move
                self._bring_live_mother(t, router, u, move)
        except ApplyError as exc:
            t.close()
            raise RotateError(f"{router}: {one_line(router, exc)}; {router} is on its old config"
                              + self._undo_move(router, u, moved)) from None
        except ApplyInterrupted as exc:  # sent, answer lost: maybe armed
            t.close()
            raise RotateError(f"{router}: {one_line(router, exc)}" + self._undo_move(router, u, moved)) from None
        except _LiveFailed as exc:       # committed and armed, the keys not (all) live
            t.close()
            raise RotateError(f"{router}: {one_line(router, exc)}; {router} restores its old config by itself within "
                              f"{self.confirm_timeout} s" + self._undo_move(router, u, moved)) from None
        except TransportError as exc:    # the transport contract: nothing was committed
            t.close()
            raise RotateError(f"{router}: {one_line(router, exc)}; nothing was committed: {router} is on its old config"
                              + self._undo_move(router, u, moved)) from None
        except BaseException:
            t.close()
            raise
        return t, receipt

    def _peer_move(self, t: Transport, router: str, u: Uplink, compiled: Compiled) -> Optional[_Moved]:
        """What :meth:`_bring_live_mother` will change on the mother's live device (read before
        its apply), or None when the device is not as expected (no old peer live, the new one
        there already) or the transport cannot: then the apply renews as a deploy does."""
        old_up, new_up = (self.store.pair(u.name, "uplink", w) for w in ("current", "pending"))
        old_own = self.store.pair(u.name, "mother", "current")
        if not t.can_move_peer_live or old_up is None or new_up is None or old_own is None:
            return None
        dump = t.query(("wg_dump",)).get("wg_dump", "")
        dev = None if dump.startswith("ERROR") else parse_wg_dump(dump, router).get(u.iface)
        old = dev.peers.get(old_up.public) if dev is not None else None
        if dev is None or old is None or new_up.public in dev.peers or dev.public_key != old_own.public:
            return None
        peer = next((s for s in compiled.routers[router].sections.get("network", [])
                     if s.name == f"{u.iface}_peer"), None)
        allowed = peer.options.get("allowed_ips") if peer is not None else None
        ips = (allowed,) if isinstance(allowed, str) else tuple(allowed or ())
        if not ips:
            return None
        return _Moved(old_up.public, old.allowed_ips, old.endpoint, new_up.public, ips, old_own.public)

    def _bring_live_mother(self, t: Transport, router: str, u: Uplink, move: _Moved) -> None:
        """The mother's committed new keys go live: first the uplink's new peer on the live device,
        created and then given the old peer's allowed IPs (WireGuard moves them to a running peer
        in one step; ``move_peer_steps``), then the renew in the same round trip. The renew's `wg syncconf` removes a peer that left the config before
        it adds the new one; with the new peer there already it only removes a peer without
        addresses, so no packet meets a device without a peer. From here what the mother sends
        into the tunnel waits for the new session."""
        new_own = self.store.pair(u.name, "mother", "pending")
        try:
            port = t.move_peer_live(u.iface, move.new_peer, move.new_ips, move.old_endpoint, renew=True,
                                    key=new_own.public if new_own is not None else None)
        except TransportError as exc:
            raise _LiveFailed(str(exc)) from None
        self._mother_port = port     # known once the device took the key (None: not waited for)
        self.say(f"{u.name}: new peer on {router}'s live tunnel first, then renew (the old one "
                 "keeps no addresses)")

    def _undo_move(self, router: str, u: Uplink, moved: Optional[_Moved]) -> str:
        """Bringing the mother live failed in :meth:`_bring_live_mother`. If its renew never ran (the
        device still has the old private key), the old peer gets its allowed IPs back and the new
        one goes (``move_peer_live`` again); after a renew the router's own rollback (a renew again) makes
        the device equal to the old config, stray peer included. Returns what to add to the
        error message."""
        if moved is None:
            return ""
        try:
            with self.connect(router) as t:
                dump = t.query(("wg_dump",)).get("wg_dump", "")
                dev = None if dump.startswith("ERROR") else parse_wg_dump(dump, router).get(u.iface)
                if dev is None or moved.new_peer not in dev.peers or dev.public_key != moved.own_public:
                    return ""
                t.move_peer_live(u.iface, moved.old_peer, moved.old_ips, moved.old_endpoint,
                                 remove=moved.new_peer)
        except MwanctlError as exc:
            return (f"; the new peer may still be live on {router}'s {u.iface} ({exc}): "
                    f"`ubus call network.interface.{u.iface} renew` there puts the old one back")
        self.say(f"{u.name}: the old peer is back on {router}'s live tunnel")
        return ""

    def _bring_live(self, compiled: Compiled, u: Uplink, t: Transport, host: Optional[str],
                    tm: Optional[Transport]) -> None:
        """The uplink's committed keys go live and the uplink starts the handshake, to the port
        the mother listens on now (``tm``: the mother's open connection, if any)."""
        new_mother = self.store.pair(u.name, "mother", "pending")
        if new_mother is None:
            raise RotateError(f"{u.name}: the key store holds no pending mother key to bring live")
        mother = self.topology.mother.name
        # the uplink goes live only once the mother's device holds its new key: before that, what
        # the mother sends on its old session would meet a rebuilt uplink and be lost, not queued
        port = self._mother_port
        if port is None and tm is not None:
            port = self._listen_port(tm, mother, u.iface, new_mother.public)
        elif port is None:
            with self.connect(mother) as fresh:
                port = self._listen_port(fresh, mother, u.iface, new_mother.public)
        peer = next((s for s in compiled.routers[u.name].sections.get("network", [])
                     if s.name == f"{u.iface}_peer"), None)
        keepalive = peer.options.get("persistent_keepalive") if peer is not None else None
        endpoint = f"{host}:{port}" if host and port else None
        self.say(f"{u.name}: new keys live on {u.name}"
                 + ("" if endpoint else " (the mother's address is not known here: its retry finds it)"))
        try:
            seen = t.rekey_live(u.iface, new_mother.public, endpoint,
                                int(keepalive) if isinstance(keepalive, str) else 0)
        except TransportError as exc:
            raise RotateError(f"{u.name}: {exc}") from None
        if endpoint and not seen:
            self.say(f"{u.name}: no handshake yet after asking {u.name} for one")

    def _confirm(self, router: str, receipt: Receipt) -> None:
        """Confirm exactly the apply this rotation made (its receipt), from a fresh connection."""
        fresh = self.connect(router)
        try:
            fresh.confirm(receipt)
        except (ConfirmError, TransportError) as exc:
            raise RotateError(f"{router}: applied but could not confirm ({exc}); {router} restores "
                              f"its previous config by itself within {self.confirm_timeout} s") from None
        finally:
            fresh.close()
        self.say(f"{router}: confirmed")

    def _settled_state(self, t: Transport, router: str) -> RouterState:
        """Read the router; if an earlier run left an unconfirmed change, wait for its rollback."""
        state = t.read_state(("network",))
        deadline = self.clock() + self.confirm_timeout + 15
        while state.pending is not None:
            if self.clock() > deadline:
                raise RotateError(f"{router} still has an unconfirmed change; run `mwanctl confirm` "
                                  "or `mwanctl rollback` for it first")
            self.say(f"{router}: waiting for an earlier unconfirmed change to roll back "
                     f"({max(0, state.pending.deadline)} s)")
            time.sleep(min(5.0, max(1.0, state.pending.deadline)))
            state = t.read_state(("network",))
        return state

    def _wait_handshake(self, u: Uplink, window_ends: Optional[float] = None) -> None:
        """A handshake with the new uplink key, newer than the apply, seen from the mother; given
        up early enough (``window_ends``, monotonic) to confirm before the first armed router's
        confirm window closes."""
        new_uplink = self.store.pair(u.name, "uplink", "pending")
        if new_uplink is None:
            raise RotateError(f"{u.name}: the key store holds no pending uplink key to wait for")
        mother = self.topology.mother.name
        start = time.monotonic()
        give_up = start + self.handshake_timeout
        if window_ends is not None and window_ends < give_up:
            give_up = window_ends
        with self.connect(mother) as t:
            while True:
                probes = t.query(("wg_dump", "epoch"))
                peers = parse_wg_dump(probes.get("wg_dump", ""), mother).get(u.iface)
                peer = peers.peers.get(new_uplink.public) if peers else None   # peers: by public key
                epoch = _int(probes.get("epoch"))
                if peer is not None and peer.latest_handshake and (
                        epoch is None or epoch - peer.latest_handshake < FRESH_HANDSHAKE):
                    self.say(f"{u.name}: handshake on the new keys")
                    return
                if time.monotonic() > give_up:
                    raise RotateError(f"no handshake on {u.iface} with the new keys in time to "
                                      f"confirm (waited {time.monotonic() - start:.0f} s)")
                time.sleep(0.5)


# -- the flow of `mwanctl keys rotate` around Rotation ---------------------------------------------

def tunnels_to_rotate(topology: Topology, store: KeyStore, only: Sequence[str], older_than: Optional[str],
                      now: _dt.datetime) -> list[str]:
    """The tunnels a rotation run does, in topology order: those named (all when none), due by
    ``older_than`` (e.g. "90d"); a tunnel without keys yet is an error (deploy it first)."""
    from mwanctl.site import slot_spec
    from mwanctl.topology.checks import pool_slots
    if store.ensure(slot_spec(topology), pool_slots(topology)):
        raise RotateError("some tunnels have no keys yet: deploy the topology before rotating")
    names = [u.name for u in topology.uplinks if not only or u.name in only]
    return due(store, names, parse_age(older_than) if older_than else None, now)


def rotate_in_turn(rotation: Rotation, names: Sequence[str]) -> Iterator[TunnelResult]:
    """One tunnel at a time, stopping after the first that fails (running again finishes it)."""
    for name in names:
        result = rotation.rotate(rotation.topology.uplink(name))
        yield result
        if result.status != "rotated":
            return


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(str(text).strip().split()[0])
    except (ValueError, IndexError):
        return None


__all__ = ["Rotation", "RotateError", "TunnelResult", "due", "parse_age", "rotate_in_turn", "tunnels_to_rotate"]
