"""Shared state of the test-router stand-ins: call log and a netifd emulation.

netifd keeps an *applied* view of each interface. As recorded on the real netifd with OpenWrt's
wireguard.sh (tests/vectors/netifd/README.md, proven by tests/test_netifd_standin.py):

* reload re-applies an existing interface only when its *blob* changed: netifd's own interface
  attributes plus the parameters the proto handler declares, where a ``list`` given for a string
  parameter is left out (wireguard.sh declares ``addresses`` as a string). It then rebuilds the
  interface (a new device, no session). Peer sections are not part of the blob: a peer-only or
  ``list addresses`` change is not applied by reload;
* renew (wireguard.sh's renew_handler) applies the whole current config in place: same device,
  sessions kept, uptime keeps counting; netifd answers the ubus call before the handler runs, so
  on a router bound with ``async_renew`` the real device changes after ``ubus`` returned;
* down + up rebuilds the device: it comes back with no session.

Unbound routers have no wire, so no real session: ``wg show`` reports each applied peer as just
handshaken (a far end that always answers), or never, when /etc/mwtest/no_handshake exists. What
sessions really do (kept by renew, lost by a rebuild) is proven on routers bound to namespaces,
where ``wg`` is the real one (tests/test_netifd_standin.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from typing import Callable

CALL_LOG = "/tmp/mwtest-calls.log"
STATE = "/tmp/mwtest/netifd.json"
NETWORK = "/etc/config/network"


def log_call(argv: list[str]) -> None:
    with open(CALL_LOG, "a") as f:
        f.write(" ".join(argv) + "\n")


def _tokens(text: str) -> list[list[str]]:
    """Split a UCI file into statements of tokens (quotes, backslashes, comments, ``;``)."""
    stmts: list[list[str]] = []
    cur: list[str] = []
    tok: list[str] | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = i + 1
            buf = []
            while end < n and text[end] != c:
                if c == '"' and text[end] == "\\" and end + 1 < n:
                    end += 1
                buf.append(text[end])
                end += 1
            tok = (tok or []) + buf
            i = end + 1
            continue
        if c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                tok = (tok or []) + [text[i + 1]]
            i += 2
            continue
        if c in " \t\n;#":
            if tok is not None:
                cur.append("".join(tok))
                tok = None
            if c == "#" :
                while i < n and text[i] != "\n":
                    i += 1
                continue
            if c in "\n;" and cur:
                stmts.append(cur)
                cur = []
            i += 1
            continue
        tok = (tok or []) + [c]
        i += 1
    if tok is not None:
        cur.append("".join(tok))
    if cur:
        stmts.append(cur)
    return stmts


def read_network() -> list[dict]:
    """Sections of /etc/config/network as dicts: {'type', 'name', 'options'}."""
    return read_config(NETWORK)


def read_config(path: str) -> list[dict]:
    """Sections of a UCI file as dicts: {'type', 'name', 'options'} (a list option as a list)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    sections: list[dict] = []
    for st in _tokens(text):
        kw = st[0]
        if kw in ("config", "c"):
            sections.append({"type": st[1], "name": st[2] if len(st) > 2 else None, "options": {}})
        elif kw in ("option", "o") and sections:
            sections[-1]["options"][st[1]] = st[2] if len(st) > 2 else ""
        elif kw in ("list", "l") and sections:
            old = sections[-1]["options"].get(st[1])
            old = old if isinstance(old, list) else ([] if old is None else [old])
            sections[-1]["options"][st[1]] = old + [st[2] if len(st) > 2 else ""]
    return sections


# -- `ubus call mwan3 status` from mwan3track's files -----------------------------------------

MWAN3TRACK_DIR = "/var/run/mwan3track"     # /run is the router's own (tests/routers.py)


def _ucibool(v: object) -> bool:
    """The plugin's ucibool: yes/on/true/enabled, else ucode's !!int(val)."""
    if v in ("yes", "on", "true", "enabled"):
        return True
    try:
        return bool(int(str(v)))
    except ValueError:
        return False


