"""PURE: is a deployed tunnel working, and is its config live?

A loaded config proves nothing (`wg show` lists a peer the moment the config is read, even with
a typo in its endpoint). A tunnel counts as working only when both ends show a handshake newer
than the moment mwanctl asked for one, and, when mwan3 had it online before, mwan3 has it
online again after a tracking round that began and ended after the deploy started and in which
a target answered (``tracking_proof``: mwan3's ``initial_state online`` shows a restarted
interface online before any round). Its live state (addresses, MTU, listen port, peers' allowed IPs, endpoint,
keepalive) must equal the config: netifd leaves some changes unapplied (see plan.option_action).
The I/O (probes over the transports) is in ``mwanctl.deploy``; this module only judges.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from mwanctl.facts import Mwan3Interface, Mwan3Status, WgInterface, WgPeer
from mwanctl.tracking import ROUND_OVERHEAD
from mwanctl.uci.model import UciPackage, Value

# WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing any more
SESSION_LIFETIME = 180


@dataclass
class TunnelCheck:
    """The verdict on one tunnel after a deploy."""

    iface: str
    uplink: str
    mother: str
    ok: bool = False
    why: str = ""                            # when not ok: no handshake / tracking down / ...
    was_down: bool = False                   # down before the deploy: reported, not blamed
    notes: list[str] = field(default_factory=list)


def _as_list(v: Optional[Value]) -> list[str]:
    if v is None:
        return []
    if isinstance(v, tuple):
        return [x for item in v for x in item.split()]
    return v.split()


def _net(text: str) -> str:
    try:
        return str(ipaddress.ip_interface(text if "/" in text else text + ("/128" if ":" in text else "/32")))
    except ValueError:
        return text


def alive(peer: Optional[WgPeer], now: int) -> bool:
    """A session exists and is young enough to carry traffic."""
    return peer is not None and peer.latest_handshake is not None and now - peer.latest_handshake < SESSION_LIFETIME


def fresh(peer: Optional[WgPeer], since: int) -> bool:
    """The peer handshook at or after ``since`` (router clock, whole seconds)."""
    return peer is not None and peer.latest_handshake is not None and peer.latest_handshake >= since


def only_peer(wg: dict[str, WgInterface], iface: str, keys: list[str]) -> Optional[WgPeer]:
    w = wg.get(iface)
    if w is None:
        return None
    for k in keys:
        if k in w.peers:
            return w.peers[k]
    return None


def mwan3_online(mw: Optional[Mwan3Status], iface: str) -> Optional[bool]:
    """True/False from `ubus call mwan3 status`; None when mwan3 says nothing about it."""
    if mw is None or iface not in mw.interfaces:
        return None
    return mw.interfaces[iface].status == "online"


def _targets(st: Mwan3Interface) -> str:
    return ", ".join(f"{t.ip} {t.status}" for t in st.track_ip) or "no targets"


# mwan3track's own defaults for options a section leaves out (2.12.2 usr/sbin/mwan3track)
MWAN3TRACK_DEFAULTS = {"count": 1, "timeout": 4, "interval": 10, "failure_interval": 10}


def _number(options: Mapping[str, Value], name: str) -> int:
    v = options.get(name)
    return int(v) if isinstance(v, str) and v.isdigit() else MWAN3TRACK_DEFAULTS[name]


def round_wait(options: Mapping[str, Value]) -> float:
    """The longest wait, from any moment, until mwan3track (an mwan3 ``interface`` section's
    ``options``) ends a round that ``tracking_proof`` accepts, once the tunnel carries again.

    A round probes the ``track_ip`` targets one after another, each ``count`` packets a second
    apart and then up to ``timeout`` s: at most D = targets x (count - 1 + timeout). The worst
    case is a round in flight that does not count (it began before the tunnel carried), the
    sleep after it (``interval``, or ``failure_interval`` after a failed round), then a whole
    round; one second more for mwan3's whole-second stamps and the overhead of two rounds."""
    targets = options.get("track_ip")
    n = max(1, len(targets) if isinstance(targets, tuple) else 1)
    count = max(1, _number(options, "count"))
    d = n * (count - 1 + _number(options, "timeout"))
    sleep = max(_number(options, "interval"), _number(options, "failure_interval"))
    return 2 * d + sleep + 1 + 2 * ROUND_OVERHEAD


