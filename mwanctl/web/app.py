"""The Starlette application: pages, the live stream (SSE), the JSON/metrics API and the actions.

Live updates: a poller thread hands each snapshot to ``Hub.publish``; the event loop wakes every
open stream, which renders its page's fragments with the same view functions as the first paint
and sends them as one SSE message. Nothing is polled by the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mwanctl.errors import MwanctlError
from mwanctl.status import SiteStatus, to_json
from mwanctl.web import metrics, views
from mwanctl.web.actions import Actions, Busy, Job, digest, validate
from mwanctl.web.auth import COOKIE, Auth, Session
from mwanctl.web.history import History
from mwanctl.web.poller import Fleet, Snapshot, key

STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Content-Security-Policy": views.CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(eq=False)
class Subscriber:
    queue: "asyncio.Queue[tuple[str, Any]]"
    site: str                    # "": the overview of every site
    hours: float


@dataclass
class Hub:
    """Fan-out from poller and job threads to the streams on the event loop."""

    loop: Optional[asyncio.AbstractEventLoop] = None
    subscribers: set[Subscriber] = field(default_factory=set)

    def publish(self, kind: str, payload: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._fanout, kind, payload)

    def _fanout(self, kind: str, payload: Any) -> None:
        for s in list(self.subscribers):
            s.queue.put_nowait((kind, payload))


def create_app(fleet: Fleet, history: History, auth: Auth, actions: Actions, hub: Hub,
               templates: Optional[Path] = None) -> Starlette:
    sites = fleet.sites
    names = list(sites)

    # -- helpers -------------------------------------------------------------------------------
    def snap(site: str) -> Optional[Snapshot]:
        p = fleet.pollers.get(site)
        return p.latest if p else None

    def respond(resp: Response) -> Response:
        resp.headers.update(HEADERS)
        return resp

    def denied(request: Request, why: str, status: int = 403) -> Response:
        if request.url.path.startswith(("/api/", "/events", "/metrics")):
            return respond(JSONResponse({"error": why}, status_code=status))
        if auth.is_password and status == 401:
            return respond(RedirectResponse("/login?next=" + urllib.parse.quote(request.url.path), 303))
        body = (f"<h1>Access denied</h1><p>{views.e(why)}</p><p>Open the address <code>mwanctl web</code> "
                "printed (it carries the access token).</p>")
        return respond(HTMLResponse(views.page("mwanctl: access denied", body, "", []), status_code=status))

    def session_of(request: Request) -> Optional[Session]:
        return auth.session(request.cookies.get(COOKIE))

    def bearer_ok(request: Request) -> bool:
        h = request.headers.get("authorization", "")
        return h.startswith("Bearer ") and auth.check_secret(h[7:].strip())

    def own_origin(request: Request) -> str:
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    async def guard(request: Request, *, write: bool = False) -> Session | Response:
        """The session, or the response refusing the request."""
        s = session_of(request)
        if write:
            if s is None:
                return denied(request, "not logged in", 401)
            if not auth.csrf_ok(s, request.headers.get("x-csrf-token"), request.headers.get("origin"),
                                own_origin(request)):
                return denied(request, "missing or wrong CSRF token, or a foreign Origin")
            return s
        if s is None and bearer_ok(request):
            return Session(csrf="")
        return s if s is not None else denied(request, "missing or wrong access token", 401)

    def no_such_site(request: Request, g: Session) -> Response:
        if request.url.path.startswith("/site/"):
            return respond(HTMLResponse(views.page("not found", "<h1>No such site</h1>", g.csrf, names), 404))
        return denied(request, "no such site", 404)

    Handler = Callable[[Request, Session, str], Awaitable[Response]]

    def endpoint(handler: Handler, *, write: bool = False, site: str = "") -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the guard (``write``: a changing action, CSRF checked) and, when
        ``site`` says where the request names one ("path" or "query"), behind the site lookup:
        it is called with the session and a site that exists ("" when the request names none)."""
        async def run(request: Request) -> Response:
            g = await guard(request, write=write)
            if isinstance(g, Response):
                return g
            name = (request.path_params.get("site") if site == "path"
                    else request.query_params.get("site") if site == "query" else None)
            if name is not None and name not in sites:
                return no_such_site(request, g)
            return await handler(request, g, name or "")
        return run

    # -- pages ---------------------------------------------------------------------------------
    async def index(request: Request, g: Session, _site: str) -> Response:
        """Every site's card, drawn from the pollers' latest results (no router is asked here);
        the cards are compact (the per-uplink table is on the site's page)."""
        body = "<h1 class=sr>All sites</h1><div class=sites>" + "".join(
            f'<div id="live-card-{views.e(n)}">{views.card(sites[n], snap(n), link=True)}</div>'
            for n in names) + "</div>"
        stream = f"/events?after={time.time():.3f}"
        return respond(HTMLResponse(views.page("mwanctl: sites", body, g.csrf, names, stream=stream)))

    def number(request: Request, name: str, default: float) -> float:
        try:
            return float(request.query_params.get(name, default))
        except ValueError:
            return default

    def hours_of(request: Request) -> float:
        h = number(request, "hours", 1.0)
        return h if h in views.HOURS else 1.0

    def site_parts(site: str, hours: float, s: Optional[Snapshot]) -> dict[str, str]:
        ref = sites[site]
        uplinks = [key(u) for u in s.status.uplinks] if s and s.status.uplinks else \
            [w.name for w in ref.topology.mother.wans] + [u.name for u in ref.topology.uplinks]
        return {f"live-card-{site}": views.card(ref, s),
                f"charts-{site}": views.charts(history, ref, uplinks, hours),
                f"timeline-{site}": views.timeline(history.events(site))}

    rendered: dict[tuple[str, Optional[float], float], dict[str, str]] = {}

    def live_parts(name: str, hours: Optional[float], s: Optional[Snapshot]) -> dict[str, str]:
        """The fragments an update replaces: the site page's (``hours``: its chart window) or the
        overview's card. Drawn once per poll result, whatever the number of open pages."""
        memo = (name, hours, s.seen if s else 0.0)
        if memo not in rendered:
            if len(rendered) > 4 * len(names) + 16:
                rendered.clear()
            rendered[memo] = (site_parts(name, hours, s) if hours is not None
                              else {f"live-card-{name}": views.card(sites[name], s, link=True)})
        return rendered[memo]

    async def site_page(request: Request, g: Session, site: str) -> Response:
        hours = hours_of(request)
        parts = site_parts(site, hours, snap(site))
        jobs = "".join(views.job_view(j) for j in sorted(actions.jobs.values(), key=lambda j: -j.id)
                       if j.site == site)
        s = views.e(site)
        body = (f'<div id="live-card-{s}">{parts[f"live-card-{site}"]}</div>'
                f'<section class=card aria-labelledby=h-actions><h2 id=h-actions>Actions</h2>'
                f'{views.actions_panel(site, actions.busy(site))}<div id=jobs>{jobs}</div></section>'
                f'<section class=card aria-labelledby=h-history><h2 id=h-history>History</h2>'
                f'<div id="charts-{s}">{parts[f"charts-{site}"]}</div>'
                f'<h3>Timeline</h3><div id="timeline-{s}">{parts[f"timeline-{site}"]}</div></section>')
        stream = f"/events?site={urllib.parse.quote(site)}&hours={hours:g}&after={time.time():.3f}"
        return respond(HTMLResponse(views.page(f"mwanctl: {site}", body, g.csrf, names, site, stream)))

    async def login(request: Request) -> Response:
        err = ""
        if request.method == "POST":
            if request.headers.get("origin") not in (None, own_origin(request)):
                return denied(request, "foreign Origin")
            raw = (await request.body()).decode(errors="replace")
            form = urllib.parse.parse_qs(raw)
            if auth.check_secret(next(iter(form.get("password", [])), None)):
                return _logged_in(request, (form.get("next") or ["/"])[0])
            await asyncio.sleep(1.0)              # slow down guessing
            err = '<p class="summary bad" role=alert>Wrong password.</p>'
        nxt = views.e(request.query_params.get("next", "/"))
        body = (f"<h1>Log in</h1>{err}<form method=post action=/login class=login>"
                f"<input type=hidden name=next value=\"{nxt}\">"
                "<label for=pw>Password</label><input id=pw name=password type=password "
                "autocomplete=current-password required autofocus><button type=submit>Log in</button></form>")
        return respond(HTMLResponse(views.page("mwanctl: log in", body, "", []), 401 if err else 200))

    def _logged_in(request: Request, target: str) -> Response:
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        sid, _ = auth.login()
        resp = RedirectResponse(target, 303)
        resp.set_cookie(COOKIE, sid, **auth.cookie_args())  # type: ignore[arg-type]
        return respond(resp)

    # -- live stream -----------------------------------------------------------------------------
    async def events(request: Request, _g: Session, site: str) -> Response:
        sub = Subscriber(asyncio.Queue(), site, hours_of(request))
        after = number(request, "after", 0.0)
        hub.subscribers.add(sub)

        def status_msg(name: str) -> str:
            s = snap(name)
            data = {"site": name, "seen": s.seen if s else None, "sent": time.time(),
                    "parts": live_parts(name, sub.hours if sub.site else None, s)}
            return f"event: status\ndata: {json.dumps(data)}\n\n"

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                for n in ([site] if site else names):      # catch up on what the page does not show
                    s = snap(n)
                    if s is not None and s.seen > after:
                        yield status_msg(n)
                while True:
                    try:
                        kind, payload = await asyncio.wait_for(sub.queue.get(), 15)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if kind == "status" and (not site or payload == site):
                        while not sub.queue.empty():             # coalesce a burst into one message
                            k2, p2 = sub.queue.get_nowait()
                            if k2 != "status" or p2 != payload:
                                sub.queue.put_nowait((k2, p2))
                                break
                        yield status_msg(payload)
                    elif kind == "job" and site and payload.site == site:
                        job: Job = payload
                        data = {"job": job.id, "status": job.status, "html": views.job_view(job),
                                "busy": job.status == "running"}
                        yield f"event: job\ndata: {json.dumps(data)}\n\n"
            finally:
                hub.subscribers.discard(sub)

        resp = StreamingResponse(stream(), media_type="text/event-stream")
        resp.headers["X-Accel-Buffering"] = "no"
        return respond(resp)

    # -- machine API ---------------------------------------------------------------------------
    async def api_status(request: Request, _g: Session, site: str) -> Response:
        chosen = [site] if site else names

        def doc(n: str) -> dict[str, Any]:
            s = snap(n)
            return s.doc if s else to_json(SiteStatus.unknown(sites[n].topology.mother.name, "not polled yet"))
        if len(chosen) == 1:
            return respond(JSONResponse(doc(chosen[0])))
        return respond(JSONResponse({"schema": "mwanctl.web.sites/1",
                                     "sites": {n: doc(n) for n in chosen}}))

    async def metrics_ep(request: Request, _g: Session, _site: str) -> Response:
        text = metrics.render(((n, snap(n)) for n in names), history)
        return respond(Response(text, media_type=metrics.CONTENT_TYPE))

    async def job_ep(request: Request, _g: Session, _site: str) -> Response:
        job = actions.jobs.get(int(request.path_params["id"]))
        if job is None:
            return denied(request, "no such job", 404)
        return respond(JSONResponse(job.as_json()))

    # -- actions -------------------------------------------------------------------------------
    async def action(request: Request, _g: Session, site: str) -> Response:
        what = request.path_params["action"]
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return respond(JSONResponse({"error": "the body must be JSON"}, 400))
        if not isinstance(body, dict):
            body = {}
        ref = sites[site]
        try:
            if what == "validate":
                diags, lines = await run_in_threadpool(validate, ref, templates)
                return respond(JSONResponse({"ok": not any(d.severity == "error" for d in diags),
                                             "html": views.validate_result(str(ref.path), diags, lines)}))
            if what == "plan":
                lines, blocked = await run_in_threadpool(actions.plan, ref)
                d = digest(lines)
                return respond(JSONResponse({"digest": d, "blocked": blocked, "lines": lines,
                                             "html": views.plan_result(lines, blocked, d)}))
            if what == "keys":
                rows = await run_in_threadpool(actions.keys, ref)
                return respond(JSONResponse({"keys": rows, "html": views.keys_result(rows)}))
            if what in ("deploy", "rotate") and body.get("confirm_site") != site:
                return respond(JSONResponse({"error": f"type the site name {site!r} to confirm"}, 400))
            if what == "deploy":
                job = actions.deploy(site, str(body.get("plan_digest") or "") or None)
            elif what in ("confirm", "rollback"):
                job = actions.pending(site, what)
            elif what == "rotate":
                only = str(body.get("uplink") or "").strip()
                if only and only not in {u.name for u in ref.topology.uplinks}:
                    return respond(JSONResponse({"error": f"no uplink named {only!r} in {site}"}, 400))
                job = actions.rotate(site, [only] if only else [])
            else:
                return denied(request, "no such action", 404)
        except Busy as exc:
            return respond(JSONResponse({"error": str(exc)}, 409))
        except MwanctlError as exc:
            return respond(JSONResponse({"error": str(exc)}, 422))
        # the status goes with the html: the page must not let this snapshot, taken while the
        # job may still run, replace the finished job the stream may already have shown
        return respond(JSONResponse({"job": job.id, "status": job.status, "html": views.job_view(job)}, 202))

    # -- token login on any page ---------------------------------------------------------------
    class TokenAndHost:
        """Pure ASGI middleware: Host check for everything; ``?token=`` logs in and redirects to
        the same address without the token (so it does not stay in the history or the logs)."""

        def __init__(self, app: Any):
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            request = Request(scope)
            if not auth.host_ok(request.headers.get("host")):
                await respond(PlainTextResponse("unknown Host header", 421))(scope, receive, send)
                return
            token = request.query_params.get("token")
            if token is not None and not auth.is_password:
                if not auth.check_secret(token):
                    await denied(request, "wrong access token")(scope, receive, send)
                    return
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (("?" + urllib.parse.urlencode(rest)) if rest else "")
                await _logged_in(request, target)(scope, receive, send)
                return
            await self.app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.loop = asyncio.get_running_loop()
        fleet.start()
        try:
            yield
        finally:
            await run_in_threadpool(fleet.stop)

    routes = [
        Route("/", endpoint(index)), Route("/login", login, methods=["GET", "POST"]),
        Route("/site/{site}", endpoint(site_page, site="path")), Route("/events", endpoint(events, site="query")),
        Route("/metrics", endpoint(metrics_ep)), Route("/api/status", endpoint(api_status)),
        Route("/api/status/{site}", endpoint(api_status, site="path")),
        Route("/api/jobs/{id:int}", endpoint(job_ep)),
        Route("/api/site/{site}/{action}", endpoint(action, write=True, site="path"), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(TokenAndHost)
    return app