def mwan3_plugin_interfaces(sections: list[dict], statedir: str, uptime: int,
                            netifd: dict[str, tuple[bool, int]], running: set[str]) -> dict:
    """What mwan3 2.12.2's rpcd plugin (usr/share/rpcd/ucode/mwan3, ``interfaces_status``)
    reports from mwan3track's files: ``statedir``/<iface>/{STATUS,TIME,ONLINE,OFFLINE,SCORE,
    LOST,TURN,STARTED,TRACK_<ip>,LATENCY_<ip>,LOSS_<ip>}. A missing file reads as 0 (or
    "unknown" for STATUS and TRACK_<ip>); ``age``/``online``/``offline`` are ``uptime`` minus
    the stamp when it is > 0, else the stamp itself. ``netifd``: iface -> (up, uptime) as
    network.interface.<iface> status says; ``running``: interfaces whose tracker runs (procd's
    ``track_<iface>`` instance)."""
    def get_str(iface: str, prop: str) -> str:
        try:
            with open(os.path.join(statedir, iface, prop)) as f:
                return f.read().rstrip("\n")
        except OSError:
            return ""

    def get_int(iface: str, prop: str) -> int:
        text = get_str(iface, prop).strip()
        digits = text[1:] if text[:1] == "-" else text
        return int(text) if digits.isdigit() else 0

    def x_time(iface: str, prop: str) -> int:
        t = get_int(iface, prop)
        return uptime - t if t > 0 else t

    out: dict = {}
    for sec in sections:
        name = sec["name"]
        if sec["type"] != "interface" or not name:
            continue
        o = sec["options"]
        ips = o.get("track_ip", [])
        ips = ips if isinstance(ips, list) else [ips]
        if not ips:
            tracking = "disabled"
        elif name in running:
            tracking = {"0": "paused", "1": "active"}.get(get_str(name, "STARTED"), "down")
        else:
            tracking = "down"
        up, since = netifd.get(name, (False, 0))
        out[name] = {
            "age": x_time(name, "TIME"), "online": x_time(name, "ONLINE"),
            "offline": x_time(name, "OFFLINE"), "uptime": since or 0,
            "score": get_int(name, "SCORE"), "lost": get_int(name, "LOST"), "turn": get_int(name, "TURN"),
            "status": get_str(name, "STATUS") or "unknown", "enabled": _ucibool(o.get("enabled")),
            "running": tracking == "active", "tracking": tracking, "up": up,
            "track_ip": [{"ip": ip, "status": get_str(name, f"TRACK_{ip}") or "unknown",
                          "latency": get_int(name, f"LATENCY_{ip}"), "packetloss": get_int(name, f"LOSS_{ip}")}
                         for ip in ips],
        }
    return out


