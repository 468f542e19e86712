"""The DNS lab: tests/tracker_lab.py's namespaces (client → mother → 2 uplinks over wireguard-go →
"inet") plus real dnsmasq as the mother's resolver and as two upstream resolvers in "inet".

* the upstream resolvers listen on 198.51.100.53 and .54 (answering every name), reached only
  through the uplinks;
* the mother's resolver runs with the dnsmasq section mwanctl's ``dns:`` makes of a stock-like
  ``/etc/config/dhcp`` (the ``server=`` / ``no-resolv`` / ``all-servers`` lines OpenWrt's dnsmasq
  init script writes for it);
* the mother's mwan3 config is mwanctl's compiled output for a topology shaped like the lab, with
  the ``mw_dns<n>`` rules (each server's own failover policy, server 1 preferring up1 and
  server 2 up2) in front of the catch-all: netifd_bridge's mwan3 emulation applies such rules to
  the router's own packets (OUTPUT), as mwan3's hook does. ``naive=True`` sends both rules to
  ``mw_balanced`` and drops ``allservers`` instead: the design mwanctl does not use (bench/dns.py
  compares the two);
* mwan3track's loop (tests/standins/mwan3track, profile `fast`) notices a cut.

Only addresses inside namespaces the lab made are used. Used by tests/test_dns_netns.py and
bench/dns.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mwanctl.compile import dns
from mwanctl.site import prepare
from mwanctl.topology import parse_topology
from mwanctl.topology.model import Topology
from mwanctl.tracking import PROFILES
from mwanctl.transports.ssh import parse_reply, remote_script
from mwanctl.uci.diff import apply_ops
from mwanctl.uci.model import UciPackage, UciSection
from mwanctl.uci.parse import parse
from mwanctl.uci.render import export

try:
    from tests import netlab
    from tests.polling import wait_for
    from tests.tracker_lab import HERE, STANDINS, TARGETS, TrackerLab
except ImportError:  # pragma: no cover
    import netlab  # type: ignore[no-redef]
    from polling import wait_for  # type: ignore[no-redef]
    from tracker_lab import HERE, STANDINS, TARGETS, TrackerLab  # type: ignore[no-redef]

UPSTREAMS = ("198.51.100.53", "198.51.100.54")
ANSWER = "192.0.2.80"
# /etc/config/dhcp's dnsmasq section as a stock OpenWrt has it (trimmed), plus a domain-specific
# forward the user set up, which mwanctl must keep
STOCK_DHCP = """
config dnsmasq
\toption domainneeded '1'
\toption localise_queries '1'
\toption local '/lan/'
\toption domain 'lan'
\toption expandhosts '1'
\toption cachesize '1000'
\toption authoritative '1'
\toption readethers '1'
\toption leasefile '/tmp/dhcp.leases'
\toption resolvfile '/tmp/resolv.conf.d/resolv.conf.auto'
\toption localservice '1'
\tlist server '/corp.example/10.9.9.9'
"""


def init_conf(section_options: dict[str, object]) -> str:
    """What OpenWrt's dnsmasq init script (dnsmasq_start) writes for the options that decide
    forwarding: ``no-resolv`` for noresolv 1, else ``resolv-file``; ``all-servers`` for
    allservers 1; one ``server=`` per list entry."""
    lines = ["# auto-generated config file from /etc/config/dhcp"]
    if section_options.get("noresolv") == "1":
        lines.append("no-resolv")
    else:
        lines.append(f"resolv-file={section_options.get('resolvfile', '/tmp/resolv.conf.d/resolv.conf.auto')}")
    servers = section_options.get("server", ())
    if section_options.get("allservers") == "1":
        lines.append("all-servers")
    lines += [f"server={s}" for s in (servers if isinstance(servers, tuple) else (servers,))]
    return "\n".join(lines) + "\n"


LAB_TOPOLOGY = f"""site: lab
mother: {{host: 192.168.1.1}}
uplinks:
  - {{name: up1, host: 172.16.1.1}}
  - {{name: up2, host: 172.16.2.1}}
tracking: {{profile: fast, targets: [{", ".join(TARGETS)}]}}
dns: {{servers: [{", ".join(UPSTREAMS)}]}}
"""


def compiled_mother(tmp: Path) -> tuple[Topology, dict[str, list]]:
    """mwanctl's own output for a topology shaped like the lab (uplinks up1, up2)."""
    t = parse_topology(LAB_TOPOLOGY)
    compiled, _ = prepare(t, tmp / "state")
    return t, compiled.routers["mother"].sections


def counter(lab: netlab.Lab, host: str) -> int:
    out = lab.run(host, ["nft", "list", "table", "inet", "mwtest_dnscount"]).stdout
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else -1


@contextmanager
def dns_site(lab: netlab.Lab, tmp: Path, naive: bool = False) -> Iterator[TrackerLab]:
    """Two uplinks built and ``setup`` run on them; at the end the resolvers this started are
    killed and the lab's tracking stopped (the test and bench/dns.py share this)."""
    tl = TrackerLab(lab, tmp, uplinks=2).build()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield setup(tl, tmp, procs, naive=naive)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        tl.stop_all(service=True)


