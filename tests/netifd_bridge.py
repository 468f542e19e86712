"""What the test routers' netifd and mwan3 emulation do *for real* when a router is bound to a netns.

Why: the stand-ins (tests/standins) only keep an emulated view of netifd. A key rotation is only
proven when the tunnels really carry traffic, so a test router can be bound to a network namespace
of a :class:`netlab.Lab` (see :func:`bind_router`). From then on, whenever the emulated netifd
applies a WireGuard interface (network reload/restart, interface down/up, renew), the stand-in
calls this module's CLI, which rebuilds the device in the namespace from the router's
``/etc/config/network`` with netlab's own netifd-like bring-up (``Lab._setup_one``), and tears it
down when netifd would. ``wg show`` on a bound router runs the real ``wg`` in the namespace.

The CLI runs in the test process's mount namespace (the stand-in enters it with ``nsenter``):
inside a router's mount namespace ``/run`` is the router's own, so ``ip netns exec`` could not see
``/run/netns``. It reads one JSON request on stdin (see :func:`main`).

A ``renew`` (``ubus call network.interface.X renew``) is wireguard.sh's renew: ``wg syncconf`` on
the same device, sessions kept, nothing for mwan3.

mwan3 emulation (mother only; :class:`Mwan3` is the pure model, proven against the recordings in
tests/vectors/mwan3/ by tests/test_mwan3_emulation.py): the mother's mwan3 reacts to the events
real mwan3 2.12.2 reacts to, as its sources do:

* events: ``mwan3 ifdown|ifup`` from the stand-in, netifd's hotplug ``ifdown`` when a device goes
  and ``ifup`` when one is (re)built (a restart sends both), and mwan3track's ``disconnected``
  after an ifdown of a tracked interface that was online;
* every event rebuilds the policy the LAN's new flows meet as mwan3_set_policies_iptables does:
  first only the last-resort rule (``unreachable``: new flows in that moment are lost), then one
  member after another (``REBUILD_PAUSES`` between the steps), each step one nft transaction;
* ``ifup`` puts the interface back online whatever took it out: a netifd restart undoes
  ``mwan3 ifdown``; ``ifdown`` deletes its ip rules (``2000+id`` fwmark lookup ``id``,
  ``3000+id`` unreachable) and flushes table ``id``, ``ifup`` makes them again with ``default
  dev <iface>`` (netifd names a WireGuard device after its interface);
* marks as mwan3's: id ``n`` (position among the interface sections) is ``n << 8`` under 0x3F00,
  the last resort ``unreachable`` 0x3E00; a new flow's mark is kept in its connmark, so running
  flows stay on their tunnel until their conntrack entry goes (pitfalls).

A mother bound with ``tracking`` also runs mwan3track (:class:`Trackers`: the stand-in's real
pings over the tunnels, its files read back by the ubus stand-in as mwan3's rpcd plugin does);
its verdicts are not fed back into the policy. Without it tracking is not emulated: an interface
whose device exists stays online unless an event takes it out.

Not emulated either (real mwan3 does it): ``initial_state offline`` after start,
sticky rules, ipsets, policies other than the default rule's (mwan3 rebuilds every policy one
after another, so a later policy's blackhole comes later), ``flush_conntrack``, IPv6, the
``iif`` rules and the copies of main-table routes in each table (replies from a tunnel are
routed by the main table here), mwan3rtmon, and the real pauses' spread (fixed here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from mwanctl.uci.model import UciPackage  # noqa: E402
from mwanctl.uci.parse import parse  # noqa: E402

try:
    from tests import netlab
except ImportError:  # pragma: no cover - run as a script
    import netlab  # type: ignore[no-redef]

BINDING = "/etc/mwtest/netns.json"
MARK_MASK = 0x3F00
UNREACHABLE_MARK = 0x3E00
NFT_TABLE = "mwtest_mwan3"
# How long a policy rebuild leaves the chain empty, then how long between two members' restores.
# Measured on real mwan3 2.12.2 (tests/vectors/mwan3/rotation/): 8 new flows lost in 10 rebuilds
# at one new flow per 50 ms, i.e. about 40 ms without members per rebuild on that machine (a
# router's slower shell takes longer: pitfalls.md saw 100-250 ms).
REBUILD_PAUSES = (0.05, 0.05)


class BoundHost(netlab.Lab):
    """One host of a running Lab, driven from another process.

    Reuses the Lab's netifd-like bring-up, but wireguard-go is started detached (its pid kept in
    the host's run dir) because this process exits right after; the owning Lab kills every
    process of its namespaces on teardown, these included.
    """

    def __init__(self, host: str, netns: str, rundir: Path) -> None:
        super().__init__()
        self.hosts[host] = netlab._Host(host, netns, rundir)
        self._tmp = rundir.parent.parent          # Lab layout: <tmp>/<host>/run
        self.host = host

    def _pidfile(self, dev: str) -> Path:
        return self.hosts[self.host].rundir / "wireguard" / f"{dev}.pid"

    def _start_wireguard_go(self, host: str, dev: str) -> None:
        assert self._tmp is not None
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"}
        with open(self._tmp / host / f"wireguard-go-{dev}.log", "ab") as log:
            proc = subprocess.Popen(self.argv_for(host, ["wireguard-go", "-f", dev]),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        self._pidfile(dev).write_text(str(proc.pid))
        self.wait_for_uapi(host, dev, proc)

    def _stop_wireguard_go(self, key: tuple[str, str]) -> None:
        host, dev = key
        pidfile = self._pidfile(dev)
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            pid = 0
        if pid:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and netlab.pid_alive(pid):
                    time.sleep(0.02)
                if not netlab.pid_alive(pid):
                    break
        pidfile.unlink(missing_ok=True)
        self.wait_until_gone(host, dev)

    def close(self) -> list[str]:  # why: the Lab that owns the namespace tears it down, not us
        return []

    # -- netifd ---------------------------------------------------------------------------------
    def set_up(self, network: UciPackage, names: list[str]) -> None:
        """(Re)build these WireGuard interfaces exactly as netlab's bring-up does."""
        wanted = {w.name: w for w in netlab.read_wireguard_interfaces(network)}
        for name in names:
            wif = wanted.get(name)
            if wif is None:                       # disabled, auto 0, or not WireGuard: down
                self._stop_wireguard_go((self.host, name))
                continue
            self._secrets.update(wif.secrets())
            self._setup_one(self.host, wif)

    def set_down(self, names: list[str]) -> None:
        for name in names:
            self._stop_wireguard_go((self.host, name))

    def device_up(self, dev: str) -> bool:
        r = self._ip(self.host, "link", "show", "dev", dev, check=False)
        return r.returncode == 0 and "UP" in r.stdout.split(">")[0]

    # -- netifd renew ---------------------------------------------------------------------------
    def renew(self, network: UciPackage, names: list[str]) -> None:
        """wireguard.sh's renew: setup again on the same device (``wg syncconf`` of the config
        read from uci, addresses and routes re-sent): no new device, sessions kept, no hotplug
        mwan3 acts on (netifd sends ``ifupdate``)."""
        wanted = {w.name: w for w in netlab.read_wireguard_interfaces(network)}
        for name in names:
            wif = wanted.get(name)
            if wif is None or not self.device_up(name):
                continue
            self._secrets.update(wif.secrets())
            renew_device(self, self.host, wif)

    # -- mwan3 ----------------------------------------------------------------------------------
    def mwan3(self, config_text: str, events: list[list[str]], lan_dev: str,
              timing: tuple[float, float], trackdir: Optional[str] = None) -> dict[str, Any]:
        """Run mwan3's reaction to ``events`` ([source, action, iface]: source "cmd" for
        ``mwan3 ifdown|ifup``, "hotplug" for netifd's and the tracker's events) against the live
        namespace: rules, tables, and the policy rebuilt state by state with mwan3's pauses
        (``timing``: seconds the chain stays empty, then between members). The model's state
        lives in the host's run dir; a changed config restarts mwan3 (state from scratch).
        ``trackdir``: run mwan3track (tests/standins/mwan3track) for each tracked interface,
        its files there (see :class:`Trackers`)."""
        rundir = self.hosts[self.host].rundir
        state_file, log = rundir / "mwan3.json", rundir / "mwan3-events.log"
        model = Mwan3(parse(config_text, "mwan3"))
        devices = {n for n in model.interfaces() if self.device_up(n)}
        try:
            saved = json.loads(state_file.read_text())
        except (OSError, ValueError):
            saved = None
        ids = model.ids()
        trackers = Trackers(self, model, Path(trackdir)) if trackdir else None
        if saved is None or saved.get("config") != config_text:
            if trackers:
                trackers.start(devices)
            self._mwan3_steps(model.start(devices), ids, lan_dev, (0.0, 0.0), log, startup=True)
        else:
            model.hotplug, model.track = saved["hotplug"], saved["track"]
        for source, action, iface in events:
            if trackers and action in ("ifup", "ifdown"):
                trackers.event(action, iface, iface in devices)
            steps = (model.command(action, iface, devices) if source == "cmd"
                     else model.event(action, iface, iface in devices))
            self._mwan3_steps(steps, ids, lan_dev, timing, log)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": config_text, **model.to_json()}))
        os.replace(tmp, state_file)
        return {**model.to_json(), "policy": describe_chain(model.policy_states(model.default_policy())[-1])}

    def _mwan3_steps(self, steps: list[Step], ids: dict[str, int], lan_dev: str,
                     timing: tuple[float, float], log: Path, startup: bool = False) -> None:
        rules = self._ip(self.host, "-4", "rule", "show").stdout
        for pref, what in ((2000 + 61, "blackhole"), (2000 + 62, "unreachable")):
            # mwan3_set_general_rules: the last-resort marks (0x3D00, 0x3E00 under 0x3F00)
            if not any(ln.startswith(f"{pref}:") for ln in rules.splitlines()):
                self._ip(self.host, "-4", "rule", "add", "pref", str(pref), "fwmark",
                         f"{(pref - 2000) << 8:#x}/{MARK_MASK:#x}", what)
        with open(log, "a") as out:
            def say(text: str) -> None:
                out.write(f"{time.time():.6f} {text}\n")
                out.flush()
            for st in steps:
                i = ids.get(st.iface, 0)
                if st.kind == "log":
                    say(st.text)
                elif st.kind == "rules_del" and i:        # mwan3_delete_iface_rules/_route
                    for pref in (1000 + i, 2000 + i, 3000 + i):
                        while self._ip(self.host, "-4", "rule", "del", "pref", str(pref),
                                       check=False).returncode == 0:
                            pass
                    self._ip(self.host, "-4", "route", "flush", "table", str(i), check=False)
                elif st.kind == "rules_add" and i:        # mwan3_create_iface_rules/_route
                    for pref in (2000 + i, 3000 + i):
                        while self._ip(self.host, "-4", "rule", "del", "pref", str(pref),
                                       check=False).returncode == 0:
                            pass
                    mark = f"{i << 8:#x}/{MARK_MASK:#x}"
                    self._ip(self.host, "-4", "rule", "add", "pref", str(2000 + i), "fwmark", mark,
                             "lookup", str(i))
                    self._ip(self.host, "-4", "rule", "add", "pref", str(3000 + i), "fwmark", mark,
                             "unreachable")
                    if self.device_up(st.iface):
                        self._ip(self.host, "-4", "route", "replace", "default", "dev", st.iface,
                                 "table", str(i))
                elif st.kind == "policy":
                    states = st.states[-1:] if startup else st.states
                    took = 0.0
                    for n, chain in enumerate(states):
                        if n:     # the pause ends when the next state is live (nft takes a while)
                            time.sleep(max(0.0, (timing[0] if n == 1 else timing[1]) - took))
                        t0 = time.monotonic()
                        self.run(self.host, ["nft", "-f", "-"], input=nft_policy(chain, ids, lan_dev, st.outputs))
                        took = time.monotonic() - t0
                        say(f"POLICY {describe_chain(chain)}".rstrip())

