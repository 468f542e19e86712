"""What a LAN client sees during a deploy: lost pings and lost new flows, per kind of change.

The site is tests/rotate_lab.py's: a client behind the mother (mwan3 stand-in steering its flows
for real), two uplinks, tunnels of real wireguard-go in namespaces, routers = dropbear test
routers bound to them. The client pings a target behind the uplinks every 50 ms (one long ICMP
flow) and opens a new UDP flow every 50 ms. Each scenario edits the topology and runs
`mwanctl deploy --yes` (rotation: `mwanctl keys rotate --yes`) while both streams run; a ping or
flow counts as lost when no reply came (the last 0.5 s before stopping are not judged).

First deploy: there is no tunnel before it, so what is printed is how long after the deploy began
the first new flow was answered, and how many were lost after that.
The machine is shared (2 CPUs, other work running): figures are noisy; run several times.

Run: sudo python bench/deploy.py --outage [--runs 3]   (or python bench/deploy_outage.py)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mwanctl.cli import main as cli  # noqa: E402
from tests import netlab, rotate_lab  # noqa: E402
from tests import routers as test_routers  # noqa: E402

UPLINKS = ["u1", "u2"]


def _edit(site: Any, old: str, new: str) -> None:
    text = site.path.read_text()
    if old not in text:
        raise SystemExit(f"scenario edit not applicable: {old!r}")
    site.path.write_text(text.replace(old, new, 1))


def _rename(site: Any) -> None:
    _edit(site, "mother:\n  host: 192.0.2.1\n", "mother:\n  name: hub\n  host: 192.0.2.1\n")
    _edit(site, "  mother:\n    host: 127.0.0.1", "  hub:\n    host: 127.0.0.1")


SCENARIOS: list[tuple[str, Callable[[Any], None], list[str]]] = [
    ("weight change", lambda s: _edit(s, "    weight: 1\n", "    weight: 3\n"), ["deploy"]),
    ("peer-only change (keepalive)", lambda s: _edit(s, "    host: 192.0.2.10\n",
                                                      "    host: 192.0.2.10\n    tunnel: {keepalive: 15}\n"),
     ["deploy"]),
    ("mother rename (peer description)", _rename, ["deploy"]),
    ("address change (pool)", lambda s: _edit(s, "access:\n", "tunnels:\n  pool: 10.253.0.0/16\naccess:\n"),
     ["deploy"]),
    ("key rotation", lambda s: None, ["keys", "rotate"]),
]


def _run(site: Any, *args: str) -> tuple[int, float]:
    t0 = time.monotonic()
    code = cli(site.argv(*args, str(site.path), "--yes"))
    return code, time.monotonic() - t0


def _first_deploy(lab: netlab.Lab, site: Any) -> str:
    """Nothing worked before, so there is no outage to count: how long until the client's new
    flows first get through (the first answered one, counted from when the deploy began; the
    probe starts a few hundred ms late under load, so the time is an upper bound by that much)
    and how many were lost after that (a service that came and went again). No ping here: one
    started before the deploy, with no route yet, gave up within its first dozen packets."""
    flows = rotate_lab.FlowStream(lab).start()
    code, took = _run(site, "deploy")
    try:
        rotate_lab.wait_tunnels(lab, UPLINKS)
    except netlab.LabError as e:
        print(f"first deploy: {e}", file=sys.stderr)
    time.sleep(1.5)
    f = flows.stop()
    answered = sorted(set(range(1, f.sent + 1)) - set(f.lost))
    if not answered:
        return f"exit {code}, {took:.1f} s; no new flow answered at all ({f.sent} sent)"
    later = [n for n in f.lost if n > answered[0]]
    return (f"exit {code}, {took:.1f} s; first new flow answered "
            f"{(answered[0] - 1) * flows.interval:.1f} s after the deploy began; after that new "
            f"flows lost {len(later)}/{f.sent - answered[0]}")


def one_site(tmp: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with netlab.Lab() as lab, test_routers.started_in(tmp) as factory:
        site = rotate_lab.build(lab, factory, tmp, UPLINKS, confirm_timeout=30)
        rows.append(("first deploy", _first_deploy(lab, site)))
        for name, change, cmd in SCENARIOS:
            change(site)
            if name == "mother rename (peer description)":
                site.routers["hub"] = site.routers["mother"]
            ping = rotate_lab.PingStream(lab).start()
            flows = rotate_lab.FlowStream(lab).start()
            time.sleep(1.0)
            code, took = _run(site, *cmd)
            time.sleep(1.5)
            p, f = ping.stop(), flows.stop()
            rows.append((name, f"exit {code}, {took:.1f} s; pings lost {p.lost_count}/{p.sent}; "
                               f"new flows lost {f.lost_count}/{f.sent}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    why = test_routers.missing_requirements() or netlab.skip_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 1
    results: dict[str, list[str]] = {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mwbench-outage-") as d:
            for name, text in one_site(Path(d)):
                results.setdefault(name, []).append(text)
    print("client-visible outage per deploy (client pings every 50 ms and opens a new UDP flow every "
          "50 ms; 2 uplinks; real wireguard-go in namespaces; shared 2-CPU machine)")
    for name, texts in results.items():
        for j, text in enumerate(texts, 1):
            print(f"  {name:34} run {j}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