def setup(tl: TrackerLab, tmp: Path, procs: list[subprocess.Popen[bytes]], naive: bool = False) -> TrackerLab:
    lab = tl.lab
    topo, sections = compiled_mother(tmp)
    assert topo.dns is not None
    # the mother's mwan3 as mwanctl compiles it (policies mw_dns1_p, mw_dns2_p, rules first);
    # mwan3 restarted on it
    mwan3 = sections["mwan3"]
    if naive:
        mwan3 = [_balanced_rule(s) for s in mwan3]
    (tl.tmp / "mwan3").write_text(export(UciPackage("mwan3", mwan3)))
    tl.mwan3_stop()
    tl.mwan3_start()
    # the mother's dhcp as mwanctl's plan leaves it
    before = parse(STOCK_DHCP, "dhcp")
    ops, problems = dns.dnsmasq_ops(before, topo.dns, "mother")
    assert problems == []
    after = apply_ops(before, "dhcp", ops)
    opts = after.of_type("dnsmasq")[0].options
    assert opts["server"] == ("/corp.example/10.9.9.9", *UPSTREAMS)
    assert (opts["noresolv"], opts["allservers"]) == ("1", "1")
    if naive:
        opts = {k: v for k, v in opts.items() if k != "allservers"}
    conf = init_conf(dict(opts))
    (tmp / "dnsmasq.mother.conf").write_text(conf)
    (tl.conf / "mwan3").write_text((tl.tmp / "mwan3").read_text())     # for the probe's `uci show`
    # upstream resolvers in "inet", reached only through the uplinks
    for a in UPSTREAMS:
        lab.run("inet", ["ip", "addr", "add", f"{a}/32", "dev", "lo"])
    procs.append(subprocess.Popen(lab.argv_for("inet", [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        "--bind-interfaces", *(f"--listen-address={a}" for a in UPSTREAMS), "--except-interface=lo",
        f"--address=/#/{ANSWER}", "--user=root", f"--pid-file={tmp / 'up.pid'}",
        "--log-queries", f"--log-facility={tmp / 'upstream.log'}"]), stdin=subprocess.DEVNULL))
    # the mother's resolver: its generated config, listening on the LAN address only
    procs.append(subprocess.Popen(lab.argv_for("mother", [
        "dnsmasq", "--keep-in-foreground", f"--conf-file={tmp / 'dnsmasq.mother.conf'}", "--no-hosts",
        "--bind-interfaces", "--listen-address=192.168.1.1", "--except-interface=lo", "--user=root",
        f"--pid-file={tmp / 'mother.pid'}", "--log-queries", f"--log-facility={tmp / 'mother.log'}"]),
        stdin=subprocess.DEVNULL))
    # count the DNS packets each uplink forwards (before its cut drops them)
    for u in tl.uplinks:
        lab.run(u, ["nft", "-f", "-"], input=(
            "table inet mwtest_dnscount {\n chain c {\n  type filter hook forward priority -20; policy accept;\n"
            "  udp dport 53 counter\n }\n}\n"))
    tl.start_mwan3track(PROFILES["fast"])
    if not wait_for(lambda: b"started" in _log_bytes(tmp / "mother.log") or (tmp / "mother.pid").exists(), 10):
        raise netlab.LabError("the mother's dnsmasq did not start")
    time.sleep(0.5)
    return tl


def _log_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError:
        return b""


def client(tl: TrackerLab, tmp: Path, count: int, interval: float, name: str) -> subprocess.Popen[bytes]:
    out = tmp / f"{name}.jsonl"
    return subprocess.Popen(tl.lab.argv_for("client", [sys.executable, str(HERE / "dnsprobe.py"), "192.168.1.1",
                                                       str(count), str(interval), str(out)]),
                            stdin=subprocess.DEVNULL)


def records(tmp: Path, name: str) -> list[dict]:
    return [json.loads(ln) for ln in (tmp / f"{name}.jsonl").read_text().splitlines()]


def dns_probe(tl: TrackerLab, tmp: Path) -> str:
    """query.sh's dns probe, unmodified, in the mother: busybox sh and applets, the uci stand-in,
    dnsmasq's generated config where the init script puts it (a private /var for this command)."""
    bb = shutil.which("busybox")
    bindir = tmp / "probe-bin"
    if not bindir.exists():
        bindir.mkdir()
        for a in ("sh", "awk", "grep", "sleep", "ls", "mktemp", "mv", "rm", "cat", "kill", "nslookup", "mkdir"):
            (bindir / a).symlink_to(bb)  # type: ignore[arg-type]
        (bindir / "uci").symlink_to(STANDINS / "uci")
        (bindir / "python3").symlink_to(sys.executable)   # the uci stand-in's interpreter
    mark = "MWANCTL-dnstest"
    script = f"MW_MARK={mark}\nMW_PROBES=dns\n" + remote_script("lib.sh") + remote_script("query.sh")
    (tmp / "query-dns.sh").write_text(script)
    wrap = ('mount -t tmpfs mwt /var && mkdir /var/etc && ln -s /run /var/run && '
            'cp "$1" /var/etc/dnsmasq.conf.cfg01411c && exec env -i PATH="$3" UCI_STANDIN_CONFDIR="$4" '
            'UCI_STANDIN_SAVEDIR="$5" "$3/sh" "$2"')
    r = tl.lab.run("mother", ["sh", "-c", wrap, "wrap", str(tmp / "dnsmasq.mother.conf"), str(tmp / "query-dns.sh"),
                              str(bindir), str(tl.conf), str(tmp / "uci-save")], timeout=30)
    reply = parse_reply(r.stdout, mark, r.returncode, r.stderr)
    text, rc = reply.blocks["probe dns"]
    assert rc == 0, text
    return text




def _balanced_rule(s: UciSection) -> UciSection:
    if s.type == "rule" and s.name and s.name.startswith("mw_dns"):
        return UciSection(s.type, s.name, {**s.options, "use_policy": "mw_balanced"})
    return s