def tracker_running(statedir: str, iface: str) -> bool:
    """mwan3track's PID file names a live process (procd's instance is running)."""
    try:
        with open(os.path.join(statedir, iface, "PID")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def _interfaces(sections: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in sections if s["type"] == "interface" and s["name"]}


def _peers(sections: list[dict], iface: str) -> list[dict]:
    out = []
    for s in sections:
        o = s["options"]
        if s["type"] == f"wireguard_{iface}" and o.get("public_key") and o.get("disabled", "0") != "1":
            out.append(o)
    return out


def _json_file(path: str) -> dict | None:
    """The JSON object in ``path``; None when there is no such file."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def load_state() -> dict:
    state = _json_file(STATE)
    return {"ifaces": {}} if state is None else state


def save_state(state: dict) -> None:
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE)


# netifd's interface attributes (interface.c iface_attrs) and wireguard.sh's declared parameters
IFACE_ATTRS = {"device", "proto", "ifname", "auto", "zone", "jail", "jail_device", "jail_ifname",
               "host_device", "defaultroute", "peerdns", "metric", "dns", "renew", "dns_search",
               "dns_metric", "interface", "ip6assign", "ip6hint", "ip4table", "ip6table", "ip6class",
               "delegate", "ip6ifaceid", "force_link", "ip6weight", "tags", "carrier_loss_delay",
               "disabled"}
ARRAY_ATTRS = {"dns", "dns_search", "ip6class", "tags"}
WIREGUARD_PARAMS = {"private_key", "listen_port", "mtu", "fwmark", "addresses"}   # none an array


def blob(opts: dict) -> dict:
    """What netifd compares on reload. Only the WireGuard handler's parameters are modelled;
    any other proto is compared whole (e.g. proto static declares its address lists as arrays)."""
    if opts.get("proto") != "wireguard":
        return dict(opts)
    keep = IFACE_ATTRS | WIREGUARD_PARAMS
    return {k: v for k, v in opts.items() if k in keep
            and (not isinstance(v, list) or k in ARRAY_ATTRS)}


def _as_list(v: object) -> list[str]:
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    return [x for item in items for x in str(item).split()]


def handshake_on() -> bool:
    return not os.path.exists("/etc/mwtest/no_handshake")


def _applied(section: dict, sections: list[dict], old: dict | None = None) -> dict:
    """The applied view of one interface; ``old`` given: a renew (same device, sessions kept)."""
    opts = section["options"]
    now = int(time.time())
    peers = _peers(sections, section["name"])
    return {
        "section": opts,
        "blob": blob(opts),
        "proto": opts.get("proto", "none"),
        "private_key": opts.get("private_key", ""),
        "listen_port": opts.get("listen_port", ""),
        "addresses": _as_list(opts.get("addresses")),
        "mtu": opts.get("mtu", ""),
        "peers": [p["public_key"] for p in peers],
        "allowed_ips": {p["public_key"]: _as_list(p.get("allowed_ips")) for p in peers},
        "endpoints": {p["public_key"]: (f"{p['endpoint_host']}:{p.get('endpoint_port') or '51820'}"
                                        if p.get("endpoint_host") else "") for p in peers},
        "keepalive": {p["public_key"]: p.get("persistent_keepalive", "") for p in peers},
        "up": opts.get("auto", "1") != "0" and opts.get("disabled", "0") != "1",
        "since": (old or {}).get("since", now),
        "applies": 0,
    }


def apply(names: list[str] | None, only_changed: bool) -> dict:
    """Re-apply interfaces from the config (all of ``names``, or all; reload: only changed)."""
    sections = read_network()
    ifaces = _interfaces(sections)
    state = load_state()
    applied = state["ifaces"]
    gone, redone = [], []
    for name in list(applied):
        if name not in ifaces:
            gone.append(name)
            del applied[name]
    for name, sec in ifaces.items():
        if names is not None and name not in names:
            continue
        old = applied.get(name)
        if only_changed and old is not None and old.get("blob", old["section"]) == blob(sec["options"]):
            continue          # reload: nothing netifd compares changed (peers, list addresses)
        new = _applied(sec, sections)
        new["applies"] = (old or {}).get("applies", 0) + 1
        applied[name] = new
        redone.append(name)
    save_state(state)
    realize(redone, gone, state)
    return state


def renew(name: str) -> bool:
    """wireguard.sh's renew: the current config (peers included) applied in place (no new
    device, sessions and uptime kept)."""
    sections = read_network()
    sec = _interfaces(sections).get(name)
    state = load_state()
    old = state["ifaces"].get(name)
    if sec is None or old is None:
        return False
    if not old["up"] or sec["options"].get("proto") != "wireguard":
        return True       # netifd: renew of a down interface, or a proto without renew: nothing
    new = _applied(sec, sections, old)
    new["applies"] = old.get("applies", 0)
    new["renews"] = old.get("renews", 0) + 1
    # netifd's own copy of the config is not renewed (interface_renew only runs the handler): a
    # later reload still compares against it, so e.g. a private_key renewed live restarts then
    new["blob"] = old.get("blob", blob(old["section"]))
    state["ifaces"][name] = new
    save_state(state)
    b = binding()
    if b is not None and b.get("async_renew"):
        # netifd answers `renew` first and runs wireguard.sh's renew as a process of its own
        # (interface_renew -> proto-shell's handler -> netifd_start_process): the real device
        # changes after the ubus call has returned. Only where the binding asks for it (the
        # rotation lab): the deploy's rollback + re-handshake still reads the device right after
        # a renew (tests/test_deploy_netns.py fails with this on; README "Key rotation")
        _in_background(lambda: realize([], [], state, renew=[name]))
    elif b is not None:
        realize([], [], state, renew=[name])
    return True


def _in_background(job: Callable[[], None]) -> None:
    """Run ``job`` in a detached grandchild (own session, stdio on /dev/null, so an SSH exec that
    ran the stand-in ends without waiting for it); its failure goes to the bridge log."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        if os.fork():
            os._exit(0)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - nobody waits for this process: log it
            with open("/tmp/mwtest/bridge.log", "a") as f:
                f.write(json.dumps({"t": time.time(), "background": f"{type(exc).__name__}: {exc}"}) + "\n")
    finally:
        os._exit(0)


