"""DNS through an uplink cut: mwanctl's per-server failover policies against plain balancing.

Run as root: ``sudo .venv/bin/python bench/dns.py [--cuts 3]``.

The lab is tests/dns_lab.py's: real dnsmasq as the mother's resolver and as two upstream
resolvers behind two real wireguard-go tunnels, the mother's mwan3 config as mwanctl compiles it,
mwan3track's loop (`fast`) to notice a cut. Per cut, a LAN client's stub resolver asks one new
name every 0.2 s (1 s per try, 3 tries), up1's upstream dies 1 s in (its tunnel stays up), and
the cut lasts until mwan3 has taken up1 out and the policy is rebuilt, plus 3 s. Two variants:

* ``mwanctl``: what ``dns:`` compiles: a rule per server to its own failover policy (server 1
  prefers up1, server 2 up2) and dnsmasq's ``allservers``;
* ``naive``: both rules to ``mw_balanced``, no ``allservers`` (the obvious design).

Printed per variant: queries asked during the cuts, answered at the first try, answered only
after a retry, never answered; and the time from a cut to mwan3's disconnected event.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import netlab
from dns_lab import client, dns_site, records
from polling import wait_for
from tracker_lab import TrackerLab

import mwanctl.topology  # noqa: F401  (import order: tracking needs the topology package)


def _events(tl: TrackerLab) -> list[list[str]]:
    return [ln.split()[1:] for ln in tl.hotplug_log()]


def _after(tl: TrackerLab, n: int, want: list[str]) -> bool:
    return want in _events(tl)[n:]


def run_variant(naive: bool, cuts: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mwt-dnsbench-") as tmp_s, netlab.Lab() as lab, \
            dns_site(lab, Path(tmp_s), naive=naive) as tl:
        tmp = Path(tmp_s)
        totals = {"asked": 0, "first": 0, "retried": 0, "lost": 0}
        detect: list[float] = []
        for k in range(cuts):
            n = len(_events(tl))
            c = client(tl, tmp, 200, 0.2, f"cut{k}")
            time.sleep(1.0)
            t_cut = tl.cut("up1")
            if not wait_for(lambda n=n: _after(tl, n, ["disconnected", "mw_up1"]), 30):
                raise netlab.LabError("mwan3track never took up1 offline")
            detect.append(time.time() - t_cut)
            wait_for(lambda n=n: _after(tl, n, ["rebuilt", "mw_up1"]), 30)
            time.sleep(3.0)
            c.terminate()
            c.wait(timeout=30)
            tl.restore("up1")
            m = len(_events(tl))
            if not wait_for(lambda m=m: _after(tl, m, ["connected", "mw_up1"]), 30):
                raise netlab.LabError("mwan3track never brought up1 back")
            wait_for(lambda m=m: _after(tl, m, ["rebuilt", "mw_up1"]), 30)
            time.sleep(1.0)
            recs = [r for r in records(tmp, f"cut{k}") if r["t"] - r["ms"] / 1000 >= t_cut]
            totals["asked"] += len(recs)
            totals["first"] += sum(r["tries"] == 1 for r in recs)
            totals["retried"] += sum(r["tries"] > 1 for r in recs)
            totals["lost"] += sum(r["tries"] == 0 for r in recs)
        return {**totals, "detect": detect}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/dns.py needs root (network namespaces)", file=sys.stderr)
        return 1
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<8} {'cuts':>4} {'asked':>6} {'1st try':>8} {'retried':>8} {'lost':>5}  cut -> mwan3 offline")
    for name, naive in (("mwanctl", False), ("naive", True)):
        r = run_variant(naive, args.cuts)
        det = ", ".join(f"{d:.1f}" for d in r["detect"])  # type: ignore[union-attr]
        print(f"{name:<8} {args.cuts:>4} {r['asked']:>6} {r['first']:>8} {r['retried']:>8} {r['lost']:>5}  {det} s",
              flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
