"""netifd's `dhcp` and `static` protocols, applied for real inside a :class:`netlab.Lab` host.

Why: a rendered uplink WAN section is only proven when a router reading it the way netifd does
really gets its address, default route and DNS. This reads an ``interface`` section as netifd's
config.c/proto.c do and brings it up in a namespace:

* ``static`` (netifd's built-in proto, proto.c ``proto_apply_static_ip_settings``): ``ipaddr`` is
  an array (an ``option`` is split on whitespace, a ``list`` taken item by item), each entry
  ``addr`` or ``addr/len``, masked by ``netmask`` (default 32); a bad entry is INVALID_ADDRESS, a
  bad netmask INVALID_NETMASK, a bad gateway INVALID_GATEWAY, and the interface does not come up;
  ``gateway`` becomes a default route at the interface ``metric`` and only when an IPv4 address
  is set.
* ``dhcp`` (dhcp.sh): busybox ``udhcpc`` with dhcp.sh's exact flags (``-p
  /var/run/udhcpc-<dev>.pid -s <script> -f -t 0 -i <dev>``, ``-r``/``-H``/``-V`` from ipaddr/
  hostname/vendorid, ``-x 0x3d:<clientid>`` or ``-C``, ``-B``, ``-O`` per reqopt, ``-x`` per
  sendopt); its script (tests/standins/udhcpc.script) applies what /lib/netifd/dhcp.script
  reports to netifd (the address with ``${subnet:-255.255.255.0}``, a default route per router at
  the interface metric, the lease's DNS unless ``peerdns 0``).
* both: ``mtu`` is the device attribute netifd takes from an interface section (applied before
  the link goes up); ``dns`` servers are added to resolv.conf.auto (netifd writes
  /tmp/resolv.conf.d/resolv.conf.auto; here ``<host rundir>/resolv.conf.auto``).

Not emulated: IPv6 (ip6addr, dhcpv6), 6rd, classless static routes, lease renewal by netifd
(udhcpc renews by itself), ``defaultroute 0``, ip4table.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from mwanctl.uci.model import UciPackage, UciSection

try:
    from tests import netlab
except ImportError:  # pragma: no cover - run as a script
    import netlab  # type: ignore[no-redef]

SCRIPT = Path(__file__).resolve().parent / "standins" / "udhcpc.script"


class WanError(netlab.LabError):
    """What netifd would record as the interface's error (``ubus call network.interface.X status``
    ``errors``): the interface stays down."""


@dataclass
class WanConfig:
    """One interface section as netifd's blob holds it (only what dhcp/static read)."""

    name: str
    proto: str
    device: str
    metric: int = 0
    mtu: int | None = None
    peerdns: bool = True
    dns: list[str] = field(default_factory=list)
    ipaddr: list[str] = field(default_factory=list)
    netmask: str | None = None
    gateway: str | None = None
    hostname: str | None = None
    clientid: str | None = None
    vendorid: str | None = None
    broadcast: bool = False
    reqopts: list[str] = field(default_factory=list)
    sendopts: list[str] = field(default_factory=list)


def _array(sec: UciSection, option: str) -> list[str]:
    """uci_to_blob for a BLOBMSG_TYPE_ARRAY attribute: a list item by item, an option split on
    whitespace."""
    v = sec.options.get(option)
    if v is None:
        return []
    return list(v) if isinstance(v, tuple) else v.split()


def _string(sec: UciSection, option: str) -> str | None:
    """A string attribute: a `list` is left out of the blob for a non-array attribute."""
    v = sec.options.get(option)
    return v if isinstance(v, str) else None


def read_wan(network: UciPackage, name: str) -> WanConfig:
    sec = network.get(name)
    if sec is None or sec.type != "interface":
        raise WanError(f"no interface section {name}")
    proto = _string(sec, "proto") or "none"
    if proto not in ("dhcp", "static"):
        raise WanError(f"{name}: proto {proto!r} is not emulated here (dhcp and static are)")
    device = _string(sec, "device")
    if not device:
        raise WanError(f"{name}: NO_DEVICE")
    metric = netlab._strtol(_string(sec, "metric") or "0")
    mtu_text = _string(sec, "mtu")
    mtu = netlab._strtol(mtu_text) if mtu_text is not None else None
    return WanConfig(
        name=name, proto=proto, device=device, metric=metric or 0,
        # device.c: an mtu below 68 is not applied
        mtu=mtu if mtu is not None and mtu >= 68 else None,
        peerdns=netlab._netifd_bool(sec, "peerdns", True), dns=_array(sec, "dns"),
        ipaddr=_array(sec, "ipaddr") if proto == "static" else
        ([a] if (a := _string(sec, "ipaddr")) else []),
        netmask=_string(sec, "netmask"), gateway=_string(sec, "gateway"),
        hostname=_string(sec, "hostname"), clientid=_string(sec, "clientid"),
        vendorid=_string(sec, "vendorid"), broadcast=netlab._netifd_bool(sec, "broadcast", False),
        reqopts=_array(sec, "reqopts"), sendopts=_array(sec, "sendopts"))