# mwan3track's defaults (usr/sbin/mwan3track main: config_get ... <default>)
TRACK_DEFAULTS = {"reliability": "1", "count": "1", "timeout": "4", "interval": "10", "down": "5", "up": "5"}


@dataclass
class Trackers:
    """mwan3track per tracked interface of a bound mother, as procd and 15-mwan3 run it: the
    emulated loop (tests/standins/mwan3track, real pings bound to the tunnel's device in the
    namespace) writing its files under ``trackdir`` (the router's /var/run/mwan3track, which its
    ubus stand-in reads back as the rpcd plugin does).

    * mwan3 (re)start (a changed config: stop, ``rm -rf`` of the status dirs, start): every
      tracker of an enabled interface with track_ip starts (firstconnect: initial_state);
    * ifup (SIGUSR2 to the real one: firstconnect; STATUS initial_state unless it was online,
      ONLINE now, the counters reset, a round at once): the tracker is started anew, the files
      of its earlier rounds left as they are, as the real one leaves them;
    * ifdown (SIGUSR1: disconnected, then disabled): stopped, STATUS offline then disabled.

    Left out: the tracker's connected/disconnected events do not reach the lab's mwan3 model
    (its ``hotplug-call`` only logs them), so its policy does not follow tracking here."""

    host: "BoundHost"
    model: "Mwan3"
    trackdir: Path

    def _pid(self, iface: str) -> Optional[int]:
        try:
            return int((self.trackdir / iface / "PID").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, iface: str) -> None:
        pid = self._pid(iface)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)       # the loop and its ping/sleep
        except (ProcessLookupError, PermissionError):
            pass

    def start(self, devices: set[str]) -> None:
        import shutil
        if self.trackdir.is_dir():
            for iface in os.listdir(self.trackdir):
                self.stop(iface)
        shutil.rmtree(self.trackdir, ignore_errors=True)
        for iface in self.model.interfaces():
            if self.model.tracked(iface) and iface in devices:
                self._spawn(iface, self.model._opt(iface, "initial_state", "online"))

    def event(self, action: str, iface: str, device: bool) -> None:
        if not self.model.tracked(iface):
            return
        d = self.trackdir / iface
        if action == "ifup" and device:
            was = (d / "STATUS").read_text().strip() if (d / "STATUS").exists() else ""
            self.stop(iface)
            self._spawn(iface, "online" if was == "online" else self.model._opt(iface, "initial_state", "online"))
        elif action == "ifdown":
            self.stop(iface)
            d.mkdir(parents=True, exist_ok=True)
            up = str(int(float(Path("/proc/uptime").read_text().split()[0])))
            for name, text in (("STATUS", "offline"), ("OFFLINE", up), ("ONLINE", "0"),
                               ("STATUS", "disabled"), ("STARTED", "0")):
                (d / name).write_text(text + "\n")

    def _spawn(self, iface: str, initial: str) -> None:
        sec = self.model.config.get(iface)
        opts = sec.options if sec is not None else {}
        n = {k: str(opts.get(k, v)) for k, v in TRACK_DEFAULTS.items()}
        interval = n["interval"]
        ips = opts.get("track_ip", ())
        targets = " ".join(ips if isinstance(ips, tuple) else (str(ips),))
        bindir = self.trackdir.parent / "mwtest-bin"
        bindir.mkdir(parents=True, exist_ok=True)
        hp = bindir / "hotplug-call"
        if not hp.exists():
            hp.write_text("#!/bin/sh\n# the lab's mwan3 model does not hear the tracker: logged only\n"
                          f'echo "$(cat /proc/uptime) $ACTION $INTERFACE" >> {self.trackdir.parent}/mwtest-hotplug.log\n')
            hp.chmod(0o755)
        (self.trackdir / iface).mkdir(parents=True, exist_ok=True)
        argv = ["ip", "netns", "exec", self.host.hosts[self.host.host].netns, "env", "-i",
                f"PATH={bindir}:/usr/sbin:/usr/bin:/sbin:/bin", f"MWAN3TRACK_STATUS_DIR={self.trackdir}",
                f"INITIAL_STATE={initial}", "sh", str(HERE / "standins" / "mwan3track"), iface, iface, targets,
                n["reliability"], n["count"], n["timeout"], interval,
                str(opts.get("failure_interval", interval)), str(opts.get("recovery_interval", interval)),
                n["down"], n["up"]]
        with open(self.trackdir.parent / "mwtest-mwan3track.log", "ab") as out:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)


