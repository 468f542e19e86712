"""How a deploy scales: wall time, round trips and bytes per router, SSH and ubus.

What "N routers" means here: ONE site shaped like examples/home.yaml, scaled to 1 mother +
(N-1) uplinks. That is how mwanctl is used (a site is never a single router: it needs at least
one uplink), and it includes the part that does not parallelise: the mother is applied only
after every uplink is applied and confirmed. "1 router" is the mother of the 2-router site
deployed alone through the same ``Deployment`` (the CLI cannot express a one-router site); the
2-router site is printed too, so the ratio can be read against either.

First deploy = read every router, plan, apply (uplinks in parallel, then the mother), confirm each
from a fresh connection. No-op = the same again, which must only read. Counters come from the
transports (``Transport.counters``) of every connection a router got, logout included.

SSH: every router is a dropbear test router on 127.0.0.1 (tests/routers.py; needs root), running
the real remote scripts under busybox sh with the ``uci``/init/``wg`` stand-ins.
ubus: every router is one tests/rpcd_server.py instance (uhttpd's /ubus + rpcd stand-in) served
from a separate process, so the servers do not share the client's interpreter lock.

Run: sudo python bench/deploy.py [--sizes 1,2,10,50] [--parallel 8] [--only ssh|ubus]
     sudo python bench/deploy.py --outage [--runs 3]   (client-visible loss per kind of change)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mwanctl.compile import Compiled
from mwanctl.connect import ConnectOptions, transport_for
from mwanctl.deploy import Deployment
from mwanctl.site import prepare
from mwanctl.topology.load import load_topology
from mwanctl.topology.model import Topology
from mwanctl.transports.base import Transport
from tests import routers as test_routers

STOCK = ROOT / "tests" / "data" / "stock"
PASSWORD_ENV = "MWBENCH_RPCD_PASSWORD"
ACL_FILE = ROOT / "mwanctl" / "data" / "rpcd-acl-mwanctl.json"
RPCD_USER, RPCD_PASSWORD = "mwdeploy", "bench-pw"   # holds only mwanctl's shipped ACL, as documented


# ------------------------------------------------------------------------------------ topology

def router_names(n: int) -> list[str]:
    """``mother`` plus n-1 uplinks (at least one: a site needs it; see the module docstring)."""
    return ["mother"] + [f"u{i}" for i in range(1, max(2, n))]


def topology_text(n: int, access: dict[str, dict[str, Any]]) -> str:
    """examples/home.yaml scaled: uplinks weighted 3,1,3,1,... on the mother's LAN."""
    names = router_names(n)
    lines = ["site: bench", "mother:", "  host: 192.168.0.1", "  lan: {subnet: 192.168.0.0/16}",
             "uplinks:"]
    for i, name in enumerate(names[1:], start=1):
        lines += [f"  - name: {name}", f"    host: 192.168.{i // 250}.{i % 250 + 2}",
                  f"    weight: {3 if i % 2 else 1}"]
    lines += ["access:"]
    for name, acc in access.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {v}" for k, v in acc.items()]
    return "\n".join(lines) + "\n"


def only(compiled: Compiled, routers: list[str]) -> Compiled:
    """The same compiled site restricted to some routers (for the one-router run)."""
    return Compiled(compiled.site, {r: compiled.routers[r] for r in routers})


def stock_files(role: str) -> dict[str, str]:
    pkgs = ("network", "firewall", "mwan3") if role == "mother" else ("network", "firewall")
    return {p: (STOCK / p).read_text() for p in pkgs}


# ------------------------------------------------------------------------------------ measuring

@dataclass
class Run:
    wall: float
    phases: dict[str, float]       # "read", "uplinks", "mother": wall seconds of each stage
    cpu: dict[str, float]          # "client" (this process), "machine" (all CPUs): CPU seconds
    trips: dict[str, int]          # router -> round trips over all its connections
    sent: dict[str, int]           # router -> bytes sent
    connections: dict[str, int]    # router -> transports (connections) opened
    statuses: dict[str, str]
    mother_ops: int                # uci changes planned for the mother (its work grows with N)


