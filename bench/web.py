"""The dashboard under load: page-load time, update latency and the server's CPU while polling.

N sites x M uplinks, every router a dropbear test router on 127.0.0.1 (tests/routers.py; needs
root): per site one mother answering with mwan3's recorded status (tests/weblab.py, names mapped
to the site's uplinks) and M uplink routers answering `ubus call network.interface.wan status`.
`mwanctl web` runs as its own process polling all of them (one SSH round trip per router per
interval, on kept-open connections), and a headless Chromium opens the pages.

Figures:
- page load: Navigation Timing and Paint Timing of "/" (every site) and "/site/<first>" in
  Chromium: time to the last response byte, DOMContentLoaded and first contentful paint (median
  of --loads loads), and Chromium's own count of the page's main-thread work (layout and style,
  all tasks: Performance.getMetrics), interleaved with loads of an empty page from another local server in the
  same browser: its first paint is the floor this browser on this machine gives at that moment
  (it grows with the machine's load), so what the dashboard adds is the difference;
- update latency: for every SSE update the page received, the time between the poller having
  the result (``seen``, stamped by the poller) and the page having replaced its HTML;
- CPU: the server process's user+system time over --seconds, as % of one core, first with no
  page open (the poller alone), then with the overview page open and receiving every update.

--routers-nice N runs the test routers (dropbear and the shells it starts) at that nice level:
they stand in for routers that are other machines, whose CPU a real dashboard does not share.

Run: sudo python bench/web.py [--sites 10] [--uplinks 4] [--interval 5] [--seconds 60] [--routers-nice 19]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mwanctl.cli import main  # noqa: E402
from mwanctl.keys import KeyStore  # noqa: E402
from tests import e2e, routers, weblab  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build(tmp: Path, sites: int, uplinks: int) -> tuple[list[Path], Path, list[Any]]:
    started: list[Any] = []
    state = tmp / "state"
    paths = []
    names = tuple(f"u{i}" for i in range(1, uplinks + 1))
    for s in range(sites):
        d = tmp / f"site{s}"
        d.mkdir()

        def factory(name: str, files: Any = None, d: Path = d) -> Any:
            r = routers.start_router(d, name, files=files)
            started.append(r)
            return r

        site = e2e.start_site(factory, d, list(names))
        site.path.write_text(site.path.read_text().replace("site: lab", f"site: s{s}", 1))
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["--state-dir", str(state), "render", str(site.path), "-o", str(d / "out")])
        if code != 0:
            raise SystemExit("render failed")
        weblab.feed(site.routers["mother"], "mwan3-status-both-online.json", KeyStore.open(f"s{s}", state),
                    names, quality={n: (20 + i, 0) for i, n in enumerate(names)})
        paths.append(site.path)
    return paths, state, started


NAV = ("const n = performance.getEntriesByType('navigation')[0];"
       "const p = performance.getEntriesByName('first-contentful-paint')[0];"
       "return [n.responseEnd - n.startTime, n.domContentLoadedEventEnd - n.startTime, p ? p.startTime : null];")


def empty_page() -> tuple[str, http.server.ThreadingHTTPServer]:
    """A one-line page from a plain local HTTP server: the browser's own floor for a first paint."""
    body = b"<!doctype html><html lang=en><title>empty</title><p>empty page</p></html>"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_port}/", srv


