"""The dashboard under load: page-load time, update latency and the server's CPU while polling.

N sites x M uplinks, every router a dropbear test router on 127.0.0.1 (tests/routers.py; needs
root): per site one mother answering with mwan3's recorded status (tests/weblab.py, names mapped
to the site's uplinks) and M uplink routers answering `ubus call network.interface.wan status`.
`mwanctl web` runs as its own process polling all of them (one SSH round trip per router per
interval, on kept-open connections), and a headless Chromium opens the pages.

Figures:
- page load: Navigation Timing of "/" (every site) and "/site/<first>" in Chromium: time to the
  last response byte, DOMContentLoaded and first contentful paint (median of --loads loads);
- update latency: for every SSE update the page received, the time between the poller having
  the result (``seen``, stamped by the poller) and the page having replaced its HTML;
- CPU: the server process's user+system time over --seconds, as % of one core, first with no
  page open (the poller alone), then with the overview page open and receiving every update.

Run: sudo python bench/web.py [--sites 10] [--uplinks 4] [--interval 5] [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
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


def load_times(driver: Any, url: str, n: int) -> dict[str, float]:
    got: dict[str, list[float]] = {"response_end_ms": [], "dom_content_loaded_ms": [], "first_contentful_paint_ms": []}
    for _ in range(n):
        driver.get(url)
        weblab.wait_for(lambda: driver.execute_script(
            "return performance.getEntriesByType('paint').length > 0 && document.readyState === 'complete'"), 10)
        nav = driver.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                    "return [n.responseEnd - n.startTime, n.domContentLoadedEventEnd - n.startTime];")
        fcp = driver.execute_script("const p = performance.getEntriesByName('first-contentful-paint')[0];"
                                    "return p ? p.startTime : null;")
        got["response_end_ms"].append(nav[0])
        got["dom_content_loaded_ms"].append(nav[1])
        if fcp is not None:
            got["first_contentful_paint_ms"].append(fcp)
    return {k: statistics.median(v) for k, v in got.items() if v}


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
        pid = server.proc.pid
        c0, w0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        idle = (cpu_seconds(pid) - c0) / (time.monotonic() - w0) * 100
        print(f"server CPU, poller only (no page open): {idle:.1f} % of one core "
              f"({len(started)} routers / {args.interval:g} s = {len(started) / args.interval:.1f} round trips/s)")

        driver = weblab.chrome()
        driver.get(server.url)
        loads = {"/": load_times(driver, server.base + "/", args.loads),
                 "/site/s0": load_times(driver, server.base + "/site/s0", args.loads)}
        for page, figs in loads.items():
            print(f"page load {page}: " + ", ".join(f"{k.replace('_ms', '')} {v:.0f} ms" for k, v in figs.items())
                  + f" (median of {args.loads})")
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
        print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
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
    ap.add_argument("--loads", type=int, default=5)
    run(ap.parse_args())