def wg_set(name: str, peers: list[tuple[str, dict]]) -> str:
    """`wg set <if> peer K [remove] [endpoint E] [allowed-ips A] [persistent-keepalive N] ...` on
    the emulated device, as the kernel applies it: in order, a peer named again after `remove` is
    a new one (only its session changes, not emulated); `allowed-ips` replaces that peer's list
    and takes each network away from any other peer (WireGuard routes one network to one peer).
    Returns an error text ('' on success)."""
    state = load_state()
    i = state["ifaces"].get(name)
    if i is None or not i["up"]:
        return "Unable to modify interface: No such device"
    for key in ("allowed_ips", "endpoints", "keepalive"):
        i.setdefault(key, {})
    for key, opts in peers:
        if opts.get("remove"):
            if key in i["peers"]:
                i["peers"].remove(key)
            for k in ("allowed_ips", "endpoints", "keepalive"):
                i[k].pop(key, None)
            continue
        if key not in i["peers"]:
            i["peers"].append(key)
            i["allowed_ips"].setdefault(key, [])
        if "endpoint" in opts:
            i["endpoints"][key] = opts["endpoint"]
        if "persistent-keepalive" in opts:
            i["keepalive"][key] = "" if opts["persistent-keepalive"] == "off" else opts["persistent-keepalive"]
        if "allowed-ips" in opts:
            nets = [n for n in opts["allowed-ips"].split(",") if n]
            for other, have in i["allowed_ips"].items():
                if other != key:
                    i["allowed_ips"][other] = [n for n in have if n not in nets]
            i["allowed_ips"][key] = nets
    save_state(state)
    return ""


def set_up(name: str, up: bool) -> bool:
    """ifdown/ifup: ifup re-reads the whole interface config (peers included)."""
    if up:
        state = apply([name], only_changed=False)
    else:
        state = load_state()
    iface = state["ifaces"].get(name)
    if iface is None:
        return False
    iface["up"] = up
    iface["since"] = int(time.time())
    save_state(state)
    if not up:
        realize([], [name], state)
    return True


def wg_pubkey(private: str) -> str:
    if not private:
        return "(none)"
    try:
        r = subprocess.run(["/usr/bin/wg", "pubkey"], input=private + "\n", capture_output=True,
                           text=True, timeout=5, check=False)
    except OSError:
        return "(none)"
    return r.stdout.strip() or "(invalid)"


# --- a router bound to a netlab namespace (tests/netifd_bridge.py) --------------------------------
# Unbound routers (no /etc/mwtest/netns.json) never get here: the emulation above is all they have.

BINDING = "/etc/mwtest/netns.json"
MWAN3_DOWN = "/tmp/mwtest/mwan3_down"


def binding() -> dict | None:
    """Where this router's interfaces really live: netns, lab host, run dir, how to get there."""
    return _json_file(BINDING)