@dataclass
class Recorder:
    """Wraps ``connect`` so every transport a router gets is counted, including confirm's."""

    connect: Callable[[str], Transport]
    made: dict[str, list[Transport]] = field(default_factory=dict)

    def __call__(self, router: str) -> Transport:
        t = self.connect(router)
        self.made.setdefault(router, []).append(t)
        return t


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all CPUs), from /proc/stat.

    Why not per router: dropbear reaps a session only at its next wake-up, so the CPU of an
    apply shows up in the next deploy's numbers; the machine-wide figure has no such lag (but
    includes anything else running on the machine).
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def deploy_once(compiled: Compiled, connect: Callable[[str], Transport], parallel: int) -> Run:
    rec = Recorder(connect)
    mother = next(r for r, c in compiled.routers.items() if c.role == "mother")
    marks: dict[str, float] = {}

    def progress(router: str, msg: str) -> None:
        if router == mother and not msg.startswith("reading"):
            marks.setdefault("mother", time.perf_counter())
    dep = Deployment(compiled, rec, confirm_timeout=60, parallel=parallel, progress=progress)
    busy0 = machine_busy()
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        dep.read()
        t_read = time.perf_counter()
        if dep.blocked:
            raise SystemExit("bench: deploy blocked: " + "; ".join(dep.blocked))
        mother_ops = dep.plans[mother].op_count
        outcomes = dep.apply()
    finally:
        dep.close()
    t_end = time.perf_counter()
    cpu = {"client": time.process_time() - cpu0, "machine": machine_busy() - busy0}
    bad = {r: o.message for r, o in outcomes.items() if o.status not in ("applied", "unchanged")}
    if bad:
        first = next(iter(bad.items()))
        raise SystemExit(f"bench: deploy failed on {len(bad)} router(s), e.g. {first[0]}: {first[1]}")
    t_mother = marks.get("mother", t_end)
    return Run(t_end - t0, {"read": t_read - t0, "uplinks": t_mother - t_read, "mother": t_end - t_mother},
               cpu,
               {r: sum(t.counters.round_trips for t in ts) for r, ts in rec.made.items()},
               {r: sum(t.counters.bytes_sent for t in ts) for r, ts in rec.made.items()},
               {r: len(ts) for r, ts in rec.made.items()},
               {r: o.status for r, o in outcomes.items()}, mother_ops)


# ------------------------------------------------------------------------------------ SSH

def start_ssh_routers(tmp: Path, names: list[str]) -> dict[str, test_routers.TestRouter]:
    def start(name: str) -> test_routers.TestRouter:
        return test_routers.start_router(tmp, name, files=stock_files("mother" if name == "mother" else "uplink"))
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(names, pool.map(start, names)))


def ssh_site(tmp: Path, n: int) -> tuple[Topology, Compiled, list[test_routers.TestRouter]]:
    names = router_names(n)
    rs = start_ssh_routers(tmp, names)
    known = tmp / "known_hosts"
    known.write_text("".join(r.known_hosts_path.read_text() for r in rs.values()))
    access = {name: {"host": "127.0.0.1", "port": r.port, "key": str(r.key_path),
                     "known_hosts": str(known)} for name, r in rs.items()}
    return (*_compile(tmp, n, access), list(rs.values()))


def _compile(tmp: Path, n: int, access: dict[str, dict[str, Any]]) -> tuple[Topology, Compiled]:
    path = tmp / "topology.yaml"
    path.write_text(topology_text(n, access))
    topo = load_topology(path)
    compiled, _ = prepare(topo, tmp / "state")
    if n == 1:
        compiled = only(compiled, ["mother"])
    return topo, compiled


# ------------------------------------------------------------------------------------ ubus

def expected_wg_dump(compiled: Compiled, router: str) -> str:
    """What ``wg show all dump`` shows once the router runs its compiled tunnels.

    The rpcd stand-in only replays a dump; the ubus apply polls it for the planned peers.
    """
    lines = []
    net = compiled.routers[router].sections["network"]
    for s in net:
        if s.type.startswith("wireguard_"):
            iface = s.type[len("wireguard_"):]
            lines.append(f"{iface}\t{s.options['public_key']}\t(none)\t(none)\t0.0.0.0/0\t0\t0\t0\toff")
    return "".join(line + "\n" for line in lines)


