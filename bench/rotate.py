"""How long `mwanctl keys rotate` takes and what the client's traffic loses: 1, 2 and 4 uplinks.

Real namespaces and wireguard-go behind dropbear test routers (tests/rotate_lab.py), the mother's
mwan3 emulated as mwan3 2.12.2 reacts to events (tests/netifd_bridge.py: every event rebuilds the
policy from empty). Per run: the time to rotate every tunnel, the lost packets of one long-lived
ping flow (one every 50 ms), the lost new flows (one new UDP flow every 50 ms; a flow without an
echo within 5 s counts as lost), the slowest echo of a new flow (how long the mother held traffic
for a tunnel whose ends disagreed), and the mwan3 policy rebuilds the rotation caused.

Run as root: sudo python bench/rotate.py [--uplinks 1,2,4] [--runs 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mwanctl.cli import main  # noqa: E402
from tests import netlab, rotate_lab, routers  # noqa: E402


def _rebuilds(lab: netlab.Lab) -> int:
    log = lab.hosts["mother"].rundir / "mwan3-events.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for ln in lines if ln.split(" ", 1)[1].startswith("Execute "))


def one(n: int, runs: int) -> list[tuple[float, str, str, str, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="mwbench-rotate-"))
    rows = []
    try:
        with routers.started_in(tmp) as start, netlab.Lab() as lab:
            ups = [f"u{i + 1}" for i in range(n)]
            site = rotate_lab.build(lab, start, tmp, ups, async_renew=True)
            if main(site.argv("deploy", str(site.path), "--yes")) != 0:
                raise SystemExit("deploy failed")
            rotate_lab.wait_tunnels(lab, ups)
            for _ in range(runs):
                before = _rebuilds(lab)
                ping, flows = rotate_lab.PingStream(lab).start(), rotate_lab.FlowStream(lab).start()
                time.sleep(1.0)
                t0 = time.monotonic()
                code = main(site.argv("keys", "rotate", str(site.path), "--yes"))
                took = time.monotonic() - t0
                time.sleep(2.0)
                p, f = ping.stop(), flows.stop()
                if code != 0:
                    raise SystemExit(f"rotate failed with {n} uplinks")
                rows.append((took, f"{p.lost_count}/{p.sent}", f"{f.lost_count}/{f.sent}",
                             f.note.replace("slowest echo ", ""), _rebuilds(lab) - before))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uplinks", default="1,2,4", help="comma-separated uplink counts")
    ap.add_argument("--runs", type=int, default=1, help="rotations per lab")
    args = ap.parse_args()
    why = netlab.skip_reason() or routers.missing_requirements()
    if why:
        raise SystemExit(why)
    rows = [(n, *row) for n in (int(x) for x in args.uplinks.split(",")) for row in one(n, args.runs)]
    print(f"\n{'uplinks':>7}  {'rotate all':>10}  {'ping flow lost':>14}  {'new flows lost':>14}  "
          f"{'slowest new flow':>16}  {'mwan3 rebuilds':>14}")
    for n, took, p, f, slow, rb in rows:
        print(f"{n:>7}  {took:>8.1f} s  {p:>14}  {f:>14}  {slow:>16}  {rb:>14}")


if __name__ == "__main__":
    main_()
