"""The handover lab: client → mother → N uplinks → "internet", real wireguard-go tunnels.

Why: the tracker's promise (new traffic off a dead uplink in under a second, running flows moved,
back within two) is about packets, so it is measured on real tunnels, real routing and marks: the
mother's policy routing and new-flow choice are netifd_bridge's mwan3 emulation (the policy rebuilt
from empty on every event, as real mwan3 does), driven on every connected/disconnected event by
tests/standins/hotplug-call (what 15-mwan3 does on them). The
tracker itself (mwanctl/remote/tracker/mwanctl-track) runs unmodified under busybox sh with
busybox ping/awk in the mother's namespace, configured through the uci stand-in; the `fast`
profile is driven by tests/standins/mwan3track (mwan3track's loop).

Layout (uplink i = 1..N):

    client 192.168.1.100 ──lan── mother 192.168.1.1
    mother ul<i> 172.16.i.2/30 ── lan 172.16.i.1/30 up<i>      (the tunnel's underlay)
    mother mw_up<i> 10.254.0.(4i-2)/30 ══ WireGuard ══ mw_up<i> 10.254.0.(4i-3) up<i>
    up<i> wan 100.64.i.1/30 ── inet up<i> 100.64.i.2/30
    inet: targets 198.51.100.1, 198.51.100.2; the flow echo server 203.0.113.1

A cut drops everything up<i> would forward to or from its WAN (its tunnel stays up, so only
tracking can see the outage), as in the recordings of real mwan3 (tests/vectors/mwan3/failover).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TRACKER = REPO / "mwanctl" / "remote" / "tracker" / "mwanctl-track"
STANDINS = HERE / "standins"
TARGETS = ("198.51.100.1", "198.51.100.2")
ECHO = "203.0.113.1"
ECHO_PORT = 7007
CLIENT = "192.168.1.100"
APPLETS = ("ping", "awk", "sed", "sleep", "mkfifo", "rm", "mkdir", "cat", "env", "grep", "cut")

try:
    from tests import netlab
    from tests.netifd_bridge import REBUILD_PAUSES, BoundHost
except ImportError:  # pragma: no cover - tests/ on sys.path
    import netlab  # type: ignore[no-redef]
    from netifd_bridge import REBUILD_PAUSES, BoundHost  # type: ignore[no-redef]

from mwanctl.uci.parse import parse  # noqa: E402


def _network(uplinks: int, keys: dict[str, netlab.KeyPair]) -> dict[str, str]:
    """The mother's and each uplink's `network` package, as mwanctl renders them (trimmed)."""
    mother = []
    ups = {}
    for i in range(1, uplinks + 1):
        u = f"up{i}"
        m, k = keys[f"m{i}"], keys[u]
        mother.append(f"""
config interface 'mw_{u}'
\toption proto 'wireguard'
\toption private_key '{m.private}'
\tlist addresses '10.254.0.{4 * i - 2}/30'
\toption metric '{10 * i}'

config wireguard_mw_{u} 'mw_{u}_peer'
\toption public_key '{k.public}'
\toption endpoint_host '172.16.{i}.1'
\toption endpoint_port '51820'
\toption persistent_keepalive '25'
\toption route_allowed_ips '1'
\tlist allowed_ips '0.0.0.0/0'
""")
        ups[u] = f"""
config interface 'mw_{u}'
\toption proto 'wireguard'
\toption private_key '{k.private}'
\toption listen_port '51820'
\tlist addresses '10.254.0.{4 * i - 3}/30'

config wireguard_mw_{u} 'mw_{u}_peer'
\toption public_key '{m.public}'
\tlist allowed_ips '10.254.0.{4 * i - 2}/32'
"""
    return {"mother": "".join(mother), **ups}


def mwan3_config(uplinks: int, fast: Optional[dict[str, int]] = None) -> str:
    """The mother's mwan3 config: every uplink in one policy, weight 1 each."""
    out = []
    for i in range(1, uplinks + 1):
        out.append(f"\nconfig interface 'mw_up{i}'\n\toption enabled '1'\n\toption family 'ipv4'\n"
                   + "".join(f"\tlist track_ip '{t}'\n" for t in TARGETS))
    for i in range(1, uplinks + 1):
        out.append(f"\nconfig member 'mw_up{i}_m1_w1'\n\toption interface 'mw_up{i}'\n"
                   "\toption metric '1'\n\toption weight '1'\n")
    out.append("\nconfig policy 'mw_balanced'\n"
               + "".join(f"\tlist use_member 'mw_up{i}_m1_w1'\n" for i in range(1, uplinks + 1))
               + "\toption last_resort 'unreachable'\n")
    out.append("\nconfig rule 'mw_default_v4'\n\toption dest_ip '0.0.0.0/0'\n\toption family 'ipv4'\n"
               "\toption use_policy 'mw_balanced'\n")
    return "".join(out)