def serve_rpcd(spec_file: str) -> None:
    """Child process: one rpcd stand-in per router; print their URLs; serve until stdin closes."""
    from tests import rpcd_server as rs
    spec = json.loads(Path(spec_file).read_text())
    groups = {"unauthenticated": rs.DEFAULT_ACL_GROUPS["unauthenticated"], **json.loads(ACL_FILE.read_text())}
    users = [rs.User(RPCD_USER, RPCD_PASSWORD, ["mwanctl"], ["mwanctl"])]
    servers = {}
    for name, s in spec.items():
        rpcd = rs.Rpcd(Path(s["confdir"]), users=users, acl_groups=groups, wg_dump=s["wg_dump"])
        servers[name] = rs.RpcdServer(rpcd).__enter__()
    print(json.dumps({n: srv.url for n, srv in servers.items()}), flush=True)
    sys.stdin.read()
    for srv in servers.values():
        srv.__exit__(None, None, None)


def ubus_site(tmp: Path, n: int) -> tuple[Topology, Compiled, subprocess.Popen[str]]:
    names = router_names(n)
    # compile once with placeholder URLs to learn the peers, then point access at the servers
    _, compiled = _compile(tmp, n, {})
    spec = {}
    for name in names:
        confdir = tmp / "rpcd" / name
        confdir.mkdir(parents=True)
        for pkg, text in stock_files("mother" if name == "mother" else "uplink").items():
            (confdir / pkg).write_text(text)
        spec[name] = {"confdir": str(confdir), "wg_dump": expected_wg_dump(compiled, name)
                      if name in compiled.routers else ""}
    (tmp / "rpcd.json").write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, __file__, "--serve-rpcd", str(tmp / "rpcd.json")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls = json.loads(proc.stdout.readline())
    access = {name: {"transport": "ubus", "ubus_url": urls[name], "user": RPCD_USER,
                     "password_env": PASSWORD_ENV} for name in names}
    topo, compiled = _compile(tmp, n, access)
    return topo, compiled, proc


# ------------------------------------------------------------------------------------ report

@dataclass
class Row:
    transport: str
    n: int
    parallel: int
    kind: str
    run: Run

    def cells(self) -> list[str]:
        r = self.run
        trips = sorted(r.trips.values())
        per = f"{trips[0]}" if trips[0] == trips[-1] else f"{trips[0]}-{trips[-1]}"
        conns = sorted(r.connections.values())
        conn = f"{conns[0]}" if conns[0] == conns[-1] else f"{conns[0]}-{conns[-1]}"
        sent = sum(r.sent.values())
        return [self.transport, str(self.n), str(self.parallel), self.kind, f"{r.wall:.2f}",
                f"{r.phases['read']:.2f}", f"{r.phases['uplinks']:.2f}", f"{r.phases['mother']:.2f}",
                per, str(r.trips.get("mother", 0)), str(r.mother_ops), conn, f"{sent / self.n / 1024:.1f}",
                f"{r.cpu['client']:.1f}", f"{r.cpu['machine']:.1f}"]


HEADER = ["transport", "routers", "par", "deploy", "wall s", "read s", "uplinks s", "mother s",
          "trips/router", "mother trips", "mother ops", "conns/router", "KiB sent/router", "client CPU s", "machine CPU s"]


