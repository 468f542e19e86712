"""Many sites in one run: `mwanctl plan` and `mwanctl deploy` over a directory of sites.

Each site is a mother and 2 uplinks (3 routers), every router a dropbear test router on 127.0.0.1
(tests/routers.py; needs root) running the real remote scripts under busybox sh with the stand-ins.
Each phase runs the real CLI as a subprocess (`python -m mwanctl ... sites/`), so the wall time
includes start-up and the summary table:

  plan (first)     every router read, every router has changes       (exit 2)
  deploy (first)   read, apply, verify, confirm every router         (exit 0)
  plan (no-op)     read only                                         (exit 0)
  deploy (no-op)   read only, nothing sent                           (exit 0)

Connections are counted on the routers' side: per router, the sessions dropbear accepted during the
phase (its log: "Child connection from"), and the peak of ESTABLISHED server-end TCP sockets on the
routers' ports, over all routers at one instant and per router (sampled every 2 ms from
/proc/net/tcp, so a connection shorter than that can be missed by the peak, never by the count).

Run: sudo python bench/sites.py [--sites 20] [--uplinks 2] [--connections 16[,64]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import routers as test_routers
from tests import sites_lab

PHASES = (("plan (first)", "plan", 2), ("deploy (first)", "deploy", 0),
          ("plan (no-op)", "plan", 0), ("deploy (no-op)", "deploy", 0))


def start_all(tmp: Path, n_sites: int, uplinks: tuple[str, ...]) -> tuple[Path, list[sites_lab.LabSite], float]:
    started = time.monotonic()

    def start(name: str, **kw: Any) -> test_routers.TestRouter:
        return test_routers.start_router(tmp, name, **kw)
    names = [f"site{i:02d}" for i in range(1, n_sites + 1)]
    sites_dir, sites = sites_lab.start_sites(start, tmp, names, uplinks=uplinks, confirm_timeout=60)
    return sites_dir, sites, time.monotonic() - started


def phase(sites_dir: Path, state: Path, sites: list[sites_lab.LabSite], command: str, connections: int) -> dict[str, Any]:
    routers = [r for s in sites for r in s.routers.values()]
    before = [sites_lab.accepted(r) for r in routers]
    argv = [sys.executable, "-m", "mwanctl", "--state-dir", str(state), "--no-color", command, str(sites_dir),
            "--connections", str(connections)] + (["--yes"] if command == "deploy" else [])
    w = sites_lab.watch(sites)
    t0 = time.monotonic()
    with w.running():
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.monotonic() - t0
    per_router = [sites_lab.accepted(r) - b for r, b in zip(routers, before, strict=True)]
    return {"wall": wall, "exit": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
            "accepted": per_router, "peak_total": w.peak_total,
            "peak_router": max(w.peak_per_router.values() or [0]), "samples": w.samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--uplinks", type=int, default=2, help="uplink routers per site (plus its mother)")
    ap.add_argument("--connections", default="16", help="pool sizes to run, comma-separated (default 16)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    why = test_routers.missing_requirements()
    if why:
        print(f"bench/sites.py: {why}", file=sys.stderr)
        return 1
    uplinks = tuple(f"up{i}" for i in range(1, args.uplinks + 1))
    sizes = [int(x) for x in args.connections.split(",")]
    print(f"machine: {os.cpu_count()} CPU(s), load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(1/5/15 min) at start")
    failures = 0
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="mwbench-sites-"))
        sites: list[sites_lab.LabSite] = []
        try:
            sites_dir, sites, startup = start_all(tmp, args.sites, uplinks)
            n_routers = sum(len(s.routers) for s in sites)
            print(f"\n{args.sites} sites x {1 + args.uplinks} routers = {n_routers} dropbear routers "
                  f"(started in {startup:.1f} s); --connections {size}")
            print(f"{'phase':<16} {'wall s':>7} {'exit':>4} {'conn/router min/median/max':>27} "
                  f"{'total':>6} {'peak open (all)':>15} {'peak/router':>11}")
            for label, command, expect in PHASES:
                r = phase(sites_dir, tmp / "state", sites, command, size)
                acc = r["accepted"]
                ok = r["exit"] == expect
                failures += 0 if ok else 1
                print(f"{label:<16} {r['wall']:>7.1f} {r['exit']:>4} "
                      f"{f'{min(acc)}/{statistics.median(acc):g}/{max(acc)}':>27} {sum(acc):>6} "
                      f"{r['peak_total']:>15} {r['peak_router']:>11}" + ("" if ok else f"   (expected exit {expect})"))
                if not ok:
                    print(r["stderr"][-3000:], file=sys.stderr)
        finally:
            for s in sites:
                for rt in s.routers.values():
                    rt.stop()
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