def renew_device(lab: netlab.Lab, host: str, wif: Any) -> None:
    """Apply ``wif`` to its existing device in place: syncconf, MTU, addresses (old ones not in
    the config removed, new ones added, kept ones untouched) and the peers' routes."""
    dev = wif.name
    lab.wg_conf(host, wif, "syncconf")
    if wif.mtu:
        lab._ip(host, "link", "set", "mtu", wif.mtu, "dev", dev, check=False)
    want = {}
    for address in wif.addresses:
        pfx = netlab._prefix_of(address)
        if pfx is not None:
            want[pfx[1]] = pfx[0]
    have = lab._ip(host, "-o", "addr", "show", "dev", dev).stdout
    have_set = {ln.split()[3] for ln in have.splitlines() if len(ln.split()) > 3}
    # netifd's update adds the new addresses, then flushes the old ones: the device never has
    # none (the kernel would drop every route through it, mwan3's tables included)
    for cidr, fam in want.items():
        if cidr not in have_set:
            extra = ["noprefixroute"] if wif.metric else []
            lab._ip(host, f"-{fam}", "addr", "add", cidr, "dev", dev, *extra, check=False)
            lab.subnet_route(host, wif, fam, cidr)
    for cidr in have_set - set(want):
        if not cidr.startswith("fe80:"):
            lab._ip(host, "addr", "del", cidr, "dev", dev, check=False)
    lab.peer_routes(host, wif, check=False)