def tracker_config(uplinks: int, interval: float = 0.2, window: float = 0.6, stable: float = 1.0,
                   per_uplink: Optional[dict[int, dict[str, float]]] = None) -> str:
    """/etc/config/mwanctl as mwanctl compiles it for the tracker."""
    out = []
    for i in range(1, uplinks + 1):
        o = {"interval": interval, "window": window, "stable": stable, **(per_uplink or {}).get(i, {})}
        out.append(f"\nconfig uplink 'mw_up{i}'\n\toption device 'mw_up{i}'\n"
                   + "".join(f"\tlist target '{t}'\n" for t in TARGETS)
                   + "".join(f"\toption {k} '{v:g}'\n" for k, v in o.items()))
    return "".join(out)


class TrackerLab:
    """Builds the namespaces and tunnels; runs trackers; cuts and restores uplinks."""

    def __init__(self, lab: netlab.Lab, tmp: Path, uplinks: int = 2) -> None:
        self.lab, self.tmp, self.n = lab, Path(tmp), uplinks
        self.bin = self.tmp / "bin"
        self.conf = self.tmp / "config"
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- setup ------------------------------------------------------------------------------
    def build(self) -> "TrackerLab":
        lab = self.lab
        for h in ("client", "mother", "inet", *self.uplinks):
            lab.add_host(h)
        lab.link("client", "mother", f"{CLIENT}/24", "192.168.1.1/24", name_a="eth0", name_b="lan")
        lab.route("client", "add", "default", "via", "192.168.1.1")
        lab.run("mother", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                           "net.ipv4.conf.default.rp_filter=0"])
        lab.masquerade("mother", "mw_*")
        for t in (*TARGETS, ECHO):
            lab.run("inet", ["ip", "addr", "add", f"{t}/32", "dev", "lo"])
        for i, u in enumerate(self.uplinks, start=1):
            lab.link("mother", u, f"172.16.{i}.2/30", f"172.16.{i}.1/30", name_a=f"ul{i}", name_b="lan")
            lab.link(u, "inet", f"100.64.{i}.1/30", f"100.64.{i}.2/30", name_a="wan", name_b=f"up{i}")
            lab.route(u, "add", "default", "via", f"100.64.{i}.2")
            lab.run(u, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
            lab.masquerade(u, "wan")
        keys = {k: netlab.gen_keypair() for k in [*self.uplinks, *(f"m{i}" for i in range(1, self.n + 1))]}
        nets = _network(self.n, keys)
        for u in self.uplinks:
            lab.bring_up_wireguard(u, parse(nets[u], "network"))
        lab.bring_up_wireguard("mother", parse(nets["mother"], "network"))
        self._router_files()
        self.mwan3_start()
        self.rebuilder()
        for i in range(1, self.n + 1):
            if not lab.ping("mother", f"10.254.0.{4 * i - 3}", count=1, timeout=10):
                raise netlab.LabError(f"tunnel to up{i} passes no traffic")
        return self

    @property
    def uplinks(self) -> list[str]:
        return [f"up{i}" for i in range(1, self.n + 1)]

    def _router_files(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        self.conf.mkdir(parents=True, exist_ok=True)
        bb = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True, text=True).stdout.strip()
        for a in APPLETS:
            (self.bin / a).symlink_to(bb)
        (self.bin / "uci").symlink_to(STANDINS / "uci")
        (self.bin / "hotplug-call").symlink_to(STANDINS / "hotplug-call")
        # run by its own name, as procd runs /usr/sbin/mwan3track: the tracker finds it by that name
        (self.bin / "mwan3track").write_text(f"#!{bb} sh\n" + (STANDINS / "mwan3track").read_text())
        (self.bin / "mwan3track").chmod(0o755)
        (self.bin / "logger").write_text('#!/bin/sh\n# lab: syslog lines go to a file\n'
                                         'echo "$(cat /proc/uptime) $*" >> /run/mwtest-syslog.log\n')
        (self.bin / "logger").chmod(0o755)
        (self.tmp / "mwan3").write_text(mwan3_config(self.n))
        (self.conf / "mwanctl").write_text(tracker_config(self.n))

    def run_dir(self, host: str) -> Path:
        return self.lab.hosts[host].rundir

    def env(self) -> list[str]:
        return ["env", "-i", f"PATH={self.bin}:/usr/sbin:/usr/bin:/sbin:/bin",
                f"UCI_STANDIN_CONFDIR={self.conf}", f"UCI_STANDIN_SAVEDIR={self.tmp / 'uci-save'}"]

    def mwan3_start(self) -> None:
        """What `mwan3 start` leaves (netifd_bridge's emulation: rules, tables, the policy with
        every interface online) and the hotplug states the trackers read."""
        h = self.lab.hosts["mother"]
        BoundHost("mother", h.netns, h.rundir).mwan3((self.tmp / "mwan3").read_text(), [], "lan",
                                                     REBUILD_PAUSES)
        state = self.run_dir("mother") / "mwan3" / "iface_state"
        state.mkdir(parents=True, exist_ok=True)
        for u in self.uplinks:
            (state / f"mw_{u}").write_text("online\n")

    def rebuilder(self) -> None:
        """The resident mwan3 emulation hotplug-call asks (netifd_bridge.hotplug_server)."""
        h = self.lab.hosts["mother"]
        req = h.rundir / "mwtest-hotplug.req"
        if not req.exists():
            os.mkfifo(req)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.tmp / "rebuilder.log", "ab") as out:
            self.service = subprocess.Popen(
                [sys.executable, str(HERE / "netifd_bridge.py"), "hotplug-server", h.netns, "mother",
                 str(h.rundir), str(self.tmp / "mwan3"), "lan"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def mwan3_stop(self) -> None:
        """What `mwan3 stop` does to the state the trackers see: both state trees go (and the
        emulation starts from scratch next time)."""
        import shutil

        shutil.rmtree(self.run_dir("mother") / "mwan3", ignore_errors=True)
        shutil.rmtree(self.run_dir("mother") / "mwan3track", ignore_errors=True)
        (self.run_dir("mother") / "mwan3.json").unlink(missing_ok=True)

    # -- processes --------------------------------------------------------------------------
    def spawn(self, host: str, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "ab") as out:
            p = subprocess.Popen(self.lab.argv_for(host, [*self.env(), *argv]), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start_tracker(self, config: Optional[str] = None) -> subprocess.Popen[bytes]:
        if config is not None:
            (self.conf / "mwanctl").write_text(config)
        return self.spawn("mother", ["busybox", "sh", str(TRACKER), "run"], "tracker.log")

    def start_guard(self) -> subprocess.Popen[bytes]:
        return self.spawn("mother", ["busybox", "sh", str(TRACKER), "guard"], "guard.log")

    def start_mwan3track(self, profile: dict[str, int]) -> list[subprocess.Popen[bytes]]:
        """One emulated mwan3track per uplink with a profile's numbers (tracking.PROFILES)."""
        p = profile
        return [self.spawn("mother", [str(self.bin / "mwan3track"), f"mw_{u}", f"mw_{u}",
                                      " ".join(TARGETS), "1", str(p["count"]), str(p["timeout"]),
                                      str(p["interval"]), str(p["failure_interval"]),
                                      str(p["recovery_interval"]), str(p["down"]), str(p["up"])],
                           f"mwan3track-{u}.log") for u in self.uplinks]

    def stop(self, p: subprocess.Popen[bytes], sig: int = 15) -> None:
        netlab.stop_process(p, sig, grace=10)

    def stop_all(self, service: bool = False) -> None:
        if service and self.service.poll() is None:
            self.service.kill()
            self.service.wait()
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs.clear()   # each spawn is its own process group: its pings went with it

    # -- what the mother's trackers did -----------------------------------------------------
    def read(self, rel: str) -> str:
        try:
            return (self.run_dir("mother") / rel).read_text()
        except FileNotFoundError:
            return ""

    def tracker_state(self, iface: str) -> dict[str, str]:
        text = self.read(f"mwanctl-track/{iface}.state")
        return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)

    def iface_state(self, iface: str) -> str:
        return self.read(f"mwan3/iface_state/{iface}").strip()

    def hotplug_log(self) -> list[str]:
        return self.read("mwtest-hotplug.log").splitlines()

    # -- faults -----------------------------------------------------------------------------
    def cut(self, uplink: str) -> float:
        """The uplink's upstream dies (its tunnel stays up). Returns the time just before."""
        t = time.time()
        self.lab.run(uplink, ["nft", "-f", "-"], input=(
            "table inet mwtest_cut {\n chain cutfwd {\n  type filter hook forward priority -10; policy drop;\n }\n}\n"))
        return t

    def restore(self, uplink: str) -> float:
        t = time.time()
        self.lab.run(uplink, ["nft", "delete", "table", "inet", "mwtest_cut"])
        return t

    def loss(self, uplink: str, percent: int) -> None:
        """Random loss on everything the uplink forwards, in both directions (nftables: this
        kernel has no netem)."""
        self.lab.run(uplink, ["nft", "-f", "-"], input=(
            "table inet mwtest_loss {\n chain lossfwd {\n  type filter hook forward priority -5; policy accept;\n"
            f"  numgen random mod 100 < {int(percent)} drop\n }}\n}}\n"))

    def no_loss(self, uplink: str) -> None:
        self.lab.run(uplink, ["nft", "delete", "table", "inet", "mwtest_loss"], check=False)


# --------------------------------------------------------------------------- traffic

def via_uplink(via: str | None) -> str | None:
    return None if not via else f"up{via.split('.')[2]}"      # 100.64.<i>.1


class Traffic:
    def __init__(self, tl: TrackerLab, tmp: Path) -> None:
        self.tl, self.path = tl, tmp / "flows.jsonl"
        probe = str(HERE / "udpprobe.py")
        self.echo = subprocess.Popen(tl.lab.argv_for("inet", [sys.executable, probe, "echo", ECHO, str(ECHO_PORT),
                                                              "--via"]))
        time.sleep(0.5)
        self.client = subprocess.Popen(tl.lab.argv_for("client", [sys.executable, probe, "handover", ECHO,
                                                                  str(ECHO_PORT), "0.05", "0.02", str(self.path)]),
                                       stdin=subprocess.PIPE)

    def records(self) -> list[list]:
        try:
            return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def running_on(self) -> str | None:
        for kind, _n, _s, got, via in reversed(self.records()):
            if kind == "run" and got is not None:
                return via_uplink(via)
        return None

    def stop(self) -> None:
        assert self.client.stdin is not None
        self.client.stdin.close()
        self.client.wait(timeout=10)
        self.echo.kill()
        self.echo.wait()


def one_cut(tl: TrackerLab, tr: Traffic, hold: float) -> dict[str, float] | None:
    time.sleep(1.0)
    u = tr.running_on()
    if u is None:
        return None
    uc = _uptime()
    tc = tl.cut(u)
    time.sleep(hold)
    ur = _uptime()
    trs = tl.restore(u)
    deadline = time.time() + 15
    back = None
    while time.time() < deadline and back is None:
        time.sleep(0.3)
        for kind, _n, sent, got, via in tr.records():
            if kind == "new" and sent >= trs and got is not None and via_uplink(via) == u:
                back = sent - trs
                break
    time.sleep(3.2)            # losses are only known 3 s after the send
    recs = tr.records()
    lost = [s for k, _n, s, g, _v in recs if k == "new" and tc <= s < trs and g is None]
    run = sorted((g, via_uplink(v)) for k, _n, _s, g, v in recs if k == "run" and g is not None)
    # the longest silence of the running flow from just before the cut until after the restore
    # (replies in flight at the cut still arrive a moment later: the gap is between replies)
    times = [g for g, _v in run if tc - 0.5 <= g <= trs + 3.0]
    gap = max((b - a for a, b in zip(times, times[1:])), default=float("nan"))
    return {"moved": (max(lost) - tc) if lost else 0.0, "lost": float(len(lost)), "gap": gap,
            "back": back if back is not None else float("nan"),
            "down_event": _event_after(tl, "disconnected", u, uc), "up_event": _event_after(tl, "connected", u, ur)}


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _event_after(tl: TrackerLab, action: str, uplink: str, since: float) -> float:
    """Seconds from ``since`` (uptime) to the first ``action`` event for the uplink's interface:
    when the tracker (or mwan3track) decided, before mwan3's rebuild."""
    for ln in tl.hotplug_log():
        parts = ln.split()
        if len(parts) == 3 and parts[1] == action and parts[2] == f"mw_{uplink}" and float(parts[0]) >= since:
            return float(parts[0]) - since
    return float("nan")
