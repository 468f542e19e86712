"""Many sites of dropbear test routers, and the routers' own count of their SSH connections.

Used by tests/test_sites*.py and bench/sites.py. Each site is written by ``tests.e2e.write_site``
(the topology every end-to-end test uses), renamed to its own site name, into one directory.

Counting is done on the routers' side, from the kernel's table of TCP sockets: a connection is
one ESTABLISHED socket whose *local* port is a router's dropbear port (the server end), so what
is counted is what dropbear has accepted and not yet seen closed, not what the client believes.
``accepted`` counts each router's sessions from dropbear's own log ("Child connection from").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from tests.e2e import _uplink_stock, write_site
except ImportError:  # pragma: no cover - tests/ on sys.path
    from e2e import _uplink_stock, write_site  # type: ignore[no-redef]

ESTABLISHED = "01"


@dataclass
class LabSite:
    name: str
    path: Path
    routers: dict[str, Any]          # router name -> routers.TestRouter


def start_sites(start: Callable[..., Any], base: Path, names: list[str], uplinks: tuple[str, ...] = ("dsl", "lte"),
                confirm_timeout: int = 30) -> tuple[Path, list[LabSite]]:
    """Start a mother and ``uplinks`` per site; write every site into ``base/sites/<name>.yaml``.
    ``start(router_name, files=...)`` starts one router (the router_factory fixture)."""
    sites_dir = base / "sites"
    sites_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        rs = {"mother": start(f"{name}-mother")}
        for u in uplinks:
            rs[u] = start(f"{name}-{u}", files=_uplink_stock())
        out.append(write_lab_site(base, sites_dir, name, rs, list(uplinks), confirm_timeout))
    return sites_dir, out


def write_lab_site(base: Path, sites_dir: Path, name: str, rs: dict[str, Any], uplinks: list[str],
                   confirm_timeout: int = 30) -> LabSite:
    work = base / f"work-{name}"
    work.mkdir(parents=True, exist_ok=True)
    site = write_site(work, rs, uplinks, confirm_timeout=confirm_timeout)
    text = site.path.read_text()
    if not text.startswith("site: lab\n"):
        raise AssertionError("tests.e2e.write_site changed its first line")
    path = sites_dir / f"{name}.yaml"
    path.write_text(f"site: {name}\n" + text[len("site: lab\n"):])
    return LabSite(name, path, rs)


def established(ports: set[int]) -> set[tuple[int, str, str]]:
    """Server-end ESTABLISHED TCP sockets on ``ports`` as (port, local, remote) (IPv4 loopback:
    the routers listen there), read with no parsing between the reads.

    The kernel walks /proc/net/tcp while it fills the buffer, so one reading is not one instant:
    a socket that closed early in the walk and one that opened late can both be listed. See
    ConnectionWatch for how the peak avoids counting such a pair as simultaneous."""
    chunks = []
    with open("/proc/net/tcp", "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):       # the kernel hands it out a page or so per call
            chunks.append(chunk)
    text = b"".join(chunks).decode()
    out: set[tuple[int, str, str]] = set()
    for line in text.splitlines()[1:]:
        parts = line.split()
        local, remote, state = parts[1], parts[2], parts[3]
        port = int(local.rsplit(":", 1)[1], 16)
        if state == ESTABLISHED and port in ports:
            out.add((port, local, remote))
    return out


@dataclass
class ConnectionWatch:
    """Samples the routers' connections until stopped: the peak over all routers at one instant,
    and each router's own peak.

    A connection listed in two readings in a row was open all the time between them (an address
    pair is not reused within milliseconds), so the connections two readings share were open
    together: the peaks count those, never one reading alone, which can list a connection that
    closed next to one that opened after it. A breach of the bound that lasts longer than one
    interval (2 ms) is seen; a shorter one can be missed."""

    ports: dict[int, str]                         # port -> router label
    interval: float = 0.002
    peak_total: int = 0
    peak_per_router: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        ports = set(self.ports)
        before = established(ports)
        while not self._stop.is_set():
            time.sleep(self.interval)
            now = established(ports)
            both = before & now
            before = now
            self.samples += 1
            self.peak_total = max(self.peak_total, len(both))
            per: dict[int, int] = {}
            for port, _, _ in both:
                per[port] = per.get(port, 0) + 1
            for port, n in per.items():
                label = self.ports[port]
                self.peak_per_router[label] = max(self.peak_per_router.get(label, 0), n)

    @contextmanager
    def running(self) -> Iterator[ConnectionWatch]:
        t = threading.Thread(target=self._run, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self._stop.set()
            t.join()


def watch(sites: list[LabSite]) -> ConnectionWatch:
    return ConnectionWatch({r.port: f"{s.name}/{n}" for s in sites for n, r in s.routers.items()})


def accepted(router: Any) -> int:
    """Sessions dropbear accepted so far, from its log (-E: one line per connection)."""
    log = Path(router.root) / "dropbear.log"
    return log.read_text(errors="replace").count("Child connection from") if log.exists() else 0