# --------------------------------------------------------------------------- mwan3 2.12.2 model

Member = tuple[str, int, int]        # (interface, weight, total weight): the policy rule's comment
DEFAULT_LOWEST_METRIC = 256          # mwan3.sh: members with a higher metric are never used
HOTPLUG_ACTIONS = ("ifup", "ifdown", "connected", "disconnected")   # the rest: 15-mwan3 exits 1


@dataclass
class Step:
    """One thing mwan3 does to the live system, in order: ``log`` a syslog line, ``rules_add`` /
    ``rules_del`` an interface's ip rules and routing table, or rebuild the policy (``states``:
    the chain's contents one iptables-restore after another, ``[]`` = only the last-resort rule)."""

    kind: str
    iface: str = ""
    text: str = ""
    states: list[list[Member]] = field(default_factory=list)
    outputs: list[tuple[str, list[Member]]] = field(default_factory=list)   # see Mwan3.outputs


@dataclass
class Mwan3:
    """PURE: what mwan3 2.12.2 does on each event, from its sources (openwrt/packages net/mwan3:
    etc/hotplug.d/iface/15-mwan3, lib/mwan3/mwan3.sh, usr/sbin/mwan3, usr/sbin/mwan3track).

    State: ``hotplug`` is /var/run/mwan3/iface_state/<iface> (what the policies use), ``track``
    is mwan3track's /var/run/mwan3track/<iface>/STATUS.

    * 15-mwan3 handles ifup/ifdown/connected/disconnected (and nothing else: netifd's
      ``ifupdate`` after a renew is ignored). Each one ends in ``mwan3_set_policies_iptables``,
      which first flushes the policy chain down to its last-resort rule in one iptables-restore,
      then adds the online members one restore each (``mwan3_set_policy``): new flows meet an
      empty policy for a moment on every event.
    * ``ifup`` (netifd's hotplug, or ``mwan3 ifup``) sets the interface online (``initial_state``
      online) whatever took it out before: a netifd restart undoes ``mwan3 ifdown``.
    * ``ifdown`` (netifd's, or ``mwan3 ifdown``, which runs 15-mwan3 itself) sets it offline and
      deletes its ip rules and table; mwan3track gets SIGUSR1 and, when its STATUS was online,
      sends a ``disconnected`` event: a second rebuild.
    * mwan3track on SIGUSR2 (ifup) runs firstconnect: STATUS online and a ``connected`` event with
      FIRSTCONNECT=1, which 15-mwan3 ignores.
    """

    config: UciPackage
    hotplug: dict[str, str] = field(default_factory=dict)
    track: dict[str, str] = field(default_factory=dict)

    # -- config --------------------------------------------------------------------------------
    def interfaces(self) -> list[str]:
        return [s.name for s in self.config.of_type("interface") if s.name]

    def ids(self) -> dict[str, int]:
        """mwan3_update_iface_to_table: the position among all interface sections, from 1."""
        return {n: i + 1 for i, n in enumerate(self.interfaces())}

    def _opt(self, iface: str, option: str, default: str = "") -> str:
        sec = self.config.get(iface)
        v = sec.options.get(option) if sec is not None else None
        return str(v) if isinstance(v, str) else default

    def enabled(self, iface: str) -> bool:
        return iface in self.ids() and self._opt(iface, "enabled", "0") in ("1", "on", "true", "yes")

    def tracked(self, iface: str) -> bool:
        """mwan3's init starts a tracker only for an enabled interface with track_ip."""
        sec = self.config.get(iface)
        return self.enabled(iface) and sec is not None and bool(sec.options.get("track_ip"))

    def default_policy(self) -> Optional[str]:
        """The policy of the last IPv4 catch-all rule (the one the LAN's new flows meet)."""
        rules = [s for s in self.config.of_type("rule") if s.options.get("dest_ip") in ("0.0.0.0/0", None)
                 and s.options.get("family", "ipv4") in ("ipv4", "any")]
        return str(rules[-1].options.get("use_policy", "")) if rules else None

    # -- the policy chain ----------------------------------------------------------------------
    def policy_states(self, policy: Optional[str]) -> list[list[Member]]:
        """mwan3_create_policies_iptables + mwan3_set_policy for one policy: the chain after each
        iptables-restore (IPv4)."""
        states: list[list[Member]] = [[]]
        sec = self.config.get(policy) if policy else None
        if sec is None:
            return states
        used = sec.options.get("use_member", ())
        chain: list[Member] = []
        lowest, total = DEFAULT_LOWEST_METRIC, 0
        for name in (used if isinstance(used, tuple) else (used,)):
            m = self.config.get(str(name))
            if m is None:
                continue
            iface = str(m.options.get("interface", ""))
            metric, weight = int(str(m.options.get("metric", "1"))), int(str(m.options.get("weight", "1")))
            if not iface or metric > DEFAULT_LOWEST_METRIC or iface not in self.ids():
                continue
            if self._opt(iface, "family", "ipv4") != "ipv4" or self.hotplug.get(iface) != "online":
                continue
            if metric < lowest:                       # is_lowest: flush, then this member alone
                chain, lowest, total = [(iface, weight, weight)], metric, weight
            elif metric == lowest:                    # inserted on top with weight/total
                total += weight
                chain = [(iface, weight, total)] + chain
            else:
                continue
            states.append(list(chain))
        return states

    def rebuild(self) -> Step:
        return Step("policy", states=self.policy_states(self.default_policy()), outputs=self.outputs())

    def outputs(self) -> list[tuple[str, list[Member]]]:
        """The router's own traffic (mwan3 hooks OUTPUT too): (``dest_ip``, its policy's chain)
        for every IPv4 rule with a ``dest_ip`` other than the catch-all, in rule order, e.g.
        mwanctl's ``mw_dns<n>`` for the resolver's upstreams. Only those: the catch-all is not
        applied to OUTPUT here (the lab's tunnels' own packets would need mwan3's
        connected-network ipset), and such a policy's chain is set at once, not member by member."""
        out = []
        for s in self.config.of_type("rule"):
            dest, pol = s.options.get("dest_ip"), s.options.get("use_policy")
            if (isinstance(dest, str) and dest != "0.0.0.0/0" and isinstance(pol, str)
                    and s.options.get("family", "ipv4") == "ipv4"):
                out.append((dest, self.policy_states(pol)[-1]))
        return out

    # -- events --------------------------------------------------------------------------------
    def start(self, devices: set[str]) -> list[Step]:
        """/etc/init.d/mwan3 start: trackers start (firstconnect: online), every enabled interface
        whose device is up gets its rules and state (ifup with MWAN3_STARTUP=init, no rebuild),
        then one policy build."""
        self.hotplug, self.track = {}, {}
        steps: list[Step] = []
        for iface in self.interfaces():
            if not self.enabled(iface):
                continue
            if self.tracked(iface):
                self.track[iface] = "online" if iface in devices else "disabled"
            if iface in devices:
                self.hotplug[iface] = self._ifup_status(iface)
                steps.append(Step("rules_add", iface))
        return steps + [self.rebuild()]

    def _ifup_status(self, iface: str) -> str:
        if self._opt(iface, "initial_state", "online") == "offline":
            return "online" if self.track.get(iface) == "online" else "offline"
        return "online"

    def command(self, verb: str, iface: str, devices: set[str]) -> list[Step]:
        """``mwan3 ifdown|ifup <iface>`` (usr/sbin/mwan3): 15-mwan3 run directly with that action;
        ifup only when netifd reports the interface up with a device."""
        if verb == "ifup" and iface not in devices:
            return [Step("log", iface, f"The network interace '{iface}' is not up.")]
        return self.event(verb, iface, iface in devices)

    def event(self, action: str, iface: str, device: bool) -> list[Step]:
        """One run of 15-mwan3 (from netifd's hotplug, ``mwan3 ifdown/ifup`` or mwan3track), and
        what mwan3track then sends in turn."""
        if action not in HOTPLUG_ACTIONS:
            return []
        if action in ("ifup", "connected") and not device:
            return [Step("log", iface, f"{action} called on {iface} with no device set")]
        if not self.enabled(iface):
            return [Step("log", iface, f"mwan3 hotplug on {iface} not called because interface disabled")]
        status = self._ifup_status(iface)
        steps = [Step("log", iface, f"Execute {action} event on interface {iface}")]
        if action == "connected":
            self.hotplug[iface] = "online"
            steps.append(self.rebuild())
        elif action == "disconnected":
            self.hotplug[iface] = "offline"
            steps.append(self.rebuild())
        elif action == "ifup":
            steps.append(Step("rules_add", iface))
            self.hotplug[iface] = status
            if status == "online":
                steps.append(self.rebuild())
            if self.tracked(iface):                 # SIGUSR2: firstconnect, FIRSTCONNECT=1 event
                if device:
                    self.track[iface] = status if self.track.get(iface) != "online" else "online"
                else:
                    self.track[iface] = "disabled"
        else:  # ifdown
            self.hotplug[iface] = "offline"
            steps.append(Step("rules_del", iface))
            steps.append(self.rebuild())
            if self.tracked(iface):                 # SIGUSR1: disconnected, then disabled
                before = self.track.get(iface)
                self.track[iface] = "offline"
                if before in ("online", "disconnecting"):
                    steps.append(Step("log", iface, f"Interface {iface} is offline"))
                    steps += self.event("disconnected", iface, device)
                else:
                    steps.append(Step("log", iface, f"Skip disconnected event for {iface}"))
                self.track[iface] = "disabled"
        return steps

    def to_json(self) -> dict[str, Any]:
        return {"hotplug": self.hotplug, "track": self.track}


