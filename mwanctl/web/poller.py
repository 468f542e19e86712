"""The poller: every interval, one ``query`` round trip per router, then ``status.poll.poll_site``.

It is the status command's code path (the same probes, the same builder, the same JSON), run by
one thread per site whether or not a page is open. Each result becomes history samples, timeline
events for state changes, and a ``Snapshot`` pushed to every open page.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from mwanctl.connect import ConnectOptions, transport_for
from mwanctl.errors import MwanctlError
from mwanctl.expect import expectation
from mwanctl.router import Pending
from mwanctl.site import open_store
from mwanctl.status import Expectation, SiteStatus, UplinkRow, format_duration, to_json
from mwanctl.status.poll import Answer, poll_site
from mwanctl.topology.model import Topology
from mwanctl.transports.base import Transport
from mwanctl.web.history import History, Sample

Listener = Callable[["Snapshot"], None]
T = TypeVar("T")
# polls between two looks for a deploy left applied but unconfirmed (`read_state`, a round trip of
# its own per router; also right after every action from the page)
PENDING_EVERY = 6


@dataclass
class SiteRef:
    """A topology the dashboard serves, reloaded from its file after deploys and rotations."""

    name: str
    path: Path
    topology: Topology
    state_dir: Optional[Path]

    def expectation(self) -> Expectation:
        store = open_store(self.topology, self.state_dir)
        return expectation(self.topology, {u.name: store.pair(u.name, "uplink") for u in self.topology.uplinks})

    def reload(self) -> Optional[str]:
        """Re-read the file; keep the last good topology (and say why) when it no longer loads."""
        from mwanctl.topology.load import diagnose
        topo, diags = diagnose(self.path)
        if topo is None:
            first = next((d for d in diags if d.severity == "error"), None)
            return str(first) if first else "does not load"
        if topo.site != self.name:
            return f"{self.path}: the site is now called {topo.site!r}; restart mwanctl web to follow it"
        self.topology = topo
        return None


@dataclass
class Snapshot:
    site: str
    seen: float                              # epoch when the poller had the result
    status: SiteStatus
    doc: dict[str, Any]                      # to_json(status): what /api/status returns
    reach: dict[str, Optional[str]]          # router -> None (answered) or why not
    rates: dict[str, tuple[Optional[float], Optional[float]]]   # uplink -> rx, tx bytes/s
    duration: float
    # router -> its unconfirmed deploy and when (epoch) that was read; deadline counts from then
    pending: dict[str, tuple[Pending, float]] = field(default_factory=dict)


def key(row: UplinkRow) -> str:
    """What the dashboard calls a status row: the uplink's name, or "<name> IPv6" for the IPv6
    alias of a dual-stack tunnel (status has one row per mwan3 interface)."""
    return row.label or row.name


def _avg(values: list[int]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def sample_of(row: UplinkRow, rates: tuple[Optional[float], Optional[float]]) -> Sample:
    rtts = [t.latency_ms for t in row.targets if t.latency_ms is not None]
    losses = [t.loss_pct for t in row.targets if t.loss_pct is not None]
    share = max(row.shares.values()) if row.shares else None
    return Sample(key(row), row.state, _avg(rtts), _avg(losses), rates[0], rates[1],
                  row.wg.handshake_age if row.wg else None, share)


def _reason(row: UplinkRow, status: SiteStatus) -> str:
    down = [t.ip for t in row.targets if t.status not in ("up", "online")]
    bits = []
    if row.targets:
        bits.append(f"targets down: {', '.join(down)}" if down else "all targets up")
    bits += [p.message for p in status.problems if p.uplink in (row.name, row.label) and p.kind != "offline"]
    return "; ".join(bits)


class Poller(threading.Thread):
    """Polls one site until ``stop``; ``listeners`` get every snapshot (from this thread)."""

    def __init__(self, ref: SiteRef, history: History, interval: float,
                 opts: Optional[ConnectOptions] = None, ask_uplinks: bool = True, offset: float = 0.0):
        super().__init__(name=f"poller-{ref.name}", daemon=True)
        self.ref = ref
        self.history = history
        self.interval = interval
        self.opts = opts or ConnectOptions()
        self.ask_uplinks = ask_uplinks
        self.offset = offset            # delay before the second poll: spreads sites over the interval
        self.listeners: list[Listener] = []
        self.latest: Optional[Snapshot] = None
        self.polls = 0
        self._stop_evt = threading.Event()
        self._wake = threading.Event()
        self._transports: dict[str, Transport] = {}
        self._counters: dict[str, tuple[float, int, int]] = {}
        self.pending: dict[str, tuple[Pending, float]] = {}
        self._pending_due = True
        self._exp = ref.expectation()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"probe-{ref.name}")
        self._mtime = self._file_mtime()

    # -- life cycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_evt.set()
        self._wake.set()

    def poll_now(self) -> None:
        """Poll again right away (after an action changed the routers or the key store)."""
        self._wake.set()

    def refresh(self) -> None:
        """Re-read topology and keys before the next poll; a file that no longer loads keeps the
        last good topology in use and says so in the timeline."""
        why = self.ref.reload()
        if why is not None:
            self.history.add_event(self.ref.name, "topology", self.ref.name, "error",
                                   f"{self.ref.path} does not load, still using the last good version: {why}")
        self._exp = self.ref.expectation()
        self._pending_due = True
        self.poll_now()

    def run(self) -> None:
        first = True
        while not self._stop_evt.is_set():
            started = time.monotonic()
            try:
                self._maybe_reload()
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller must outlive any one bad poll
                self.history.add_event(self.ref.name, "poller", self.ref.name, "error",
                                       f"poll failed: {type(exc).__name__}: {exc}")
            pause = self.interval + (self.offset if first else 0.0)
            first = False
            self._wake.wait(max(0.0, pause - (time.monotonic() - started)))
            self._wake.clear()
        for t in self._transports.values():
            t.close()
        self._pool.shutdown(wait=False)

    def _file_mtime(self) -> float:
        try:
            return self.ref.path.stat().st_mtime
        except OSError:
            return 0.0

    def _maybe_reload(self) -> None:
        m = self._file_mtime()
        if m != self._mtime:
            self._mtime = m
            self.refresh()

    # -- one poll --------------------------------------------------------------------------------
    def _ask(self, router: str, probes: tuple[str, ...]) -> Answer:
        """One round trip on a kept-open connection; reconnect once if it went stale."""
        return self._on(router, lambda t: t.query(probes))

    def _on(self, router: str, call: Callable[[Transport], T]) -> T | MwanctlError:
        for attempt in (0, 1):
            t = self._transports.get(router)
            try:
                if t is None:
                    t = self._transports[router] = transport_for(self.ref.topology, router, self.opts)
                return call(t)
            except MwanctlError as exc:
                dropped = self._transports.pop(router, None)
                if dropped is not None:
                    dropped.close()
                if attempt == 1 or t is None:
                    return exc
        raise AssertionError("unreachable")

    def _gather(self, questions: dict[str, Callable[[], Answer]]) -> dict[str, Answer]:
        """Every router at once, on the probe pool."""
        futures = {r: self._pool.submit(q) for r, q in questions.items()}
        return {r: f.result() for r, f in futures.items()}

    def poll_once(self) -> Snapshot:
        started = time.monotonic()
        polled = poll_site(self.ref.topology, self._exp, self._ask, self.ask_uplinks, time.time, self._gather)
        status, reach = polled.status, polled.reach()
        # also when a known pending deploy's deadline has passed: its router's timer has acted by now
        overdue = any(read_at + p.deadline <= time.time() for p, read_at in self.pending.values())
        if self._pending_due or overdue or self.polls % PENDING_EVERY == 0:
            self._check_pending()
        seen = time.time()
        rates = {key(row): self._rate(row, seen) for row in status.uplinks}
        snap = Snapshot(self.ref.name, seen, status, to_json(status), reach, rates, time.monotonic() - started,
                        dict(self.pending))
        self._record(snap)
        self.latest = snap
        self.polls += 1
        for listener in list(self.listeners):
            listener(snap)
        return snap

    def _check_pending(self) -> None:
        """Which routers hold a deploy applied but not confirmed (left by an interrupted deploy,
        from here or the CLI): the page shows it with its deadline next to Confirm/Roll back.
        ("network", as `mwanctl confirm` reads: over ubus a pending apply is seen on a package.)"""
        self._pending_due = False
        routers = self.ref.topology.routers
        futures = {r: self._pool.submit(self._on, r, lambda t: t.read_state(("network",))) for r in routers}
        now = time.time()
        for r, f in futures.items():
            got = f.result()
            if isinstance(got, MwanctlError):
                continue                  # unreachable: keep what was last known, reach says why
            if got.pending is None:
                self.pending.pop(r, None)
            else:
                self.pending[r] = (got.pending, now)
        for r in set(self.pending) - set(routers):
            del self.pending[r]

    def _rate(self, row: UplinkRow, ts: float) -> tuple[Optional[float], Optional[float]]:
        if row.wg is None or row.wg.rx_bytes is None or row.wg.tx_bytes is None:
            return None, None
        prev = self._counters.get(key(row))
        self._counters[key(row)] = (ts, row.wg.rx_bytes, row.wg.tx_bytes)
        if prev is None or ts <= prev[0] or row.wg.rx_bytes < prev[1] or row.wg.tx_bytes < prev[2]:
            return None, None        # first sample, or the counters were reset (tunnel rebuilt)
        dt = ts - prev[0]
        return (row.wg.rx_bytes - prev[1]) / dt, (row.wg.tx_bytes - prev[2]) / dt

    def _record(self, snap: Snapshot) -> None:
        site, h = snap.site, self.history
        h.add_samples(site, snap.seen, [sample_of(r, snap.rates[key(r)]) for r in snap.status.uplinks])
        for router, why in snap.reach.items():
            state = "reachable" if why is None else "unreachable"
            prev = h.transition(site, f"router:{router}", state, snap.seen)
            if prev is not None and (prev[0] is not None or why is not None):
                msg = f"{router} answers again" if why is None else f"{router} unreachable: {why}"
                h.add_event(site, "reachability", router, state, msg, snap.seen)
        for row in snap.status.uplinks:
            name = key(row)
            prev = h.transition(site, f"uplink:{name}", row.state, snap.seen)
            if prev is None:
                continue
            reason = _reason(row, snap.status)
            if prev[0] is None:
                msg = f"{name}: {row.state} (first seen)"
            else:
                msg = (f"{name}: {prev[0]} → {row.state} (was {prev[0]} for "
                       f"{format_duration(snap.seen - prev[1])})")
            h.add_event(site, "state", name, row.state, msg + (f"; {reason}" if reason else ""), snap.seen)
        if self.polls % 120 == 0:
            h.prune()


@dataclass
class Fleet:
    """Every site the dashboard serves, by name."""

    sites: dict[str, SiteRef]
    pollers: dict[str, Poller] = field(default_factory=dict)

    def start(self) -> None:
        for p in self.pollers.values():
            p.start()

    def stop(self) -> None:
        for p in self.pollers.values():
            p.stop()
        for p in self.pollers.values():
            p.join(timeout=10)
