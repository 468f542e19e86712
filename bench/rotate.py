"""How long `mwanctl keys rotate` takes and what the client's traffic loses: 1, 2 and 4 uplinks.

Real namespaces and wireguard-go behind dropbear test routers (tests/rotate_lab.py). Per run: the
time to rotate every tunnel, the lost packets of one long-lived ping flow (one every 50 ms), and
the lost new flows (one new UDP flow every 50 ms). Run as root: sudo python bench/rotate.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mwanctl.cli import main  # noqa: E402
from tests import netlab, rotate_lab, routers  # noqa: E402


def one(n: int) -> tuple[float, str, str]:
    tmp = Path(tempfile.mkdtemp(prefix="mwbench-rotate-"))
    started: list[routers.TestRouter] = []

    def start(name: str, **kw: object) -> routers.TestRouter:
        r = routers.start_router(tmp, name, **kw)  # type: ignore[arg-type]
        started.append(r)
        return r
    try:
        with netlab.Lab() as lab:
            ups = [f"u{i + 1}" for i in range(n)]
            site = rotate_lab.build(lab, start, tmp, ups)
            if main(site.argv("deploy", str(site.path), "--yes")) != 0:
                raise SystemExit("deploy failed")
            rotate_lab.wait_tunnels(lab, ups)
            ping, flows = rotate_lab.PingStream(lab).start(), rotate_lab.FlowStream(lab).start()
            time.sleep(1.0)
            t0 = time.monotonic()
            code = main(site.argv("keys", "rotate", str(site.path), "--yes"))
            took = time.monotonic() - t0
            time.sleep(2.0)
            p, f = ping.stop(), flows.stop()
            if code != 0:
                raise SystemExit(f"rotate failed with {n} uplinks")
            return took, f"{p.lost_count}/{p.sent}", f"{f.lost_count}/{f.sent}"
    finally:
        for r in started:
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main_() -> None:
    why = netlab.skip_reason() or routers.missing_requirements()
    if why:
        raise SystemExit(why)
    rows = [(n, *one(n)) for n in (1, 2, 4)]
    print(f"\n{'uplinks':>7}  {'rotate all':>10}  {'ping flow lost':>14}  {'new flows lost':>14}")
    for n, took, p, f in rows:
        print(f"{n:>7}  {took:>8.1f} s  {p:>14}  {f:>14}")


if __name__ == "__main__":
    main_()