def nft_policy(chain: list[Member], ids: dict[str, int], lan_dev: str,
               outputs: Sequence[tuple[str, list[Member]]] = ()) -> str:
    """One nft transaction for the LAN's new flows, rule for rule as mwan3's iptables chain: a
    flow keeps its connmark; a new one meets the members top down (``statistic --probability
    weight/total``, the last one unconditional); with no member, the last resort (unreachable),
    which mwan3's hook also saves to the connmark. ``outputs``: the router's own packets to each
    address meet that rule's policy chain (a ``route`` hook, so a new mark re-routes them, as
    the mangle OUTPUT chain does)."""
    rules = _pick_rules(chain, ids)
    out_chains: list[str] = []
    out_jumps: list[str] = []
    for n, (dest, ochain) in enumerate(outputs):
        out_jumps.append(f"    ip daddr {dest} jump out{n}")
        out_chains += [f"  chain out{n} {{", *[f"    {r}" for r in _pick_rules(ochain, ids)], "  }"]
    return "\n".join([
        f"table ip {NFT_TABLE} {{}}",
        f"delete table ip {NFT_TABLE}",
        f"table ip {NFT_TABLE} {{",
        "  chain pre {",
        "    type filter hook prerouting priority mangle; policy accept;",
        f'    iifname "{lan_dev}" jump pick',
        "  }",
        *(["  chain out {", "    type route hook output priority mangle; policy accept;", *out_jumps, "  }",
           *out_chains] if outputs else []),
        "  chain pick {",
        *[f"    {r}" for r in rules],
        "  }",
        "}",
        "",
    ])