def load_times(driver: Any, urls: dict[str, str], n: int) -> dict[str, dict[str, float]]:
    """Median response end, DOMContentLoaded and first contentful paint per page, the pages
    loaded in turn n times (so each sees the same machine load)."""
    got: dict[str, dict[str, list[float]]] = {
        k: {"response_end_ms": [], "dom_content_loaded_ms": [], "first_contentful_paint_ms": [],
            "layout+style_ms": [], "main_thread_tasks_ms": []} for k in urls}
    driver.execute_cdp_cmd("Performance.enable", {})
    for _ in range(n):
        for name, url in urls.items():
            driver.get(url)
            weblab.wait_for(lambda: driver.execute_script(
                "return performance.getEntriesByType('paint').length > 0 && document.readyState === 'complete'"), 10)
            resp, dcl, fcp = driver.execute_script(NAV)
            got[name]["response_end_ms"].append(resp)
            got[name]["dom_content_loaded_ms"].append(dcl)
            if fcp is not None:
                got[name]["first_contentful_paint_ms"].append(fcp)
            # Chromium's own accounting for this document: its main thread's layout and style work,
            # and all its tasks (less swayed by waiting for a CPU than the paint time)
            m = {x["name"]: x["value"] for x in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
            got[name]["layout+style_ms"].append((m["LayoutDuration"] + m["RecalcStyleDuration"]) * 1000)
            got[name]["main_thread_tasks_ms"].append(m["TaskDuration"] * 1000)
    return {name: {k: statistics.median(v) for k, v in figs.items() if v} for name, figs in got.items()}


def renice_tree(roots: list[int], level: int) -> int:
    """Set ``level`` on every process below ``roots`` (the routers' dropbear and its shells);
    children started later inherit it. Returns how many processes were changed."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    below = set(roots)
    grew = True
    while grew:
        new = {pid for pid, pp in parent.items() if pp in below and pid not in below}
        below |= new
        grew = bool(new)
    done = 0
    for pid in below:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, level)
            done += 1
    return done


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(args: argparse.Namespace) -> None:
    why = routers.missing_requirements() or weblab.browser_missing()
    if why:
        raise SystemExit(why)
    tmp = Path(tempfile.mkdtemp(prefix="mwbench-web-"))
    started: list[Any] = []
    server = None
    driver = None
    try:
        t0 = time.monotonic()
        paths, state, started = build(tmp, args.sites, args.uplinks)
        print(f"{args.sites} sites x {args.uplinks} uplinks: {len(started)} dropbear routers up in "
              f"{time.monotonic() - t0:.1f} s; poll interval {args.interval:g} s")
        server = weblab.WebServer(paths, state, tmp / "web.sqlite", args.interval)
        time.sleep(2 * args.interval)                     # connections made, first polls done
        if args.routers_nice:
            n = renice_tree([r.proc.pid for r in started], args.routers_nice)
            print(f"routers at nice {args.routers_nice} ({n} processes): they stand in for other machines")
        pid = server.proc.pid
        print(f"before the CPU figure: {load()}")
        c0, w0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        idle = (cpu_seconds(pid) - c0) / (time.monotonic() - w0) * 100
        print(f"server CPU, poller only (no page open): {idle:.1f} % of one core "
              f"({len(started)} routers / {args.interval:g} s = {len(started) / args.interval:.1f} round trips/s); "
              f"{load()}")

        driver = weblab.chrome()
        driver.get(server.url)
        floor, floor_srv = empty_page()
        try:
            loads = load_times(driver, {"empty page (floor)": floor, "/": server.base + "/",
                                        "/site/s0": server.base + "/site/s0"}, args.loads)
        finally:
            floor_srv.shutdown()
        for page, figs in loads.items():
            print(f"page load {page}: " + ", ".join(f"{k.replace('_ms', '')} {v:.0f} ms" for k, v in figs.items())
                  + f" (median of {args.loads})")
        print(f"after the page loads: {load()}")
        driver.get(server.base + "/")
        weblab.wait_for(lambda: driver.execute_script("return window.mwUpdates.length") > 0, 10)
        driver.execute_script("window.mwUpdates.length = 0")
        c0, w0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        busy = (cpu_seconds(pid) - c0) / (time.monotonic() - w0) * 100
        ups = driver.execute_script("return window.mwUpdates")
        lat = [(u["shown"] - u["seen"]) * 1000 for u in ups]
        server_part = [(u["sent"] - u["seen"]) * 1000 for u in ups]
        print(f"server CPU with the overview page open: {busy:.1f} % of one core")
        if lat:
            print(f"update latency (poller has the result -> page shows it), {len(lat)} updates: "
                  f"median {statistics.median(lat):.1f} ms, p95 {pct(lat, 0.95):.1f} ms, max {max(lat):.1f} ms; "
                  f"of which in the server (result -> message sent): median {statistics.median(server_part):.1f} ms, "
                  f"p95 {pct(server_part, 0.95):.1f} ms")
        print(f"at the end: {load()}")
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
        for r in started:
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--uplinks", type=int, default=4)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--loads", type=int, default=7)
    ap.add_argument("--routers-nice", type=int, default=0, help="nice level for the test routers (0: as started)")
    run(ap.parse_args())