def table(rows: list[Row]) -> str:
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    out = []
    for i, c in enumerate(cells):
        out.append("  ".join(x.rjust(w) for x, w in zip(c, widths)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def goals(rows: list[Row]) -> list[str]:
    lines = []
    for tr in sorted({r.transport for r in rows}):
        mine = [r for r in rows if r.transport == tr]
        noop = max(max(r.run.trips.values()) for r in mine if r.kind == "no-op")
        first = max(max(r.run.trips.values()) for r in mine if r.kind == "first")
        lines.append(f"{tr}: no-op round trips per router, worst {noop} (goal 1): "
                     f"{'met' if noop <= 1 else 'MISSED'}")
        lines.append(f"{tr}: first-deploy round trips per router, worst {first} (goal <= 3): "
                     f"{'met' if first <= 3 else 'MISSED'}")
        for par in sorted({r.parallel for r in mine}):
            for kind in ("first", "no-op"):
                by_n = {r.n: r.run.wall for r in mine if r.kind == kind and r.parallel == par}
                big = max(by_n)
                for base in (1, 2):
                    if base in by_n and big != base:
                        ratio = by_n[big] / by_n[base]
                        lines.append(f"{tr}: parallel {par}, {kind} deploy: {big} routers / {base} = "
                                     f"{ratio:.2f}x (goal < 3x vs one): {'met' if ratio < 3 else 'MISSED'}")
    return lines


# ------------------------------------------------------------------------------------ main

def bench_size(transport: str, n: int, parallel: int) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix=f"mwbench-{transport}-{n}-"))
    routers: list[test_routers.TestRouter] = []
    proc: subprocess.Popen[str] | None = None
    try:
        if transport == "ssh":
            topo, compiled, routers = ssh_site(tmp, n)
        else:
            os.environ[PASSWORD_ENV] = RPCD_PASSWORD
            topo, compiled, proc = ubus_site(tmp, n)
        opts = ConnectOptions()

        def connect(router: str) -> Transport:
            return transport_for(topo, router, opts)
        first = deploy_once(compiled, connect, parallel)
        assert all(s == "applied" for s in first.statuses.values()), first.statuses
        noop = deploy_once(compiled, connect, parallel)
        assert all(s == "unchanged" for s in noop.statuses.values()), noop.statuses
        return [Row(transport, n, parallel, "first", first), Row(transport, n, parallel, "no-op", noop)]
    finally:
        for r in routers:
            r.stop()
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,2,10,50", help="routers per site (comma separated)")
    ap.add_argument("--parallel", default="8,64",
                    help="Deployment.parallel values to try (comma separated; the CLI default is 8)")
    ap.add_argument("--only", choices=("ssh", "ubus"), help="one transport only")
    ap.add_argument("--serve-rpcd", help=argparse.SUPPRESS)
    ap.add_argument("--outage", action="store_true",
                    help="instead: what a LAN client loses during each kind of change (bench/deploy_outage.py)")
    ap.add_argument("--runs", type=int, default=1, help="with --outage: repetitions")
    args = ap.parse_args(argv)
    if args.outage:
        from bench import deploy_outage
        return deploy_outage.main(["--runs", str(args.runs)])
    if args.serve_rpcd:
        serve_rpcd(args.serve_rpcd)
        return 0
    sizes = [int(x) for x in args.sizes.split(",")]
    pars = [int(x) for x in args.parallel.split(",")]
    transports = [args.only] if args.only else ["ssh", "ubus"]
    if "ssh" in transports:
        why = test_routers.missing_requirements()
        if why:
            print(f"skipping ssh: {why}", file=sys.stderr)
            transports.remove("ssh")
    rows: list[Row] = []
    for tr in transports:
        for par in pars:
            for n in sizes:
                if par > n and par != min(pars) and n > 1 and any(p >= n for p in pars if p < par):
                    continue  # the same run again: parallelism beyond the site size changes nothing
                print(f"... {tr}, {n} router(s), parallel {par}", file=sys.stderr, flush=True)
                rows += bench_size(tr, n, par)
    print(f"deploy benchmark: one site = mother + (N-1) uplinks (N=1: the mother alone); "
          f"{os.cpu_count()} CPUs shared by client and routers")
    print("read/uplinks/mother: wall seconds of each stage; trips/router: min-max over the site's routers; "
          "conns/router: connections opened (confirm always opens a fresh one); CPU: this process, "
          "and the whole machine (routers and rpcd stand-ins run on the same CPUs)")
    print(table(rows))
    print()
    for line in goals(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
