"""Many sites in one run: `plan`, `deploy` and `status` over several topology files or a directory.

Every site runs the single-site path (``mwanctl.deploy.Deployment``: read, plan, arm, verify,
confirm; the shared status poll), so a site deployed here is deployed exactly as on its own. What
this module adds is the run around them:

- one bounded pool of connections for the whole run (``ConnectionPool``): never more than
  ``limit`` transports open at once, whatever the number of sites; a site starts only once it
  holds a *lease* of every connection its deploy can need on its normal path, so sites never
  deadlock on each other, and a rare extra (reading a router back after a lost connection) comes
  from a small reserve that nobody holds while waiting for anything else;
- one site at a time per router: a site holds a lock on each of its routers' endpoints for as
  long as it runs; for `plan`/`deploy` a router named in two sites is refused outright (two sites
  would each own, and overwrite, the same sections), for `status` (read only) the sites sharing it
  are serialized;
- every site ends in rows of one summary (site, router, outcome, exit) and the run exits with
  the worst of them (``worst``); a site that cannot be loaded, connected or applied is one more
  row, never a reason to stop or hide another.

Key rotation is not here on purpose: it stays one site (and one tunnel) at a time.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mwanctl.compile import Compiled
from mwanctl.deploy import Deployment, one_line
from mwanctl.errors import Diagnostic, MwanctlError
from mwanctl.exits import DeployExit, StatusExit
from mwanctl.topology.model import Topology
from mwanctl.transports.base import ApplyPlan, Receipt, RouterState, Transport

DEFAULT_CONNECTIONS = 16   # connections open at once over all sites (`--connections`)
RESERVE = 1                # of those, kept for the rare extra connection of a failure path
TOPOLOGY_SUFFIXES = (".yaml", ".yml")

# "Worst" for plan/deploy: nothing to do < changes to apply < a local error (invalid file, a site
# refused) < a router unreachable (nothing changed) < an apply failed (old config) < applied but
# not confirmed (rolls itself back) < the router had already rolled back when the confirm came.
DEPLOY_SEVERITY: tuple[int, ...] = (DeployExit.OK, DeployExit.CHANGES, DeployExit.ERROR, DeployExit.CONNECT,
                                    DeployExit.APPLY_FAILED, DeployExit.NOT_CONFIRMED, DeployExit.ROLLED_BACK,
                                    DeployExit.USAGE, DeployExit.INTERRUPTED)
# For status (monitoring-plugin codes), as aggregating monitors rank them: OK < WARNING < UNKNOWN
# < CRITICAL: a site whose traffic has nowhere to go outranks one whose state cannot be read.
STATUS_SEVERITY: tuple[int, ...] = (StatusExit.OK, StatusExit.WARNING, StatusExit.UNKNOWN, StatusExit.CRITICAL,
                                    StatusExit.USAGE, StatusExit.INTERRUPTED)


def worst(codes: Sequence[int], severity: Sequence[int] = DEPLOY_SEVERITY) -> int:
    """The worst exit code of ``codes`` by ``severity`` (an unknown code counts as the worst)."""
    rank = {c: i for i, c in enumerate(severity)}
    best = int(severity[0])
    for c in codes:
        if rank.get(c, len(severity)) > rank.get(best, len(severity)):
            best = int(c)
    return best


# --- which files ----------------------------------------------------------------------------------

def expand(args: Sequence[str]) -> list[str]:
    """The topology files named: a directory stands for its ``*.yaml``/``*.yml`` files (sorted,
    not recursive); a name given twice counts once. A missing path is kept: loading it reports it."""
    out: list[str] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out += sorted(str(c) for c in p.iterdir() if c.suffix in TOPOLOGY_SUFFIXES and c.is_file())
        else:
            out.append(a)
    seen: set[Path] = set()
    unique = []
    for f in out:
        key = Path(f).resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def is_many(args: Sequence[str]) -> bool:
    """Several files, or a directory: the many-site run (one plain file keeps the single-site output)."""
    return len(args) > 1 or any(Path(a).is_dir() for a in args)


@dataclass
class Loaded:
    """One file of the run: its topology, or why it has none."""

    file: str
    topo: Topology | None
    diags: list[Diagnostic]
    refused: str = ""        # why this site is not run although it loaded (a conflict)

    @property
    def name(self) -> str:
        """The site's name; for a file without a topology its file name (the table's site column)."""
        return self.topo.site if self.topo is not None else Path(self.file).name


def load_all(files: Sequence[str]) -> list[Loaded]:
    """Load every file, all of them before anything runs, so every file's problems are shown
    at once (``refuse_conflicts`` then marks the sites that collide)."""
    from mwanctl.topology.load import diagnose
    loaded = []
    for f in files:
        try:
            topo, diags = diagnose(f)
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not hide the others
            topo, diags = None, [Diagnostic(None, f, f"cannot load: {type(exc).__name__}: {exc}")]
        loaded.append(Loaded(f, topo, diags))
    return loaded


def endpoint(t: Topology, router: str) -> tuple[str, str, int]:
    """What identifies the machine a router is reached at (transport, host as written, port):
    two sites naming the same one talk to one router. Names are not resolved, so one router
    written once by name and once by address is not recognised."""
    a = t.access_for(router)
    if a.transport == "local":
        return ("local", "", 0)
    if a.transport == "ubus" and a.ubus_url:
        return ("ubus", a.ubus_url, 0)
    return (a.transport, a.host or t.host_of(router), a.port or (22 if a.transport == "ssh" else 443))


def refuse_conflicts(loaded: Sequence[Loaded], shared_routers_ok: bool) -> None:
    """Mark sites that must not run: a site name used twice (one key store); unless
    ``shared_routers_ok`` (status), a router endpoint in two sites."""
    by_name: dict[str, list[Loaded]] = {}
    by_endpoint: dict[tuple[str, str, int], list[tuple[Loaded, str]]] = {}
    for entry in loaded:
        if entry.topo is None:
            continue
        by_name.setdefault(entry.topo.site, []).append(entry)
        for r in entry.topo.routers:
            by_endpoint.setdefault(endpoint(entry.topo, r), []).append((entry, r))
    for name, group in by_name.items():
        if len(group) > 1:
            files = ", ".join(g.file for g in group)
            for g in group:
                g.refused = f"site name {name!r} is used by {files}: each site needs its own (its keys are kept under it)"
    if shared_routers_ok:
        return
    for ep, users in by_endpoint.items():
        sites = {id(e) for e, _ in users}
        if len(sites) > 1:
            where = ", ".join(f"{r} in {e.file}" for e, r in users)
            for e, _ in users:
                e.refused = e.refused or (f"router {_ep_text(ep)} is named by more than one site ({where}): "
                                          "each would overwrite the other's config")


def _ep_text(ep: tuple[str, str, int]) -> str:
    kind, host, port = ep
    return "local" if kind == "local" else host if kind == "ubus" else f"{host}:{port} ({kind})"


# --- the connection pool --------------------------------------------------------------------------

class ConnectionPool:
    """At most ``limit`` transports open at once over the whole run.

    A site takes a lease of the connections its normal path can hold at once before it starts
    (``lease``); the ``RESERVE`` slots serve, one connection at a time, what a failure path opens
    on top (the deploy reading a router back after a lost connection), so no site ever waits for
    a slot another waiting site holds. The peak and total counted here are this side's view; the
    tests and bench/sites.py count the routers' side too.
    """

    def __init__(self, limit: int):
        if limit < RESERVE + 2:
            raise ValueError(f"a pool needs at least {RESERVE + 2} connections")
        self.limit = limit
        self._cv = threading.Condition()
        self._free = limit - RESERVE
        self._reserve = threading.Semaphore(RESERVE)
        self._count_lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.opened = 0

    @property
    def largest_lease(self) -> int:
        return self.limit - RESERVE

    @contextmanager
    def lease(self, n: int) -> Iterator[Lease]:
        if n > self.largest_lease:
            raise ValueError(f"lease of {n} exceeds the pool's {self.largest_lease}")
        with self._cv:
            self._cv.wait_for(lambda: self._free >= n)
            self._free -= n
        lease = Lease(self, n)
        try:
            yield lease
        finally:
            lease.close_all()
            with self._cv:
                self._free += n
                self._cv.notify_all()

    def _opened(self, delta: int) -> None:
        with self._count_lock:
            self.open += delta
            if delta > 0:
                self.opened += 1
                self.peak = max(self.peak, self.open)


class Lease:
    """One site's share of the pool: ``connect`` wraps its transports so each holds a slot from
    creation to ``close`` (and takes one again if it is used after that: transports reconnect)."""

    def __init__(self, pool: ConnectionPool, n: int):
        self.pool = pool
        self._own = threading.Semaphore(n)
        self._live: set[PooledTransport] = set()
        self._live_lock = threading.Lock()

    def close_all(self) -> None:
        """At the end of the lease: whatever a site left open is closed, so no slot (least of
        all a reserve slot every site shares) outlives it."""
        with self._live_lock:
            left = list(self._live)
        for t in left:
            t.close()

    def _track(self, t: PooledTransport, live: bool) -> None:
        with self._live_lock:
            if live:
                self._live.add(t)
            else:
                self._live.discard(t)

    def acquire(self) -> Callable[[], None]:
        """A slot (the lease's own, else one of the reserve); returns its release."""
        sem = self._own if self._own.acquire(blocking=False) else self.pool._reserve
        if sem is self.pool._reserve:
            sem.acquire()
        self.pool._opened(+1)

        def release() -> None:
            self.pool._opened(-1)
            sem.release()
        return release

    def wrap(self, connect: Callable[[str], Transport]) -> Callable[[str], Transport]:
        def pooled(router: str) -> Transport:
            release = self.acquire()
            try:
                inner = connect(router)
            except BaseException:
                release()
                raise
            t = PooledTransport(inner, self, release)
            self._track(t, True)
            return t
        return pooled


class PooledTransport(Transport):
    """A transport that holds one pool slot while it may hold a connection."""

    def __init__(self, inner: Transport, lease: Lease, release: Callable[[], None]):
        super().__init__(inner.router)
        self.inner = inner
        self.kind = inner.kind
        self.counters = inner.counters
        self.can_rekey_live = inner.can_rekey_live
        self._lease = lease
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def _hold(self) -> None:
        with self._lock:
            if self._release is None:
                self._release = self._lease.acquire()
                self._lease._track(self, True)

    def read_state(self, packages: Sequence[str]) -> RouterState:
        self._hold()
        return self.inner.read_state(packages)

    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        self._hold()
        return self.inner.apply(plan, confirm_timeout)

    def confirm(self, receipt: Receipt | None = None) -> None:
        self._hold()
        self.inner.confirm(receipt)

    def rollback(self) -> bool:
        self._hold()
        return self.inner.rollback()

    def query(self, names: Sequence[str]) -> dict[str, str]:
        self._hold()
        return self.inner.query(names)

    def rehandshake(self, peers: dict[str, list[str]]) -> None:
        self._hold()
        self.inner.rehandshake(peers)

    def rekey_live(self, iface: str, peer: str, endpoint: str | None, keepalive: int = 0) -> bool:
        self._hold()
        return self.inner.rekey_live(iface, peer, endpoint, keepalive)

    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        self._hold()
        self.inner.set_drained(iface, drained, forget)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            with self._lock:
                release, self._release = self._release, None
            if release is not None:
                self._lease._track(self, False)
                release()


class RouterLocks:
    """One site at a time per router endpoint (taken in sorted order: no two sites deadlock)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, t: Topology) -> Iterator[None]:
        keys = sorted({endpoint(t, r) for r in t.routers})
        with self._guard:
            locks = [self._locks.setdefault(k, threading.Lock()) for k in keys]
        with ExitStack() as stack:
            for lock in locks:
                lock.acquire()
                stack.callback(lock.release)
            yield


# --- plan and deploy ------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the summary table."""

    site: str
    router: str
    outcome: str
    exit: int
    message: str = ""


@dataclass
class SiteRun:
    """What happened to one file of the run."""

    file: str
    site: str
    rows: list[Row] = field(default_factory=list)
    deployment: Deployment | None = None      # its plans, states and notes (connections closed)
    diags: list[Diagnostic] = field(default_factory=list)
    topo: Topology | None = None

    @property
    def exit(self) -> int:
        return worst([r.exit for r in self.rows])


Progress = Callable[[str, str, str], None]      # (site, router, message)


@dataclass
class SiteRunner:
    """Plan or deploy many sites with one pool. ``prepare`` compiles a topology (keys made on
    first use); ``connect`` builds a router's transport; both are the CLI's, as for one site."""

    prepare: Callable[[Topology], Compiled]
    connect: Callable[[Topology, str], Transport]
    connections: int = DEFAULT_CONNECTIONS
    confirm_timeout: int | None = None
    progress: Progress = lambda s, r, m: None
    pool: ConnectionPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = ConnectionPool(self.connections)
        self._locks = RouterLocks()
        self._stop = threading.Event()

    def need(self, t: Topology) -> int:
        """Connections a site's deploy holds at once on its normal path: one kept per router
        (read to confirm) plus the fresh one a confirm opens (routers handled one at a time)."""
        return len(t.routers) + 1

    def run(self, loaded: Sequence[Loaded], apply: bool) -> list[SiteRun]:
        refuse_conflicts(loaded, shared_routers_ok=False)
        runs = [SiteRun(e.file, e.name, diags=list(e.diags), topo=e.topo) for e in loaded]
        todo = [(e, r) for e, r in zip(loaded, runs, strict=True) if self._runnable(e, r)]
        if todo:
            workers = max(1, min(len(todo), self.pool.largest_lease))
            started = run_all([functools.partial(self._guarded, e, r, apply) for e, r in todo], workers, self._stop)
            for (_, r), ok in zip(todo, started, strict=True):
                if not ok and not r.rows:
                    r.rows.append(Row(r.site, "-", "not started", DeployExit.INTERRUPTED,
                                      "interrupted before this site started: nothing was sent to it"))
        return runs

    def _runnable(self, e: Loaded, run: SiteRun) -> bool:
        if e.topo is None:
            errors = sum(1 for d in e.diags if d.severity == "error")
            run.rows.append(Row(e.name, "-", f"invalid topology ({errors} error(s))", DeployExit.ERROR))
            return False
        if e.refused:
            run.rows.append(Row(e.topo.site, "-", "refused", DeployExit.ERROR, e.refused))
            return False
        n = self.need(e.topo)
        if n > self.pool.largest_lease:
            run.rows.append(Row(e.topo.site, "-", "refused", DeployExit.USAGE,
                                f"needs {n} connections at once; --connections must be at least {n + RESERVE}"))
            return False
        return True

    def _guarded(self, e: Loaded, run: SiteRun, apply: bool) -> None:
        if e.topo is None:
            return
        try:
            self._site(e.topo, run, apply)
        except MwanctlError as exc:
            run.rows.append(Row(run.site, "-", "error", exc.exit_status, one_line(run.site, exc)))
        except Exception as exc:  # noqa: BLE001 - one site's surprise never stops another
            run.rows.append(Row(run.site, "-", "error", DeployExit.ERROR,
                                f"internal error: {type(exc).__name__}: {exc}"))

    def _site(self, t: Topology, run: SiteRun, apply: bool) -> None:
        compiled = self.prepare(t)
        timeout = self.confirm_timeout or t.access_for(t.mother.name).confirm_timeout
        with self._locks.hold(t), self.pool.lease(self.need(t)) as lease:
            if self._stop.is_set():       # Ctrl-C while this site waited for its turn
                run.rows.append(Row(run.site, "-", "not started", DeployExit.INTERRUPTED,
                                    "interrupted before this site started: nothing was sent to it"))
                return
            dep = Deployment(compiled, lease.wrap(lambda r: self.connect(t, r)), timeout, parallel=1,
                             progress=lambda r, m: self.progress(t.site, r, m))
            run.deployment = dep
            try:
                dep.read()
                run.rows += self._after_read(t, dep, apply)
            finally:
                dep.close()

    def _after_read(self, t: Topology, dep: Deployment, apply: bool) -> list[Row]:
        """The rules of a single-site `plan`/`deploy`, per router."""
        site = t.site
        if dep.blocked:
            rows = []
            problems = {r: list(plan.problems) for r, plan in dep.plans.items()}
            for r in t.routers:
                if r in dep.errors:
                    code = DeployExit.CONNECT if r in dep.outcomes else DeployExit.ERROR
                    rows.append(Row(site, r, "unreachable" if code == DeployExit.CONNECT else "refused",
                                    code, dep.errors[r]))
                elif problems.get(r):
                    rows.append(Row(site, r, "refused", DeployExit.ERROR, "; ".join(problems[r])))
                else:
                    rows.append(Row(site, r, "not applied", DeployExit.OK,
                                    "not applied: another router of the site cannot be deployed"))
            return rows
        if not dep.changed:
            return [Row(site, r, "up to date", DeployExit.OK) for r in t.routers]
        if not apply:
            return [Row(site, r, f"{p.op_count} change(s)" if p.changed else "up to date",
                        DeployExit.CHANGES if p.changed else DeployExit.OK)
                    for r, p in ((r, dep.plans[r]) for r in t.routers)]
        outcomes = dep.apply()
        return [Row(site, r, o.status, o.exit_status, o.message)
                for r, o in ((r, outcomes[r]) for r in t.routers if r in outcomes)]


# --- status ---------------------------------------------------------------------------------------

PollSite = Callable[[Topology, Callable[[str], Transport]], Any]   # -> mwanctl.status SiteStatus


@dataclass
class StatusRun:
    file: str
    site: str | None
    status: Any                    # SiteStatus
    code: int


def run_status(loaded: Sequence[Loaded], poll: PollSite, connect: Callable[[Topology, str], Transport],
               unknown: Callable[[str], Any], exit_code: Callable[[Any], int],
               connections: int = DEFAULT_CONNECTIONS) -> list[StatusRun]:
    """Poll every site (a site's poll opens one connection at a time: one slot each); a site
    that cannot be loaded or polled is UNKNOWN with its reason, never missing."""
    refuse_conflicts(loaded, shared_routers_ok=True)
    pool, locks, stop = ConnectionPool(connections), RouterLocks(), threading.Event()

    def one(e: Loaded) -> StatusRun:
        if e.topo is None:
            errors = [str(d) for d in e.diags if d.severity == "error"]
            st = unknown(errors[0] if len(errors) == 1 else f"{len(errors)} errors in {e.file}")
            return StatusRun(e.file, None, st, exit_code(st))
        t = e.topo
        if e.refused:
            st = unknown(e.refused)
            return StatusRun(e.file, t.site, st, exit_code(st))
        try:
            with locks.hold(t), pool.lease(1) as lease:
                st = poll(t, lease.wrap(lambda r: connect(t, r)))
        except MwanctlError as exc:
            st = unknown(str(exc))
        except Exception as exc:  # noqa: BLE001 - one site's surprise never hides another
            st = unknown(f"internal error: {type(exc).__name__}: {exc}")
        return StatusRun(e.file, t.site, st, exit_code(st))

    results: list[StatusRun | None] = [None] * len(loaded)

    def job(i: int) -> None:
        if not stop.is_set():
            results[i] = one(loaded[i])
    run_all([functools.partial(job, i) for i in range(len(loaded))],
            max(1, min(len(loaded), pool.largest_lease)), stop)
    if stop.is_set():
        raise KeyboardInterrupt
    return [r for r in results if r is not None]


def run_all(jobs: Sequence[Callable[[], None]], workers: int, stop: threading.Event) -> list[bool]:
    """Run ``jobs`` on ``workers`` threads; which of them started. On Ctrl-C ``stop`` is set and
    the jobs not yet started never start (those waiting for their turn check ``stop``), while the
    running ones finish before this returns: a site half-way through its deploy ends in its
    confirm or rollback, not abandoned with its routers armed."""
    began = [False] * len(jobs)
    done = [threading.Event() for _ in jobs]
    gate = threading.Lock()

    def run(i: int) -> None:
        try:
            with gate:
                if stop.is_set():
                    return
                began[i] = True
            jobs[i]()
        finally:
            done[i].set()
    ex = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: list[Future[None]] = []
    try:
        for i in range(len(jobs)):
            futures.append(ex.submit(run, i))
        for f in futures:
            f.result()
    except KeyboardInterrupt:
        with gate:
            stop.set()
        for f in futures:
            f.cancel()
        for i, b in enumerate(began):
            if b:
                done[i].wait()
    finally:
        ex.shutdown(wait=True)
    return began


def status_document(runs: Sequence[StatusRun], to_json: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The one JSON document of a many-site status (docs/status-json.md, mwanctl.status-sites/1):
    each site's own mwanctl.status/2 object, with ``file`` and ``site`` added."""
    sites = [{"file": r.file, "site": r.site, **to_json(r.status)} for r in runs]
    return {"schema": STATUS_SITES_SCHEMA,
            "exit_code": worst([r.code for r in runs], STATUS_SEVERITY) if runs else 3,
            "summary": {"sites": len(runs), "by_exit_code": _count(r.code for r in runs)},
            "sites": sites}


STATUS_SITES_SCHEMA = "mwanctl.status-sites/1"


def _count(codes: Iterator[int] | Sequence[int]) -> Mapping[str, int]:
    out: dict[str, int] = {}
    for c in codes:
        out[str(c)] = out.get(str(c), 0) + 1
    return dict(sorted(out.items()))
