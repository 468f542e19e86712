"""Handover figures: mwanctl-track against mwan3's `fast` profile, on real tunnels (tests/tracker_lab.py).

Run as root: ``sudo .venv/bin/python bench/failover.py [--cuts 20] [--loss-minutes 10]``.

Per cut (the uplink carrying the running UDP flow loses its upstream; its tunnel stays up):
* moved: cut → the last lost new flow (after it every new flow takes another uplink), as in the
  recordings of real mwan3 (tests/vectors/mwan3/failover);
* lost: new flows (one every 50 ms) lost between cut and restore;
* gap: the running flow (one datagram every 20 ms) from its last reply before the cut to its next
  reply (over another uplink, or over the same one once restored: mwan3 alone leaves it pinned);
* back: restore → the first new flow over the restored uplink.
Then false failovers under random loss on the uplinks' forwarding path (nftables `numgen`, both
directions; the kernel here has no netem), and the tracker's CPU time and memory with 4 uplinks.
The mwan3 side is the lab's emulation (policy rebuild by tests/netifd_bridge.py `hotplug`, whose
own latency is printed: real mwan3 takes 0.07-0.13 s per rebuild in the recordings); `fast` is
driven by tests/standins/mwan3track, mwan3track's loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import netlab  # noqa: E402
from tracker_lab import TRACKER, TrackerLab, Traffic, one_cut, tracker_config  # noqa: E402

import mwanctl.topology  # noqa: E402,F401  (import order: tracking needs the topology package)
from mwanctl.tracking import PROFILES  # noqa: E402

UPLINKS = 4


def summary(name: str, rows: list[dict[str, float]]) -> None:
    def q(vals: list[float], p: float) -> float:
        vals = sorted(v for v in vals if v == v)
        return vals[min(len(vals) - 1, int(round(p * (len(vals) - 1))))] if vals else float("nan")

    print(f"\n{name}: {len(rows)} cuts")
    print(f"  {'':<27}{'p50':>8}{'p95':>8}{'max':>8}")
    for key, label in (("moved", "cut -> new flows moved (s)"), ("lost", "new flows lost"),
                       ("gap", "running UDP flow gap (s)"), ("back", "restore -> back (s)"),
                       ("down_event", "cut -> disconnected event"), ("up_event", "restore -> connected event")):
        vals = [r[key] for r in rows]
        print(f"  {label:<27}{q(vals, .5):>8.2f}{q(vals, .95):>8.2f}{q(vals, 1):>8.2f}")


def rebuild_latency(tl: TrackerLab) -> list[float]:
    out, pending = [], None
    for ln in tl.hotplug_log():
        parts = ln.split()
        if len(parts) == 3 and parts[1] in ("connected", "disconnected"):
            pending = float(parts[0])
        elif len(parts) == 3 and parts[1] == "rebuilt" and pending is not None:
            out.append(float(parts[0]) - pending)
            pending = None
    return out


def tree(pid: int) -> list[int]:
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [p for k in kids for p in tree(int(k))]


def cpu_mem(pid: int, seconds: float) -> tuple[float, int, int, int, int]:
    """CPU seconds of the process tree over ``seconds`` (live processes plus reaped children),
    RSS / PSS / private (clean + dirty) kB summed over the tree at the end, and the number of
    processes."""
    hz = os.sysconf("SC_CLK_TCK")

    def ticks() -> int:
        total = 0
        for p in tree(pid):
            try:
                f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if p == pid else 0)
        return total

    t0 = ticks()
    time.sleep(seconds)
    cpu = (ticks() - t0) / hz
    rss = pss = priv = 0
    procs = tree(pid)
    for p in procs:
        try:
            for ln in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if ln.startswith("Rss:"):
                    rss += int(ln.split()[1])
                elif ln.startswith("Pss:"):
                    pss += int(ln.split()[1])
                elif ln.startswith(("Private_Clean:", "Private_Dirty:")):
                    priv += int(ln.split()[1])
        except OSError:
            pass
    return cpu, rss, pss, priv, len(procs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--loss-minutes", type=float, default=10)
    ap.add_argument("--skip-fast", action="store_true")
    ap.add_argument("--skip-loss", action="store_true")
    a = ap.parse_args()
    why = netlab.skip_reason()
    if why:
        print(f"cannot run: {why}")
        return 1
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start (shared with other work)")
    tmp = Path(tempfile.mkdtemp(prefix="failover-"))
    with netlab.Lab() as lab:
        tl = TrackerLab(lab, tmp, UPLINKS).build()
        tl.start_mwan3track(PROFILES["fast"])     # the fallback: frozen by the tracker while it runs
        time.sleep(0.5)
        trk = tl.start_tracker()
        time.sleep(3)
        cpu, rss, pss, priv, n = cpu_mem(trk.pid, 60.0)
        print(f"tracker, {UPLINKS} uplinks x 2 targets, probe interval 0.2 s: CPU {cpu:.2f} s in 60 s "
              f"({cpu / 60 * 100:.2f} % of one core), {n} processes; memory summed over them: RSS {rss} kB, "
              f"PSS {pss} kB (shared pages split), private {priv} kB (Debian's glibc busybox)")
        tr = Traffic(tl, tmp)
        time.sleep(2)
        n_before = len(tl.hotplug_log())
        rows = [r for r in (one_cut(tl, tr, 3.0) for _ in range(a.cuts)) if r]
        summary("mwanctl-track (probe interval 0.2 s per target, window 0.6 s, stable 1 s)", rows)
        lat = rebuild_latency(tl)
        if lat:
            print(f"  lab's policy rebuild per event (counted in the figures above): median "
                  f"{statistics.median(lat):.2f} s, max {max(lat):.2f} s")
        ev = [ln for ln in tl.hotplug_log()[n_before:] if ln.split()[1:2] in (["connected"], ["disconnected"])]
        print(f"  connected/disconnected events: {len(ev)} for {len(rows)} cuts (one policy rebuild each)")
        if not a.skip_fast:
            tl.stop(trk)
            subprocess.run(tl.lab.argv_for("mother", [*tl.env(), "busybox", "sh", str(TRACKER), "release"]),
                           check=False)
            (tmp / "mother-hotplug-before-fast.log").write_text("\n".join(tl.hotplug_log()))
            rows = [r for r in (one_cut(tl, tr, 9.0) for _ in range(a.cuts)) if r]
            summary("mwan3 profile fast (emulated mwan3track loop: interval 1, timeout 1, down 2, up 2)", rows)
        tr.stop()
        tl.stop_all()
        if a.skip_loss:
            tl.stop_all(service=True)
            return 0
        # false failovers: tracker alone, loss on three uplinks
        per = {3: {"window": 1.0}}
        tl.mwan3_start()
        (tl.run_dir("mother") / "mwtest-hotplug.log").write_text("")
        trk = tl.start_tracker(tracker_config(UPLINKS, per_uplink=per))
        time.sleep(3)
        tl.loss("up1", 5)
        tl.loss("up2", 20)
        tl.loss("up3", 20)
        t0 = time.time()
        time.sleep(a.loss_minutes * 60)
        dur = time.time() - t0
        for u in ("up1", "up2", "up3"):
            tl.no_loss(u)
        counts = {u: sum(1 for ln in tl.hotplug_log() if ln.endswith(f"disconnected mw_{u}")) for u in tl.uplinks}
        print(f"\nfalse failovers in {dur / 60:.1f} min of random loss (each direction, so a probe is lost "
              "with 1-(1-p)^2), probe interval 0.2 s, 2 targets:")
        for u, label in (("up1", "5 % loss, window 0.6 s"), ("up2", "20 % loss, window 0.6 s"),
                         ("up3", "20 % loss, window 1.0 s"), ("up4", "no loss, window 0.6 s")):
            print(f"  {u}: {label}: {counts[u]} disconnected events")
        tl.stop_all(service=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
