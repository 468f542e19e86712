"""What the dashboard's buttons do: thin jobs over the CLI's own code paths.

Deploy is ``site.prepare`` + ``deploy.Deployment`` (read, plan, apply with commit-confirm, confirm
from a fresh connection), rotation is ``rotate.Rotation``, confirm/rollback are the transports'
``confirm``/``rollback`` on routers with a pending change. Changing actions hold a per-site lock,
so a second browser gets "busy" instead of a second deploy. Nothing here ever reads a private key
into a result: keys show uses the store's public listing and plans use ``plan.plan_text`` (masked).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mwanctl.compile.templates import Templates
from mwanctl.connect import ConnectOptions, transport_for
from mwanctl.deploy import Deployment, settle_pending
from mwanctl.errors import Diagnostic, MwanctlError
from mwanctl.plan import plan_text
from mwanctl.web.history import History
from mwanctl.web.poller import SiteRef

Notify = Callable[["Job"], None]


class Busy(Exception):
    """Another changing action holds the site's lock."""


@dataclass
class Job:
    id: int
    site: str
    kind: str
    started: float = field(default_factory=time.time)
    log: list[str] = field(default_factory=list)
    routers: dict[str, str] = field(default_factory=dict)   # router -> last progress message
    status: str = "running"                                 # running | ok | failed
    summary: str = ""
    finished: Optional[float] = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site, "kind": self.kind, "status": self.status,
                "summary": self.summary, "routers": dict(self.routers), "log": list(self.log),
                "started": self.started, "finished": self.finished}


# --------------------------------------------------------------------------- read-only actions


def validate(ref: SiteRef, templates: Optional[Path] = None) -> tuple[list[Diagnostic], list[str]]:
    """The file's diagnostics, and its lines (to show each error at its line)."""
    from mwanctl.topology.load import diagnose
    _, diags = diagnose(ref.path)
    try:
        text = ref.path.read_text(errors="replace").splitlines()
    except OSError:
        text = []
    if not any(d.severity == "error" for d in diags):
        try:
            Templates(templates)
        except MwanctlError as exc:
            diags.append(Diagnostic(None, "templates", str(exc)))
    return diags, text


def plan_lines(dep: Deployment) -> list[str]:
    """The text `mwanctl plan` prints, line for line (plan.plan_text), secrets masked."""
    return [line for router, plan in dep.plans.items() for line in plan_text(router, plan)]


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the runner