def _pick_rules(chain: list[Member], ids: dict[str, int]) -> list[str]:
    rules = [f"ct mark and {MARK_MASK:#x} != 0 meta mark set ct mark and {MARK_MASK:#x} return"]
    for iface, weight, total in chain:
        mark = f"{ids[iface] << 8:#x}"
        per_mille = weight * 1000 // total
        cond = "" if per_mille >= 1000 else f"numgen random mod 1000 < {per_mille} "
        rules.append(f"{cond}ct mark set {mark} meta mark set {mark} return")
    if not chain:
        rules.append(f"ct mark set {UNREACHABLE_MARK:#x} meta mark set {UNREACHABLE_MARK:#x} return")
    return rules


def describe_chain(chain: list[Member]) -> str:
    """The poller's view of a chain (recordings: ``comment "<iface> <weight> <total>"`` each)."""
    return " ".join(f'comment "{i} {w} {t}"' for i, w, t in chain)

def main() -> int:
    """Request on stdin: {"netns", "host", "rundir", "network": text, "up": [...], "down": [...],
    "renew": [...], and for a mother "mwan3": text, "events": [[source, action, iface], ...],
    "lan_dev", "rebuild": [empty s, per member s]}. netifd's own hotplug events (ifdown when a
    device goes, ifup when one is (re)built) are added here, before the stand-in's ``events``.
    Prints {"ok": ..., "mwan3": {"hotplug", "track", "policy"}}."""
    req = json.load(sys.stdin)
    h = BoundHost(req["host"], req["netns"], Path(req["rundir"]))
    out: dict[str, Any] = {"ok": True}
    try:
        events: list[list[str]] = []
        for name in req.get("down", []):
            if h.device_up(name):
                events.append(["hotplug", "ifdown", name])
        if req.get("down"):
            h.set_down(req["down"])
        existed = {n for n in req.get("up", []) if h.device_up(n)}
        if req.get("up"):
            h.set_up(parse(req.get("network", ""), "network"), req["up"])
        for name in req.get("up", []):
            if name in existed:                  # a restart: netifd's ifdown, then ifup
                events.append(["hotplug", "ifdown", name])
            if h.device_up(name):
                events.append(["hotplug", "ifup", name])
        if req.get("renew"):
            h.renew(parse(req.get("network", ""), "network"), req["renew"])
        if req.get("mwan3") is not None:
            timing = tuple(req.get("rebuild") or REBUILD_PAUSES)
            out["mwan3"] = h.mwan3(req["mwan3"], events + list(req.get("events", [])),
                                   req.get("lan_dev", "lan"), (float(timing[0]), float(timing[1])),
                                   req.get("trackdir"))
    except Exception as exc:  # noqa: BLE001 - reported to the stand-in as one line
        out = {"ok": False, "error": h._redact(f"{type(exc).__name__}: {exc}")}
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def hotplug_server(netns: str, host: str, rundir: str, mwan3_conf: str, lan_dev: str) -> int:
    """mwan3's reaction to a tracker's hotplug events (mwanctl-track's or the emulated
    mwan3track's ``hotplug-call iface``): tests/standins/hotplug-call, in the mother's namespace,
    writes one line "<action> <iface> <reply fifo name>" into ``<rundir>/mwtest-hotplug.req``;
    this resident process (in the test's mount namespace, where ``ip netns exec`` works) runs the
    same :meth:`BoundHost.mwan3` as every other event of the lab's mwan3 (the policy rebuilt from
    empty, state by state) and answers "done <rc>" on the reply FIFO when the rebuild is live.
    Resident, so a rebuild costs what the rebuild costs and not a Python start-up (0.3-1 s on a
    busy machine). One request at a time, as 15-mwan3 runs under procd_lock."""
    h = BoundHost(host, netns, Path(rundir))
    fd = os.open(os.path.join(rundir, "mwtest-hotplug.req"), os.O_RDWR)
    with os.fdopen(fd, "r") as req:
        for line in req:
            parts = line.split()
            if len(parts) != 3:
                continue
            action, iface, reply = parts
            rc = 0
            try:
                with open(mwan3_conf) as f:
                    h.mwan3(f.read(), [["hotplug", action, iface]], lan_dev, REBUILD_PAUSES)
            except Exception as exc:  # noqa: BLE001 - logged, the caller only waits
                print(f"hotplug {action} {iface}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                rc = 1
            try:
                with open(os.path.join(rundir, os.path.basename(reply)), "w") as f:
                    f.write(f"done {rc}\n")
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["hotplug-server"]:
        sys.exit(hotplug_server(*sys.argv[2:7]))
    sys.exit(main())


def bind_router(router: Any, lab: netlab.Lab, host: str, *, mother: bool = False,
                lan_dev: str = "lan", tracking: bool = False,
                async_renew: bool = False) -> None:
    """Bind a test router to ``host``'s namespace of ``lab``: from now on its netifd emulation
    builds real WireGuard devices there, its ``wg show`` reads them, and (``mother``) its mwan3
    stand-in steers the LAN's flows; with ``tracking`` its mwan3track runs too (:class:`Trackers`)
    and `ubus call mwan3 status` reports what it finds. Whatever the router has applied already
    is built at once. ``async_renew``: a renew changes the device after the ubus call returned,
    as netifd does."""
    h = lab.hosts[host]
    binding = {"netns": h.netns, "host": host, "rundir": str(h.rundir),
               "mnt": f"/proc/{os.getpid()}/ns/mnt", "python": sys.executable,
               "bridge": str(Path(__file__).resolve()), "repo": str(HERE.parent),
               "mother": mother, "lan_dev": lan_dev, "async_renew": async_renew}
    if tracking:
        binding.update(tracking=True, trackdir=str(Path(router.root) / "run" / "mwan3track"))
    router.write(BINDING, json.dumps(binding))
    r = router.run("ubus mwtest-realize")
    if r.returncode != 0:
        raise netlab.LabError(f"binding {router.name} to {host} failed: {r.stderr.strip()[-500:]}")