def static_addresses(cfg: WanConfig) -> tuple[list[ipaddress.IPv4Interface], str | None]:
    """proto.c: (addresses, gateway) netifd would set, or WanError with netifd's error code."""
    mask = 32
    if cfg.netmask is not None:
        try:
            mask = ipaddress.IPv4Network(f"0.0.0.0/{cfg.netmask}").prefixlen
        except ValueError:
            raise WanError(f"{cfg.name}: INVALID_NETMASK") from None
    addrs = []
    for entry in cfg.ipaddr:
        try:
            addrs.append(ipaddress.IPv4Interface(entry if "/" in entry else f"{entry}/{mask}"))
        except ValueError:
            raise WanError(f"{cfg.name}: INVALID_ADDRESS {entry}") from None
    gw = None
    if cfg.gateway is not None and addrs:
        try:
            gw = str(ipaddress.IPv4Address(cfg.gateway))
        except ValueError:
            raise WanError(f"{cfg.name}: INVALID_GATEWAY {cfg.gateway}") from None
    return addrs, gw


def udhcpc_argv(cfg: WanConfig, script: str) -> list[str]:
    """dhcp.sh's proto_run_command line, flag for flag."""
    argv = ["udhcpc", "-p", f"/var/run/udhcpc-{cfg.device}.pid", "-s", script,
            "-f", "-t", "0", "-i", cfg.device]
    if cfg.ipaddr:
        argv += ["-r", cfg.ipaddr[0]]
    if cfg.hostname:
        argv += ["-H", cfg.hostname]
    if cfg.vendorid:
        argv += ["-V", cfg.vendorid]
    argv += ["-x", "0x3d:" + cfg.clientid.replace(":", "")] if cfg.clientid else ["-C"]
    if cfg.broadcast:
        argv.append("-B")
    for opt in cfg.reqopts:
        argv += ["-O", opt]
    for opt in cfg.sendopts:
        argv += ["-x", opt]
    return argv


def bring_up(lab: netlab.Lab, host: str, network: UciPackage, name: str,
             timeout: float = 20.0) -> WanConfig:
    """``ifup <name>`` in ``host``: device mtu and link up, then the protocol. For dhcp, returns
    once the lease is applied (or raises WanError after ``timeout``)."""
    cfg = read_wan(network, name)
    rundir = lab.hosts[host].rundir
    if cfg.mtu is not None:
        lab.run(host, ["ip", "link", "set", "dev", cfg.device, "mtu", str(cfg.mtu)])
    lab.run(host, ["ip", "link", "set", "dev", cfg.device, "up"])
    resolv = rundir / "resolv.conf.auto"
    if cfg.proto == "static":
        addrs, gw = static_addresses(cfg)
        for a in addrs:
            lab.run(host, ["ip", "-4", "addr", "add", str(a), "dev", cfg.device])
        if gw is not None:
            lab.run(host, ["ip", "-4", "route", "add", "default", "via", gw, "dev", cfg.device,
                           "metric", str(cfg.metric)])
        resolv.write_text("".join(f"nameserver {d}\n" for d in cfg.dns))
        return cfg
    env = {"MW_METRIC": str(cfg.metric), "MW_PEERDNS": "1" if cfg.peerdns else "0",
           "MW_DNS": " ".join(cfg.dns), "MW_RESOLV": "/run/resolv.conf.auto",
           "MW_LEASES": "/run/udhcpc-events"}
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), "busybox", *udhcpc_argv(cfg, str(SCRIPT))]
    proc = subprocess.Popen(lab.argv_for(host, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = rundir / "udhcpc-events"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and any(line.startswith("bound ") for line in events.read_text().splitlines()):
            return cfg
        if proc.poll() is not None:
            raise WanError(f"{name}: udhcpc exited {proc.returncode}: "
                           f"{proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
        time.sleep(0.1)
    raise WanError(f"{name}: no DHCP lease within {timeout:.0f} s")


def start_udhcpd(lab: netlab.Lab, host: str, device: str, pool: tuple[str, str], router: str,
                 dns: str, subnet: str = "255.255.255.0") -> subprocess.Popen[bytes]:
    """A real DHCP server (busybox udhcpd) on ``device`` of ``host``; stopped with the lab."""
    rundir = lab.hosts[host].rundir
    (rundir / "udhcpd.leases").write_text("")
    (rundir / "udhcpd.conf").write_text(
        f"start {pool[0]}\nend {pool[1]}\ninterface {device}\nlease_file /run/udhcpd.leases\n"
        f"pidfile /run/udhcpd.pid\noption subnet {subnet}\noption router {router}\n"
        f"option dns {dns}\noption lease 600\n")
    return subprocess.Popen(lab.argv_for(host, ["busybox", "udhcpd", "-f", "/run/udhcpd.conf"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