class Actions:
    """Starts jobs in threads, one changing job per site at a time."""

    def __init__(self, sites: dict[str, SiteRef], history: History, notify: Notify,
                 on_change: Callable[[str], None], opts: Optional[ConnectOptions] = None,
                 templates: Optional[Path] = None):
        self.sites = sites
        self.history = history
        self.notify = notify
        self.on_change = on_change          # the poller re-reads keys and polls again
        self.opts = opts or ConnectOptions()
        self.templates_dir = templates
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._locks = {name: threading.Lock() for name in sites}
        self._holder: dict[str, Job] = {}

    def templates(self) -> Templates:
        return Templates(self.templates_dir)

    def connect(self, ref: SiteRef) -> Callable[[str], Any]:
        return lambda r: transport_for(ref.topology, r, self.opts)

    def deployment(self, ref: SiteRef, progress: Callable[[str, str], None] = lambda r, m: None) -> Deployment:
        from mwanctl.site import prepare
        topo = ref.topology
        compiled, _ = prepare(topo, ref.state_dir, self.templates())
        return Deployment(compiled, self.connect(ref), topo.access_for(topo.mother.name).confirm_timeout,
                          progress=progress)

    def plan(self, ref: SiteRef) -> tuple[list[str], list[str]]:
        """(plan lines, blocking problems); reads every router, changes nothing."""
        dep = self.deployment(ref)
        try:
            dep.read()
            return plan_lines(dep), dep.blocked
        finally:
            dep.close()

    def keys(self, ref: SiteRef) -> list[dict[str, Any]]:
        from mwanctl.site import open_store
        return list(open_store(ref.topology, ref.state_dir).public_listing())

    # -- changing jobs -------------------------------------------------------------------------
    def busy(self, site: str) -> Optional[Job]:
        return self._holder.get(site)

    def start(self, site: str, kind: str, work: Callable[[Job], None]) -> Job:
        lock = self._locks[site]
        if not lock.acquire(blocking=False):
            holder = self._holder.get(site)
            what = f"{holder.kind} (job {holder.id}) started at " \
                   f"{dt.datetime.fromtimestamp(holder.started, dt.timezone.utc):%H:%M:%S} UTC" if holder else "an action"
            raise Busy(f"{site} is busy: {what} is still running")
        job = Job(next(self._ids), site, kind)
        self.jobs[job.id] = job
        self._holder[site] = job

        def run() -> None:
            try:
                work(job)
                if job.status == "running":
                    job.status = "ok"
            except MwanctlError as exc:
                job.status, job.summary = "failed", str(exc)
                job.log.append(f"error: {exc}")
            except Exception as exc:  # noqa: BLE001 - a job reports, it never kills the server
                job.status, job.summary = "failed", f"internal error: {type(exc).__name__}: {exc}"
                job.log.append(job.summary)
            finally:
                job.finished = time.time()
                self._holder.pop(site, None)
                lock.release()
                self.on_change(site)
                self.notify(job)

        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        self.notify(job)
        return job

    def _say(self, job: Job, router: Optional[str], msg: str) -> None:
        if router:
            job.routers[router] = msg
        job.log.append(f"{router}: {msg}" if router else msg)
        self.notify(job)

    def deploy(self, site: str, expect_digest: Optional[str] = None) -> Job:
        ref = self.sites[site]

        def work(job: Job) -> None:
            dep = self.deployment(ref, progress=lambda r, m: self._say(job, r, m))
            try:
                dep.read()
                lines = plan_lines(dep)
                job.log += lines
                if dep.blocked:
                    self._finish(job, "failed", "not started: " + "; ".join(dep.blocked), "blocked")
                    return
                if expect_digest and digest(lines) != expect_digest:
                    self._finish(job, "failed", "not started: the plan changed since it was shown; "
                                 "look at the new plan and deploy again", "blocked")
                    return
                if not dep.changed:
                    self._finish(job, "ok", "nothing to do: every router is up to date", "unchanged")
                    return
                outcomes = dep.apply()
            finally:
                dep.close()
            for o in outcomes.values():
                job.routers[o.router] = o.message if o.status in ("applied", "unchanged") else f"{o.status}: {o.message}"
            bad = {o.router: o.status for o in outcomes.values() if o.status not in ("applied", "unchanged")}
            worst = "not-confirmed" if "not-confirmed" in bad.values() else "failed" if bad else "applied"
            text = "; ".join(f"{o.router}: {o.message}" for o in outcomes.values())
            self._finish(job, "failed" if bad else "ok", text, worst)

        return self.start(site, "deploy", work)

    def _finish(self, job: Job, status: str, summary: str, result: str) -> None:
        job.status, job.summary = status, summary
        job.log.append(summary)
        self.history.add_event(job.site, job.kind, job.site, result, f"{job.kind}: {summary}")

    def pending(self, site: str, action: str) -> Job:
        """confirm / rollback on every router that has a pending deploy (as `mwanctl confirm`)."""
        ref = self.sites[site]

        def work(job: Job) -> None:
            done, failed = [], []
            for r in ref.topology.routers:
                try:
                    with transport_for(ref.topology, r, self.opts) as t:
                        said = settle_pending(t, action)
                    self._say(job, r, said)
                    if said != "nothing pending":
                        done.append(r)
                except MwanctlError as exc:
                    failed.append(r)
                    self._say(job, r, f"error: {exc}")
            if failed:
                self._finish(job, "failed", f"{action} failed on {', '.join(failed)}", "failed")
            elif done:
                self._finish(job, "ok", f"{action}: {', '.join(done)}", "ok")
            else:
                job.status, job.summary = "ok", "nothing pending on any router"
                job.log.append(job.summary)

        if action not in ("confirm", "rollback"):
            raise ValueError(f"no such action {action!r}")
        return self.start(site, action, work)

    def rotate(self, site: str, uplinks: list[str]) -> Job:
        ref = self.sites[site]

        def work(job: Job) -> None:
            from mwanctl.rotate import RotateError, Rotation, rotate_in_turn, tunnels_to_rotate
            from mwanctl.site import open_store
            topo = ref.topology
            store = open_store(topo, ref.state_dir)
            try:
                todo = tunnels_to_rotate(topo, store, uplinks, None, dt.datetime.now(dt.timezone.utc))
            except RotateError as exc:
                self._finish(job, "failed", str(exc), "failed")
                return
            rot = Rotation(topo, store, self.connect(ref), self.templates(),
                           topo.access_for(topo.mother.name).confirm_timeout,
                           say=lambda m: self._say(job, None, m))
            for res in rotate_in_turn(rot, todo):
                self._say(job, res.uplink, f"{res.status}: {res.message}")
                self.history.add_event(site, "rotate", res.uplink, res.status, f"rotate {res.uplink}: {res.message}")
                if res.status != "rotated":
                    job.status, job.summary = "failed", f"{res.uplink}: {res.message}"
                    return
            job.summary = f"rotated {', '.join(todo)}" if todo else "nothing to rotate"

        return self.start(site, "rotate", work)
