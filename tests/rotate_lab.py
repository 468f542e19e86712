"""The key-rotation lab: client → mother (mwan3) → N uplinks → "internet", all real namespaces.

Why: `mwanctl keys rotate` promises that a drained tunnel can be re-keyed while the client's
traffic flows over the others. Here the routers are dropbear test routers bound to namespaces
(tests/netifd_bridge.py), so every key mwanctl applies really rebuilds a wireguard-go device and
every drain really changes where the client's packets go.

Layout (uplink i = 1..N, named as in the topology):

    client 192.168.1.100 ──lan── mother 192.168.1.1
    mother ul<i> 172.16.i.2/30 ── lan 172.16.i.1/30 <uplink>, which also holds 192.0.2.(9+i)
                                  (the topology's `host`, hence the mother's WireGuard endpoint)
    <uplink> wan 100.64.i.1/30 ── up<i> 100.64.i.2/30 inet, which holds the target 198.51.100.1

Firewalls are not emulated, so what fw4 would make of mwanctl's zones is set here with nft: the
mother masquerades into the tunnels (zone ``mw_tun``), each uplink forwards and masquerades to its
WAN (``mw_tun`` → ``wan``).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent

try:
    from tests import netlab
    from tests.e2e import Site, run_cli, start_site
    from tests.netifd_bridge import bind_router
except ImportError:  # pragma: no cover - tests/ on sys.path
    import netlab  # type: ignore[no-redef]
    from e2e import Site, run_cli, start_site  # type: ignore[no-redef]
    from netifd_bridge import bind_router  # type: ignore[no-redef]

TARGET = "198.51.100.1"
CLIENT = "192.168.1.100"
ECHO_PORT = 7007


def _nft(lab: netlab.Lab, host: str, script: str) -> None:
    lab.run(host, ["nft", "-f", "-"], input=script)


def _sysctl(lab: netlab.Lab, host: str, *settings: str) -> None:
    lab.run(host, ["sysctl", "-q", "-w", *settings])


def build(lab: netlab.Lab, router_factory: Callable[..., Any], tmp: Path, uplinks: list[str],
          confirm_timeout: int = 60, tracking: bool = False, async_renew: bool = False) -> Site:
    """Namespaces, links, forwarding and NAT; test routers bound to them; the topology file.
    ``tracking``: the mother's mwan3track runs and its `ubus call mwan3 status` reports it.
    ``async_renew``: a renew changes the real device after the ubus call returned, as netifd
    runs it (the rotation tests; the deploy's rollback still assumes it done on return)."""
    for h in ("client", "mother", "inet", *uplinks):
        lab.add_host(h)
    lab.link("client", "mother", f"{CLIENT}/24", "192.168.1.1/24", name_a="eth0", name_b="lan")
    lab.route("client", "add", "default", "via", "192.168.1.1")
    # rp_filter off on the mother: replies come back on whichever tunnel the flow used
    _sysctl(lab, "mother", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0")
    lab.masquerade("mother", "mw_*")
    lab.run("inet", ["ip", "addr", "add", f"{TARGET}/32", "dev", "lo"])
    for i, u in enumerate(uplinks, start=1):
        lab.link("mother", u, f"172.16.{i}.2/30", f"172.16.{i}.1/30", name_a=f"ul{i}", name_b="lan")
        endpoint = f"192.0.2.{9 + i}"
        lab.run(u, ["ip", "addr", "add", f"{endpoint}/32", "dev", "lan"])
        lab.route("mother", "add", f"{endpoint}/32", "via", f"172.16.{i}.1")
        lab.link(u, "inet", f"100.64.{i}.1/30", f"100.64.{i}.2/30", name_a="wan", name_b=f"up{i}")
        lab.route(u, "add", "default", "via", f"100.64.{i}.2")
        _sysctl(lab, u, "net.ipv4.ip_forward=1")
        lab.masquerade(u, "wan")
    site = start_site(router_factory, tmp, uplinks, confirm_timeout=confirm_timeout)
    for i, u in enumerate(uplinks):
        assert f"host: 192.0.2.{10 + i}" in site.path.read_text()  # the endpoint set up above
        bind_router(site.routers[u], lab, u, async_renew=async_renew)
    bind_router(site.routers["mother"], lab, "mother", mother=True, lan_dev="lan", tracking=tracking,
                async_renew=async_renew)
    return site


def wait_tunnels(lab: netlab.Lab, uplinks: list[str], timeout: float = 30.0) -> None:
    """Every tunnel passes traffic: the mother pings each uplink's tunnel address."""
    deadline = time.monotonic() + timeout
    for i in range(len(uplinks)):
        addr = tunnel_address(lab, uplinks[i])
        while not lab.ping("mother", addr, count=1, timeout=2):
            if time.monotonic() > deadline:
                raise netlab.LabError(f"tunnel to {uplinks[i]} ({addr}) passes no traffic")


def deployed(lab: netlab.Lab, router_factory: Callable[..., Any], tmp: Path, capsys: Any, uplinks: list[str],
             confirm_timeout: int = 60, async_renew: bool = False) -> Site:
    """The lab built and deployed, every tunnel passing traffic: where the deploy and rotation
    tests start (the deploy's output is read here, so a test's checks read only its own command's)."""
    site = build(lab, router_factory, tmp, uplinks, confirm_timeout=confirm_timeout, async_renew=async_renew)
    code, _, err = run_cli(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, err
    wait_tunnels(lab, uplinks)
    return site


def tunnel_address(lab: netlab.Lab, uplink: str) -> str:
    """The uplink's own address on its tunnel (``.1`` of its /30)."""
    out = lab.run(uplink, ["ip", "-4", "-o", "addr", "show", "dev", f"mw_{uplink}"]).stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    if not m:
        raise netlab.LabError(f"{uplink} has no tunnel address: {out!r}")
    return m.group(1)


# --------------------------------------------------------------------------- traffic


@dataclass
class StreamResult:
    sent: int
    lost: list[int]               # sequence numbers without a reply
    note: str = ""

    @property
    def lost_count(self) -> int:
        return len(self.lost)


@dataclass
class PingStream:
    """One `ping` from the client every ``interval``: a single ICMP flow, as a call or a game
    would be (conntrack keeps it on the tunnel it started on)."""

    lab: netlab.Lab
    host: str = "client"
    target: str = TARGET
    interval: float = 0.05
    deadline: int = 900
    _proc: subprocess.Popen[str] | None = None
    _lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> "PingStream":
        argv = ["ping", "-n", "-O", "-i", str(self.interval), "-w", str(self.deadline), self.target]
        self._proc = subprocess.Popen(self.lab.argv_for(self.host, argv), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)

    def received(self) -> set[int]:
        return {int(m.group(1)) for ln in list(self._lines) if "bytes from" in ln
                for m in [re.search(r"icmp_seq=(\d+)", ln)] if m}

    def stop(self, settle: float = 0.5) -> StreamResult:
        """Stop sending; packets sent in the last ``settle`` seconds are not judged (a reply may
        still be on its way), every earlier one must have had its reply."""
        assert self._proc is not None and self._reader is not None
        cut = time.monotonic()
        time.sleep(settle)
        netlab.stop_process(self._proc, signal.SIGINT, grace=10)
        self._reader.join(timeout=5)
        text = "".join(self._lines)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
        seqs = [int(x) for x in re.findall(r"icmp_seq=(\d+)", text)]
        if m:
            sent, how = int(m.group(1)), f"ping: {m.group(1)} sent, {m.group(2)} replies"
        elif seqs:   # no summary (ping did not get to print it): what -O printed says how far it got
            sent, how = max(seqs), f"ping: no summary (exit {self._proc.returncode}), last seq {max(seqs)}"
        else:
            raise netlab.LabError(f"ping printed nothing usable: {text[-500:]!r}")
        judged = max(0, sent - int(settle / self.interval) - 2)
        got = self.received()
        _ = cut
        return StreamResult(judged, [s for s in range(1, judged + 1) if s not in got], how)


@dataclass
class FlowStream:
    """A new UDP flow every ``interval`` from the client to an echo at the target."""

    lab: netlab.Lab
    interval: float = 0.05
    _echo: subprocess.Popen[bytes] | None = None
    _probe: subprocess.Popen[str] | None = None

    def start(self) -> "FlowStream":
        script = str(HERE / "udpprobe.py")
        self._echo = subprocess.Popen(self.lab.argv_for("inet", [sys.executable, script, "echo", TARGET,
                                                                 str(ECHO_PORT)]),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        self._probe = subprocess.Popen(self.lab.argv_for("client", [sys.executable, script, "stream", TARGET,
                                                                    str(ECHO_PORT), str(self.interval)]),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def stop(self) -> StreamResult:
        assert self._probe is not None and self._echo is not None
        try:
            out, _ = self._probe.communicate(input="", timeout=20)
        finally:
            self._echo.kill()
            self._echo.wait()
        data = json.loads(out.strip().splitlines()[-1])
        return StreamResult(data["sent"], data["lost"], f"slowest echo {data['late_ms']} ms")


def flow_paths(lab: netlab.Lab) -> dict[str, int]:
    """Packets the mother sent per tunnel so far (``tx_packets`` of each mw_* device)."""
    out = lab.run("mother", ["ip", "-s", "-o", "link", "show"]).stdout
    paths = {}
    for line in out.splitlines():
        m = re.match(r"\d+: (mw_\w+)[:@]", line)
        if m:
            tx = re.search(r"TX:.*?\\\s+(\d+)\s+(\d+)", line)
            paths[m.group(1)] = int(tx.group(2)) if tx else -1
    return paths