def tracking_proof(st: Optional[Mwan3Interface], started: Optional[float], now: Optional[float],
                   window: int) -> str:
    """'' when mwan3 proves the tunnel: online, and mwan3track finished a round after the deploy
    began in which a target answered; else why not (final once ``window`` s have passed).

    Why not its "online" alone: mwan3track's firstconnect (start, or the ifup of a restarted
    interface) writes STATUS online (``initial_state online``) and a fresh ONLINE stamp before
    any round, and the status plugin keeps showing the last round's TIME/TURN/LOST/TRACK_<ip>
    files of before the restart. What a round leaves (mwan3 2.12.2 ``usr/sbin/mwan3track``,
    read back by the rpcd plugin as ``age`` = uptime - TIME, ``online`` = uptime - ONLINE):
    TRACK_<ip> up/down/skipped for every target, then LOST (0 after a good round: reset when
    ``reliability`` targets answered), TURN (rounds since the last connect, which resets it to 0)
    and TIME, its end, in whole seconds of /proc/uptime. So a round counts when

    * it ended after the last connect: ``age < online``; in the same second only as the first
      round after it (``turn == 1``: a round of before the connect has a turn of its own, and
      after a connect the next round starts at once);
    * it ended after the deploy began: ``started``/``now`` are the mother's /proc/uptime before
      the deploy and at this status (read together with it); one second of margin for the
      whole-second stamps and the two reads not being the same instant;
    * LOST is 0 and a target's TRACK is ``up``.

    A failed round is not "online" at all: it makes the interface disconnecting or offline.
    ``started``/``now`` None (the uptime could not be read): only the connect is checked."""
    if st is None:
        return "mwan3 reports nothing about it"
    if st.status != "online":
        down = bool(st.track_ip) and all(t.status == "down" for t in st.track_ip)
        return (f"mwan3 tracking reports it {st.status}"
                + (f": no tracking target answered ({_targets(st)})" if down else ""))
    age, online, turn = st.age, st.online, st.turn
    pending = f"no tracking target answered within {window} s: "
    if age is None or online is None or not turn or not (age < online or (age == online and turn == 1)):
        return pending + ("mwan3track finished no round since it set the interface online "
                          "(that \"online\" is initial_state's, not an answer)")
    if started is not None and now is not None and int(now) - age - 1 < math.ceil(started):
        return pending + "mwan3track's last round ended before the deploy began"
    if st.lost or not any(t.status == "up" for t in st.track_ip):
        return f"no tracking target answered in mwan3track's last round ({_targets(st)})"
    return ""


_ADDR = re.compile(r"^\d+:\s+(\S+)\s+(inet6?)\s+(\S+)")
_LINK = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s.*\bmtu\s+(\d+)")


def parse_ip_addr(text: str) -> dict[str, set[str]]:
    """`ip -o addr show` (iproute2 or busybox): device -> {address/prefix}."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = _ADDR.match(line)
        if m and not m.group(3).lower().startswith("fe80:"):   # the kernel's own link-local
            out.setdefault(m.group(1), set()).add(_net(m.group(3)))
    return out


def parse_ip_link(text: str) -> dict[str, int]:
    """`ip -o link show`: device -> MTU."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _LINK.match(line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def live_differences(network: UciPackage, iface: str, wg: dict[str, WgInterface],
                     addrs: Optional[dict[str, set[str]]], mtus: Optional[dict[str, int]]) -> list[str]:
    """What of the config of ``iface`` (its interface and peer sections) is not live.

    Only what the config sets is compared; an endpoint the config leaves out (a listening uplink
    learns the mother's from its handshakes) or names by host name is not. ``addrs``/``mtus``
    None: the router's `ip` could not be read, those are not compared."""
    sec = network.get(iface)
    if sec is None:
        return []
    w = wg.get(iface)
    if w is None:
        return [f"no WireGuard device {iface}"]
    diffs: list[str] = []
    port = sec.options.get("listen_port")
    if isinstance(port, str) and port.isdigit() and w.listen_port != int(port):
        diffs.append(f"listen port {w.listen_port} (config {port})")
    if addrs is not None:
        want = {_net(a) for a in _as_list(sec.options.get("addresses"))}
        have = addrs.get(iface, set())
        if want and want != have:
            diffs.append(f"addresses {', '.join(sorted(have)) or 'none'} (config {', '.join(sorted(want))})")
    mtu = sec.options.get("mtu")
    if mtus is not None and isinstance(mtu, str) and mtu.isdigit() and mtus.get(iface) not in (None, int(mtu)):
        diffs.append(f"MTU {mtus.get(iface)} (config {mtu})")
    for p in network.of_type(f"wireguard_{iface}"):
        key = p.options.get("public_key")
        if not isinstance(key, str) or p.options.get("disabled") == "1":
            continue
        live = w.peers.get(key)
        label = f"peer {p.name or key[:8]}"
        if live is None:
            diffs.append(f"{label} not live")
            continue
        want_ips = {_net(a) for a in _as_list(p.options.get("allowed_ips"))}
        if want_ips != {_net(a) for a in live.allowed_ips}:
            diffs.append(f"{label} allowed IPs {', '.join(live.allowed_ips) or 'none'} "
                         f"(config {', '.join(sorted(want_ips)) or 'none'})")
        host = p.options.get("endpoint_host")
        if isinstance(host, str) and host:
            eport = str(p.options.get("endpoint_port") or "51820")
            try:
                ipaddress.ip_address(host)
                want_ep = f"[{host}]:{eport}" if ":" in host else f"{host}:{eport}"
            except ValueError:
                want_ep = None           # a host name: only the port can be compared
            got = live.endpoint or ""
            if want_ep is not None and got != want_ep:
                diffs.append(f"{label} endpoint {got or 'none'} (config {want_ep})")
            elif want_ep is None and not got.endswith(f":{eport}"):
                diffs.append(f"{label} endpoint {got or 'none'} (config {host}:{eport})")
        ka = p.options.get("persistent_keepalive")
        want_ka = int(ka) if isinstance(ka, str) and ka.isdigit() and ka != "0" else None
        if want_ka != live.keepalive:
            diffs.append(f"{label} keepalive {live.keepalive or 'off'} (config {want_ka or 'off'})")
    return diffs