def host_argv(b: dict, argv: list[str]) -> list[str]:
    """Run argv in the test process's mount namespace (where /run/netns is visible)."""
    return ["nsenter", f"--mount={b['mnt']}", "--"] + argv


def netns_argv(b: dict, argv: list[str]) -> list[str]:
    """Run argv in the bound namespace, with the lab host's run dir over /run (as netlab does)."""
    wrap = 'mount --bind "$0" /run && exec "$@"'
    return host_argv(b, ["ip", "netns", "exec", b["netns"], "sh", "-c", wrap, b["rundir"]] + argv)


def realize(up: list[str], down: list[str], state: dict | None = None, mwan3_only: bool = False,
            renew: list[str] | None = None, mwan3_events: list[list[str]] | None = None) -> None:
    """netifd acts for real: rebuild ``up`` / tear down ``down`` / ``renew`` WireGuard devices in
    the netns; on a mother, mwan3 reacts to netifd's hotplug events (and to ``mwan3_events`` from
    the mwan3 stand-in) as real mwan3 does (tests/netifd_bridge.py)."""
    b = binding()
    if b is None:
        return
    state = state if state is not None else load_state()
    ifaces = state["ifaces"]
    wg_up = [n for n in up if n in ifaces and ifaces[n]["proto"] == "wireguard" and ifaces[n]["up"]]
    wg_down = [n for n in down if n not in ifaces or ifaces[n]["proto"] == "wireguard"]
    wg_down += [n for n in up if n in ifaces and ifaces[n]["proto"] == "wireguard" and not ifaces[n]["up"]]
    wg_renew = [n for n in (renew or []) if n in ifaces and ifaces[n]["proto"] == "wireguard"]
    if mwan3_only:
        wg_up, wg_down, wg_renew = [], [], []
    req: dict = {"netns": b["netns"], "host": b["host"], "rundir": b["rundir"], "up": wg_up,
                 "down": wg_down, "renew": wg_renew}
    if wg_up or wg_renew:
        with open(NETWORK) as f:
            req["network"] = f.read()
    if b.get("mother"):
        try:
            with open("/etc/config/mwan3") as f:
                req["mwan3"] = f.read()
        except FileNotFoundError:
            req["mwan3"] = ""
        req["events"] = mwan3_events or []
        if b.get("tracking"):
            req["trackdir"] = b["trackdir"]
        req["lan_dev"] = b.get("lan_dev", "lan")
        if b.get("mwan3_rebuild"):
            req["rebuild"] = b["mwan3_rebuild"]
    if not (wg_up or wg_down or wg_renew or "mwan3" in req):
        return
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": b["repo"], "HOME": "/"}
    os.makedirs("/tmp/mwtest", exist_ok=True)
    with open("/tmp/mwtest/bridge.lock", "w") as lock:
        if b.get("async_renew"):   # one bridge at a time: a renew's runs detached
            fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run(host_argv(b, [b["python"], b["bridge"]]), input=json.dumps(req),
                           capture_output=True, text=True, timeout=60, check=False, env=env)
    with open("/tmp/mwtest/bridge.log", "a") as f:
        f.write(json.dumps({"t": time.time(), "up": wg_up, "down": wg_down, "renew": wg_renew,
                            "rc": r.returncode, "out": r.stdout.strip()[-2000:],
                            "err": r.stderr.strip()[-2000:]}) + "\n")
    if r.returncode != 0:
        raise RuntimeError(f"netns bridge failed: {r.stdout.strip() or r.stderr.strip()}")
    mw = json.loads(r.stdout.strip().splitlines()[-1]).get("mwan3")
    if mw is not None:        # what `mwan3 status` prints: the interfaces mwan3 holds offline
        os.makedirs(MWAN3_DOWN, exist_ok=True)
        for n in os.listdir(MWAN3_DOWN):
            if mw["hotplug"].get(n) == "online":
                os.unlink(os.path.join(MWAN3_DOWN, n))
        for n, st in mw["hotplug"].items():
            if st != "online":
                open(os.path.join(MWAN3_DOWN, n), "w").close()
