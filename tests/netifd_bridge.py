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

mwan3 emulation (mother only), rebuilt from ``/etc/config/mwan3`` on every change:

* every ``interface`` section gets mwan3's id (its position, 1-based), fwmark ``id << 8`` under
  mask 0x3F00, an ``ip rule fwmark … lookup <id>`` and a table ``<id>`` holding ``default dev
  <iface>`` while the device exists (netifd names a WireGuard device after its interface);
* new flows from the LAN device get a connmark chosen by the default rule's policy: among the
  online members of the lowest ``metric``, at random in proportion to ``weight`` (mwan3 builds the
  same choice from iptables ``statistic`` rules); no member online: mwan3's last resort
  ``unreachable`` (mark 0x3E00);
* an interface is online when its device exists and it was not drained; ``mwan3 ifdown`` drains
  it (new flows avoid it), ``mwan3 ifup`` puts it back, and, like mwan3's hotplug handler on a
  netifd ``ifup`` event, a (re)built interface is put back into use;
* existing flows keep their connmark and stay on their tunnel after a drain (pitfalls: conntrack
  keeps flows on the uplink they started on); the connmark is forgotten only when the conntrack
  entry goes, e.g. when the masqueraded tunnel device is deleted by a rebuild.

Not emulated (real mwan3 does it): tracking (``mwan3track`` pings; here online means "device up
and not drained"), ``initial_state``, sticky rules, ipsets, other rules than the default one,
``flush_conntrack``, IPv6, the 100–250 ms window without members during a policy rebuild, and the
``iif`` rules for traffic arriving from a tunnel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
        log = open(self._tmp / host / f"wireguard-go-{dev}.log", "ab")
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"}
        try:
            proc = subprocess.Popen(self.argv_for(host, ["wireguard-go", "-f", dev]),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        finally:
            log.close()
        self._pidfile(dev).write_text(str(proc.pid))
        sock = self.hosts[host].rundir / "wireguard" / f"{dev}.sock"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise netlab.LabError(f"[{host}] wireguard-go {dev} exited {proc.returncode}")
            if sock.exists() and self._ip(host, "link", "show", dev, check=False).returncode == 0:
                return
            time.sleep(0.02)
        raise netlab.LabError(f"[{host}] wireguard-go {dev}: no UAPI socket after 10 s")

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
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.02)
                if not _alive(pid):
                    break
        pidfile.unlink(missing_ok=True)
        deadline = time.monotonic() + 3          # the tun device goes with its process
        while time.monotonic() < deadline:
            if self._ip(host, "link", "show", dev, check=False).returncode != 0:
                break
            time.sleep(0.02)
        (self.hosts[host].rundir / "wireguard" / f"{dev}.sock").unlink(missing_ok=True)

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

    # -- mwan3 ----------------------------------------------------------------------------------
    def sync_mwan3(self, mwan3: UciPackage, drained: set[str], lan_dev: str) -> dict[str, Any]:
        """Make routes, rules and the new-flow choice match the config and the live state."""
        ifaces = [s.name for s in mwan3.of_type("interface") if s.name]
        enabled = {s.name for s in mwan3.of_type("interface")
                   if s.name and s.options.get("enabled") == "1"}
        ids = {name: i + 1 for i, name in enumerate(ifaces)}
        online = {n for n in ifaces if n in enabled and n not in drained and self.device_up(n)}
        rules = self._ip(self.host, "-4", "rule", "show").stdout
        for name, i in ids.items():
            # added once, never deleted and re-added: in between, the tunnel's flows would fall
            # through to the main table and leave by another tunnel with the wrong source address
            if not any(ln.startswith(f"{2000 + i}:") for ln in rules.splitlines()):
                self._ip(self.host, "-4", "rule", "add", "pref", str(2000 + i), "fwmark",
                         f"{i << 8:#x}/{MARK_MASK:#x}", "lookup", str(i))
            if self.device_up(name):
                self._ip(self.host, "-4", "route", "replace", "default", "dev", name, "table", str(i))
            else:
                self._ip(self.host, "-4", "route", "flush", "table", str(i), check=False)
        if not any(ln.startswith("3000:") for ln in rules.splitlines()):
            self._ip(self.host, "-4", "rule", "add", "pref", "3000", "fwmark",
                     f"{UNREACHABLE_MARK:#x}/{MARK_MASK:#x}", "unreachable")
        choice = _choice(mwan3, online, ids)
        self.run(self.host, ["nft", "-f", "-"], input=_nft_script(choice, lan_dev))
        return {"online": sorted(online), "choice": choice}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (its parent, a finished bridge, is gone) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _choice(mwan3: UciPackage, online: set[str], ids: dict[str, int]) -> list[tuple[int, int]]:
    """(mark, weight) of the online members of the lowest metric in the default rule's policy."""
    rules = [s for s in mwan3.of_type("rule") if s.options.get("dest_ip") in ("0.0.0.0/0", None)
             and s.options.get("family", "ipv4") in ("ipv4", "any")]
    if not rules:
        return []
    policy = mwan3.get(str(rules[-1].options.get("use_policy", "")))
    if policy is None:
        return []
    used = policy.options.get("use_member", ())
    members = [mwan3.get(m) for m in (used if isinstance(used, tuple) else (used,))]
    live = [(int(str(m.options.get("metric", "1"))), str(m.options["interface"]),
             int(str(m.options.get("weight", "1"))))
            for m in members if m is not None and m.options.get("interface") in online]
    if not live:
        return []
    best = min(metric for metric, _, _ in live)
    return [(ids[iface] << 8, weight) for metric, iface, weight in live if metric == best]


def _nft_script(choice: list[tuple[int, int]], lan_dev: str) -> str:
    """One nft transaction: a flow keeps its connmark; a new one gets a weighted random choice."""
    if choice:
        total = sum(w for _, w in choice)
        parts, at = [], 0
        for mark, weight in choice:
            parts.append(f"{at}-{at + weight - 1} : {mark:#x}" if weight > 1 else f"{at} : {mark:#x}")
            at += weight
        pick = f"ct mark set numgen random mod {total} map {{ {', '.join(parts)} }}"
    else:
        pick = f"meta mark set {UNREACHABLE_MARK:#x} return"
    return "\n".join([
        f"table ip {NFT_TABLE} {{}}",
        f"delete table ip {NFT_TABLE}",
        f"table ip {NFT_TABLE} {{",
        "  chain pre {",
        "    type filter hook prerouting priority mangle; policy accept;",
        f'    iifname "{lan_dev}" jump pick',
        "  }",
        "  chain pick {",
        f"    ct mark and {MARK_MASK:#x} != 0 meta mark set ct mark and {MARK_MASK:#x} return",
        f"    {pick}",
        f"    meta mark set ct mark and {MARK_MASK:#x}",
        "  }",
        "}",
        "",
    ])


def main() -> int:
    """Request on stdin: {"netns", "host", "rundir", "network": text, "up": [...], "down": [...],
    and for a mother "mwan3": text, "drained": [...], "lan_dev"}. Prints {"ok": ..., "mwan3": ...}."""
    req = json.load(sys.stdin)
    h = BoundHost(req["host"], req["netns"], Path(req["rundir"]))
    out: dict[str, Any] = {"ok": True}
    try:
        if req.get("down"):
            h.set_down(req["down"])
        if req.get("up"):
            h.set_up(parse(req.get("network", ""), "network"), req["up"])
        if req.get("mwan3") is not None:
            out["mwan3"] = h.sync_mwan3(parse(req["mwan3"], "mwan3"), set(req.get("drained", [])),
                                        req.get("lan_dev", "lan"))
    except Exception as exc:  # noqa: BLE001 - reported to the stand-in as one line
        out = {"ok": False, "error": h._redact(f"{type(exc).__name__}: {exc}")}
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def hotplug(mwan3_conf: str, state_dir: str, lan_dev: str) -> int:
    """The policy rebuild of mwan3's hotplug handler on a tracker's connected/disconnected event,
    run in the mother's namespace by tests/standins/hotplug-call: the same new-flow choice as
    :meth:`BoundHost.sync_mwan3`, with "online" read from mwan3's per-interface hotplug states
    (``/var/run/mwan3/iface_state/<iface>``, written by the caller) instead of the drain list.
    Only the choice is rebuilt: routes and rules do not change on these events."""
    with open(mwan3_conf) as f:
        mwan3 = parse(f.read(), "mwan3")
    ifaces = [s.name for s in mwan3.of_type("interface") if s.name]
    ids = {name: i + 1 for i, name in enumerate(ifaces)}

    def state(name: str) -> str:
        try:
            with open(os.path.join(state_dir, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "offline"

    online = {n for s in mwan3.of_type("interface") if (n := s.name) and s.options.get("enabled") == "1"
              and state(n) == "online" and os.path.exists(f"/sys/class/net/{n}")}
    r = subprocess.run(["nft", "-f", "-"], input=_nft_script(_choice(mwan3, online, ids), lan_dev),
                       capture_output=True, text=True, check=False)
    if r.returncode:
        print(f"nft: {r.stderr.strip()}", file=sys.stderr)
    return r.returncode


def hotplug_server(requests: str, mwan3_conf: str, state_dir: str, lan_dev: str) -> int:
    """:func:`hotplug` as a resident process (the lab starts it in the mother's namespace), so a
    rebuild costs what the rebuild costs and not a Python start-up (0.3-1 s on a busy machine,
    where real mwan3 takes 0.07-0.13 s). Each request line names a FIFO that gets "done"."""
    fd = os.open(requests, os.O_RDWR)
    with os.fdopen(fd, "r") as req:
        for line in req:
            reply = line.strip()
            rc = hotplug(mwan3_conf, state_dir, lan_dev)
            try:
                with open(reply, "w") as f:
                    f.write(f"done {rc}\n")
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["hotplug"]:
        sys.exit(hotplug(*sys.argv[2:5]))
    if sys.argv[1:2] == ["hotplug-server"]:
        sys.exit(hotplug_server(*sys.argv[2:6]))
    sys.exit(main())


def bind_router(router: Any, lab: netlab.Lab, host: str, *, mother: bool = False,
                lan_dev: str = "lan") -> None:
    """Bind a test router to ``host``'s namespace of ``lab``: from now on its netifd emulation
    builds real WireGuard devices there, its ``wg show`` reads them, and (``mother``) its mwan3
    stand-in steers the LAN's flows. Whatever the router has applied already is built at once."""
    h = lab.hosts[host]
    binding = {"netns": h.netns, "host": host, "rundir": str(h.rundir),
               "mnt": f"/proc/{os.getpid()}/ns/mnt", "python": sys.executable,
               "bridge": str(Path(__file__).resolve()), "repo": str(HERE.parent),
               "mother": mother, "lan_dev": lan_dev}
    router.write(BINDING, json.dumps(binding))
    r = router.run("ubus mwtest-realize")
    if r.returncode != 0:
        raise netlab.LabError(f"binding {router.name} to {host} failed: {r.stderr.strip()[-500:]}")
