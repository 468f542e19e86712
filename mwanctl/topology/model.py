"""The meaning of a topology file: frozen, fully defaulted, validated; and the one declaration
of every topology field.

Everything downstream (compiler, deploy, status, key rotation) reads only these objects,
never the YAML. ``loc`` fields point back at the YAML for messages.

An attribute read from a YAML key carries its ``Field`` (topology/declare.py) in its
``Annotated`` type: key, kind and range, default, README line, and the UCI options it becomes.
That is the field's only declaration: topology/fields.py builds from these attributes, in the
order they are written here, the blocks the loader reads, the converters render, ``fields
<block>`` blueprint lines expand and the README documents. An attribute without a ``Field`` is
worked out by the loader (``Tracking.tracker``, ``Wan.password``, ``loc``).
"""

import ipaddress
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Callable, Optional

from mwanctl.errors import Location
from mwanctl.topology.declare import (
    ENV_HINT,
    ENV_RE,
    KEEPALIVE,
    MEMBER_METRIC,
    MEMBER_WEIGHT,
    NAME,
    PATH,
    PATH_MAX,
    PORT,
    REQUIRED,
    TIER,
    USER_RE,
    WEIGHT,
    ZONE,
    AnyOf,
    Field,
    Flag,
    Host,
    Int,
    MaybeFlag,
    Nested,
    OneOf,
    Parsed,
    Ports,
    Text,
    Texts,
    Uci,
    mwan3,
)
from mwanctl.topology.grammar import network_text
from mwanctl.tracking import DEFAULT_PROFILE, DEFAULT_TARGETS, DEFAULT_TARGETS6, PROFILES

IPv4Net = ipaddress.IPv4Network
IPv6Net = ipaddress.IPv6Network

PREFIX = "mw_"  # every UCI section mwanctl owns starts with this (mwan3 own-WAN interfaces excepted)
BUILTIN_POLICIES = ("default", "unreachable", "blackhole")   # mwan3's own; rules name them as they are


# -- tracking: mwan3 `interface` options, and mwanctl's own tracker --------------------------------

def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}"


def _tracker(option: str) -> tuple[Uci, ...]:
    """An option of mwanctl's own tracker (`uplink` sections of /etc/config/mwanctl, compile/tracker.py)."""
    return (Uci("mwanctl", "uplink", option, value=_seconds, blueprint=False),)


def _with_quality(t: Any) -> bool:
    return bool(t.check_quality)


def _with_httping(t: Any) -> bool:
    return bool(t.method == "httping")


def _profile_number(key: str, doc: str) -> Field:
    """A number the tracking profile sets (mwanctl/tracking.py PROFILES) unless it is given."""
    return Field(key, Int(1, 3600), doc, default=None, uci=mwan3(key), shown_default="profile")


def _quality(key: str, kind: Int, unit: str) -> Field:
    """A latency or loss limit of `check_quality` (mwan3's own default when left out)."""
    return Field(key, kind, f"{unit}; written only with `check_quality`", uci=mwan3(key, when=_with_quality),
                 shown_default="mwan3's")


METHOD_RE = re.compile(r"ping|arping|httping|nslookup|nping-[a-z]+")


@dataclass(frozen=True)
class Tracking:
    """How mwan3track decides whether an uplink works (block `tracking`), in the order mwan3's
    `interface` section lists the options; then mwanctl's handover tracker (profile `instant`),
    which leaves mwan3track as the slow fallback."""

    profile: Annotated[str, Field(
        "profile", OneOf(tuple(PROFILES)), "sets the numbers marked *profile* (explicit numbers override "
        "it); `instant` is mwanctl's own handover tracker, [below](#sub-second-handover-profile-instant)",
        default=DEFAULT_PROFILE)]
    targets: Annotated[tuple[str, ...], Field(
        "targets", Texts(), "IPv4 addresses probed through the interface (host names only with "
        "`httping`); an IPv6 address here is an error", default=DEFAULT_TARGETS,
        uci=mwan3("track_ip", is_list=True), what="list of IPv4 addresses")]
    targets6: Annotated[tuple[str, ...], Field(   # what IPv6 interfaces track (`targets` is IPv4 only)
        "targets6", Texts(), "the IPv6 interfaces' `track_ip` instead of `targets` (the "
        "`mw_<uplink>6` aliases of `ipv6: true` uplinks and `family: ipv6` WANs): IPv6 addresses, an IPv4 one "
        "is an error; an empty list is an error where it is needed: the interface could never fail over",
        default=DEFAULT_TARGETS6, what="list of IPv6 addresses")]
    method: Annotated[str, Field(
        "method", Text(METHOD_RE, "use ping, arping, httping, nslookup or nping-<mode>"),
        "how mwan3track probes", default="ping", uci=mwan3("track_method"),
        what="`ping`, `arping`, `httping`, `nslookup`, `nping-<mode>`")]
    reliability: Annotated[int, Field(
        "reliability", Int(1, 64), "targets that must answer per round (at most the number of targets)",
        default=1, uci=mwan3("reliability"))]
    count: Annotated[int, _profile_number("count", "probes per target and round")]
    timeout: Annotated[int, _profile_number("timeout", "seconds to wait for an answer")]
    interval: Annotated[int, _profile_number("interval", "seconds between rounds while online")]
    failure_interval: Annotated[int, _profile_number("failure_interval", "seconds between rounds while failing")]
    recovery_interval: Annotated[int, _profile_number("recovery_interval",
                                                      "seconds between rounds while recovering")]
    keep_failure_interval: Annotated[bool, Field(
        "keep_failure_interval", Flag(), "keep `failure_interval` once offline", default=False,
        uci=mwan3("keep_failure_interval"))]
    down: Annotated[int, _profile_number("down", "failed rounds in a row that take the interface offline")]
    up: Annotated[int, _profile_number("up", "good rounds in a row that bring it back")]
    initial_state: Annotated[str, Field(
        "initial_state", OneOf(("online", "offline")), "the state before the first round",
        default="online", uci=mwan3("initial_state"))]
    check_quality: Annotated[bool, Field(
        "check_quality", Flag(), "also judge latency and loss (the four options below)", default=False,
        uci=mwan3("check_quality"))]
    failure_latency: Annotated[Optional[int], _quality("failure_latency", Int(1, 100000), "ms")]
    failure_loss: Annotated[Optional[int], _quality("failure_loss", Int(0, 100), "%")]
    recovery_latency: Annotated[Optional[int], _quality("recovery_latency", Int(1, 100000), "ms")]
    recovery_loss: Annotated[Optional[int], _quality("recovery_loss", Int(0, 100), "%")]
    flush_conntrack: Annotated[tuple[str, ...], Field(
        "flush_conntrack", AnyOf(("ifup", "ifdown", "connected", "disconnected"), "an mwan3 event"),
        "events on which mwan3 flushes the connection tracking table", default=(),
        uci=mwan3("flush_conntrack", is_list=True))]
    httping_ssl: Annotated[bool, Field(
        "httping_ssl", Flag(), "probe over HTTPS; written only with `method: httping`", default=False,
        uci=mwan3("httping_ssl", when=_with_httping))]
    size: Annotated[Optional[int], Field(
        "size", Int(1, 65000), "ping payload size in bytes", uci=mwan3("size"), shown_default="mwan3's")]
    max_ttl: Annotated[Optional[int], Field(
        "max_ttl", Int(1, 255), "ping TTL", uci=mwan3("max_ttl"), shown_default="mwan3's")]
    probe_interval_ms: Annotated[int, Field(      # between two probes of one target
        "probe_interval_ms", Int(50, 1000), "between two probes of one target; every IPv4 target is "
        "probed in parallel", default=200, uci=_tracker("interval"), table="instant")]
    window_ms: Annotated[int, Field(              # no answer from any target for this long: down
        "window_ms", Int(100, 10000), "no target answered for this long: the uplink is down (at least "
        "two probe intervals)", default=600, uci=_tracker("window"), table="instant")]
    stable_ms: Annotated[int, Field(              # answers without such a gap for this long: up again
        "stable_ms", Int(100, 60000), "answers without such a gap for this long: it is up again "
        "(hysteresis)", default=1000, uci=_tracker("stable"), table="instant")]
    tracker: bool                                 # derived: profile == `instant`


def _nonzero(v: int) -> Optional[int]:
    return v or None


@dataclass(frozen=True)
class TunnelSettings:
    """WireGuard settings of one mother<->uplink tunnel (block `uplinks[].tunnel`; the defaults are
    `tunnels`, topology/fields.py)."""

    port: Annotated[int, Field(            # the uplink's listen port (the mother connects to it)
        "port", PORT, "the uplink's WireGuard listen port", shown_default="`tunnels.port`",
        uci=(Uci("network", "interface", "listen_port", router="uplink"),
             Uci("network", "wireguard_<iface>", "endpoint_port"),
             Uci("firewall", "rule", "dest_port", router="uplink", var="listen_port")))]
    mtu: Annotated[int, Field(
        "mtu", Int(1280, 9000), "WireGuard MTU; with a `wan:` block at most the WAN's MTU − 80 (MW021), and "
        "when left out derived from it ([below](#wan-mtu-and-the-tunnel-mtu))",
        shown_default="`tunnels.mtu` (lowered to fit `wan`)",
        uci=(Uci("network", "interface", "mtu"), Uci("network", "interface", "mtu", router="uplink")))]
    keepalive: Annotated[int, Field(
        "keepalive", KEEPALIVE, "seconds between the mother's keepalives (0: none)",
        shown_default="`tunnels.keepalive`",
        uci=(Uci("network", "wireguard_<iface>", "persistent_keepalive", var="keepalive", value=_nonzero),))]
    index: Annotated[Optional[int], Field(   # explicit slot in the address pool; None = allocate and remember
        "index", Int(0, 2**20), "the tunnel's slot in the address pool (and in `pool6`, at the same "
        "index); normally allocated once and remembered in the key store", shown_default="allocated")]
    metric: Annotated[Optional[int], Field(  # netifd route metric on the mother; None = derived from the slot
        "metric", Int(1, 2**31 - 1), "the tunnel's route metric on the mother; every WAN-like interface "
        "needs its own (MW005)", shown_default="`10 × (slot + 1)`",
        uci=(Uci("network", "interface", "metric"),))]


# -- an uplink's own WAN (`uplinks[].wan`, optional) -------------------------------------------------
# The option names are those netifd's handlers read (compile/schema.py NETIFD_PROTO_OPTIONS, from
# ppp.sh, qmi.sh, modemmanager.sh, dhcp.sh and netifd's static proto); which fields each proto takes,
# and the rules across fields, are compile/wan.py's (MW020). Secrets are not options here: their
# values are read by mwanctl/wansecrets.py and written to `password`/`pincode` by the blueprint.
WAN_PROTOS = ("dhcp", "static", "pppoe", "qmi", "modemmanager")
WAN_IP_TYPES = ("ipv4", "ipv6", "ipv4v6")
WAN_AUTHS = ("none", "pap", "chap", "both")
WAN_INTERFACE = re.compile(r"[A-Za-z0-9_]{1,15}")
WAN_TEXT = re.compile(r"[^\s'\\]+")     # one word: ISP user names, AC and service names
_WORD = "one word without spaces or quotes"
# qmi.sh's pdptype words (it lowercases; anything else falls back to `ip`); uqmi's --auth-type
# words are `auth`'s own; ModemManager takes a list of allowed methods
QMI_PDPTYPE = {"ipv4": "ip", "ipv6": "ipv6", "ipv4v6": "ipv4v6"}
MM_ALLOWEDAUTH = {"none": ("none",), "pap": ("pap",), "chap": ("chap",), "both": ("pap", "chap")}


def _wan(option: str, **kw: Any) -> Uci:
    return Uci("network", "interface", option, router="uplink", **kw)


def _proto_is(*protos: str) -> Callable[[Any], bool]:
    return lambda w: bool(w.proto in protos)


def _ipv4_interface(s: str) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(s)


def _ipv4(s: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(s)


def _given(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A value converter that leaves an unset value unset."""
    return lambda v: None if v is None else fn(v)


def _bool01(v: Optional[bool]) -> Optional[str]:
    return None if v is None else ("1" if v else "0")


@dataclass(frozen=True)
class SecretRef:
    """Where one secret comes from, never its value: an environment variable or a file. The
    topology file is meant to be shared and printed; mwanctl.wansecrets reads the values."""

    env: Optional[str] = None
    file: Optional[str] = None
    path: str = ""                                    # the YAML field, for messages
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def source(self) -> str:
        """Said in messages instead of the value."""
        return f"environment variable {self.env}" if self.env is not None else f"file {self.file}"


@dataclass(frozen=True, kw_only=True)
class Wan:
    """An uplink router's internet interface section, which mwanctl owns while this block exists
    (block `uplinks[].wan`); ``password`` and ``pin`` are derived from the ``*_env``/``*_file`` keys."""

    proto: Annotated[str, Field(                      # one of WAN_PROTOS
        "proto", OneOf(WAN_PROTOS), "how the uplink router reaches the internet: netifd's `dhcp` and "
        "`static`, `pppoe` (packages `ppp`, `ppp-mod-pppoe`), `qmi` (`uqmi`) or `modemmanager`",
        default=REQUIRED, uci=(_wan("proto"),), shown_default="required")]
    interface: Annotated[str, Field(
        "interface", Text(WAN_INTERFACE, "use a netifd interface name: up to 15 letters, digits or `_`"),
        "the netifd interface section mwanctl then owns (written whole); not `lan`, `loopback` or `mw_…`",
        what="netifd interface")] = "wan"
    device: Annotated[str, Field(   # netdev / /dev/cdc-wdm* (qmi) / sysfs path (modemmanager)
        "device", Text(max_len=PATH_MAX), "`dhcp`/`static`/`pppoe`: the network device (`wan`, `eth1`, "
        "`eth0.7`); `qmi`: the modem's control device (`/dev/cdc-wdm0`); `modemmanager`: the modem's "
        "sysfs path (`/sys/devices/…`, see `mmcli -m 0`)", default=REQUIRED, uci=(_wan("device"),),
        shown_default="required", what="device or path")]
    address: Annotated[Optional[ipaddress.IPv4Interface], Field(   # static (netmask already applied)
        "address", Parsed(_ipv4_interface, "an IPv4 address such as 192.0.2.10/24"),
        "`static`: the address, with its prefix or with `netmask`", what="IPv4 address[/prefix]",
        uci=(_wan("ipaddr", value=_given(lambda a: str(a.ip))),
             _wan("netmask", var="netmask", value=_given(lambda a: str(a.netmask)))))] = None
    netmask: Annotated[Optional[ipaddress.IPv4Address], Field(
        "netmask", Parsed(_ipv4, "an IPv4 netmask such as 255.255.255.0"),
        "`static`: the netmask, when `address` has no prefix (default /32, as netifd's)",
        what="IPv4 netmask")] = None
    gateway: Annotated[Optional[ipaddress.IPv4Address], Field(
        "gateway", Parsed(_ipv4, "an IPv4 address such as 192.0.2.1"),
        "`static`: the default gateway, inside the address's network", uci=(_wan("gateway", value=_given(str)),),
        what="IPv4 address")] = None
    dns: Annotated[tuple[str, ...], Field(
        "dns", Texts(), "DNS servers the router adds to its resolver (any proto)",
        uci=(_wan("dns", is_list=True),), what="list of IP addresses", shown_default="none")] = ()
    peerdns: Annotated[Optional[bool], Field(
        "peerdns", MaybeFlag(), "use the DNS servers the ISP hands out (`dhcp`, `pppoe`, `qmi`, "
        "`modemmanager`)", uci=(_wan("peerdns", value=_bool01),), shown_default="netifd's (true)")] = None
    username: Annotated[Optional[str], Field(
        "username", Text(WAN_TEXT, _WORD), "`pppoe`/`qmi`/`modemmanager`: "
        "the ISP's or APN's user name", uci=(_wan("username"),), what="text")] = None
    password_env: Annotated[Optional[str], Field(
        "password_env", Text(ENV_RE, ENV_HINT), "the password's environment variable (never the "
        "password itself: it is read at `render`/`plan`/`deploy` and shown as `<hidden>`)",
        what="variable name")] = None
    password_file: Annotated[Optional[str], Field(
        "password_file", Text(max_len=PATH_MAX), "or a file holding it (one trailing newline is "
        "dropped; a relative path is taken from the topology file's directory)", what="path")] = None
    ac: Annotated[Optional[str], Field(
        "ac", Text(WAN_TEXT, _WORD), "`pppoe`: only this access concentrator",
        uci=(_wan("ac"),), what="text")] = None
    service: Annotated[Optional[str], Field(
        "service", Text(WAN_TEXT, _WORD), "`pppoe`: the service name",
        uci=(_wan("service"),), what="text")] = None
    apn: Annotated[Optional[str], Field(
        "apn", Text(max_len=100), "`qmi`/`modemmanager`: the access point name (3GPP: labels of letters, "
        "digits and `-` joined by dots)", uci=(_wan("apn"),), what="APN")] = None
    pin_env: Annotated[Optional[str], Field(
        "pin_env", Text(ENV_RE, ENV_HINT), "`qmi`/`modemmanager`: the SIM PIN's environment variable "
        "(4–8 digits; a secret like the password)", what="variable name")] = None
    pin_file: Annotated[Optional[str], Field(
        "pin_file", Text(max_len=PATH_MAX), "or a file holding the PIN", what="path")] = None
    auth: Annotated[Optional[str], Field(             # one of WAN_AUTHS
        "auth", OneOf(WAN_AUTHS), "`qmi`/`modemmanager`: the APN's authentication (`both`: PAP or CHAP)",
        uci=(_wan("auth", when=_proto_is("qmi")),
             _wan("allowedauth", is_list=True, when=_proto_is("modemmanager"),
                  value=_given(lambda a: list(MM_ALLOWEDAUTH[a])))),
        shown_default="the modem's")] = None
    ip_type: Annotated[Optional[str], Field(          # one of WAN_IP_TYPES
        "ip_type", OneOf(WAN_IP_TYPES), "`qmi`/`modemmanager`: the bearer's IP family",
        uci=(_wan("pdptype", when=_proto_is("qmi"), value=_given(lambda t: QMI_PDPTYPE[t])),
             _wan("iptype", when=_proto_is("modemmanager"))),
        shown_default="`ipv4` (qmi), the modem's (modemmanager)")] = None
    mtu: Annotated[Optional[int], Field(              # None: the protocol's default (compile/wan.py)
        "mtu", Int(576, 9000), "the WAN's MTU (not `modemmanager`: it applies the bearer's); the tunnel "
        "MTU is derived from it (see [below](#wan-mtu-and-the-tunnel-mtu))", uci=(_wan("mtu"),),
        shown_default="1492 (`pppoe`), 1500")] = None
    metric: Annotated[Optional[int], Field(
        "metric", Int(0, 2**31 - 1), "route metric of the WAN's default route on the uplink router",
        uci=(_wan("metric"),), shown_default="netifd's (0)")] = None
    password: Optional[SecretRef] = None
    pin: Optional[SecretRef] = None
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def secrets(self) -> dict[str, SecretRef]:
        """The UCI option each secret is written to -> where its value comes from."""
        out: dict[str, SecretRef] = {}
        if self.password is not None:
            out["password"] = self.password
        if self.pin is not None:
            out["pincode"] = self.pin
        return out


# -- hooks and DNS (compile/hooks.py, compile/dns.py) -------------------------------------------

COMMAND_MAX = 4096      # one shell command line: a webhook's JSON body needs more than 255
_IFACE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")


def _cmds(key: str, doc: str) -> Field:
    return Field(key, Texts(COMMAND_MAX), doc, what="list of shell commands", shown_default="none")


@dataclass(frozen=True)
class Hooks:
    """The user's commands for one state change each (block `hooks`: every uplink and own WAN,
    on the mother). See compile/hooks.py."""

    online: Annotated[tuple[str, ...], _cmds(
        "online", "run on the mother when any uplink or own WAN becomes online in mwan3 (before the "
        "uplink's own `online` commands)")] = ()
    offline: Annotated[tuple[str, ...], _cmds(
        "offline", "run on the mother when any uplink or own WAN that was online goes offline")] = ()

    def __bool__(self) -> bool:
        return bool(self.online or self.offline)


@dataclass(frozen=True)
class UplinkHooks:
    """An uplink's hooks (block `uplinks[].hooks`): ``online``/``offline`` on the mother (its tunnel
    in mwan3), ``wan_online``/``wan_offline`` on the uplink router (netifd's ifup/ifdown of
    ``wan_interface``)."""

    online: Annotated[tuple[str, ...], _cmds(
        "online", "run on the mother when this uplink's tunnel becomes online in mwan3 (after the "
        "top-level `hooks.online`)")] = ()
    offline: Annotated[tuple[str, ...], _cmds(
        "offline", "run on the mother when this uplink's tunnel goes offline in mwan3")] = ()
    wan_online: Annotated[tuple[str, ...], _cmds(
        "wan_online", "run on the uplink router when its WAN interface comes up (netifd `ifup`)")] = ()
    wan_offline: Annotated[tuple[str, ...], _cmds(
        "wan_offline", "run on the uplink router when its WAN interface goes down (netifd `ifdown`)")] = ()
    wan_interface: Annotated[str, Field(
        "wan_interface", Text(_IFACE_RE, "use the netifd interface name, up to 15 letters, digits or `_`"),
        "the uplink router's netifd interface that `wan_online`/`wan_offline` watch",
        what="netifd interface")] = "wan"

    @property
    def mother(self) -> Hooks:
        return Hooks(self.online, self.offline)

    @property
    def router(self) -> Hooks:
        return Hooks(self.wan_online, self.wan_offline)


@dataclass(frozen=True)
class Dns:
    """The mother's upstream resolvers and the policy their failover policies follow (block `dns`;
    see compile/dns.py)."""

    servers: Annotated[tuple[str, ...], Field(
        "servers", Texts(), "the mother's dnsmasq forwards to these only (`noresolv`), every query to all "
        "of them at once (`allservers`); each gets an mwan3 rule and its own failover policy, so each "
        "prefers another uplink (IPv6 addresses need an IPv6 uplink or own WAN)",
        default=("1.1.1.1", "9.9.9.9"), what="list of IP addresses")]
    policy: Annotated[str, Field(
        "policy", Text(re.compile(r"[A-Za-z0-9_]{1,63}"), "use a policy name"),
        "the policy whose members and tiers the servers' failover policies are made of",
        shown_default="`default_policy`", what="policy name")]
    loc: Optional[Location] = field(default=None, compare=False)


# -- the routers ---------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Uplink:
    """One uplink router (block `uplinks[]`) and its tunnel to the mother."""

    name: Annotated[str, Field(
        "name", NAME, "becomes the interface `mw_<name>` on both ends; mwan3 allows 13 characters for "
        "interface names", default=REQUIRED, what="`[A-Za-z0-9_]`, ≤ 10 chars (≤ 9 with `ipv6`)")]
    host: Annotated[str, Field(   # how the mother reaches it; also the WireGuard endpoint by default
        "host", Host(), "how mwanctl reaches the uplink router, and the WireGuard endpoint",
        default=REQUIRED)]
    endpoint: Annotated[str, Field(
        "endpoint", Host(), "where the mother sends the tunnel's UDP, when it differs from `host` (same "
        "grammar as `host`)", shown_default="`host`",
        uci=(Uci("network", "wireguard_<iface>", "endpoint_host"),))]
    weight: Annotated[int, Field(
        "weight", WEIGHT, "share of new flows within its tier", default=1, uci=(MEMBER_WEIGHT,))]
    tier: Annotated[int, Field(
        "tier", TIER, "failover tier: tier 2 is used only while every tier-1 uplink is down", default=1,
        uci=(MEMBER_METRIC,))]
    ipv6: Annotated[bool, Field(
        "ipv6", Flag(), "carry IPv6 too (needs `tunnels.pool6`); adds an IPv6 alias `mw_<name>6` that mwan3 "
        "balances separately and tracks with `tracking.targets6`", default=False)]
    description: Annotated[str, Field(
        "description", Text(), "stored in the peer section byte for byte (quotes, `$(…)`, backticks and "
        "any Unicode are fine; control characters, line separators and lone surrogates are refused)",
        shown_default="`uplink <name>`", what="one line of text, ≤ 255 characters",
        uci=(Uci("network", "wireguard_<iface>", "description"),))]
    mother_zone: Annotated[str, Field(   # firewall zone on the uplink router that the mother arrives from
        "mother_zone", ZONE, "where the mother's WireGuard packets arrive; the WireGuard port is opened "
        "from it", default="lan", what="firewall zone on the uplink",
        uci=(Uci("firewall", "rule", "src", router="uplink", var="mother_zone"),))]
    wan_zone: Annotated[str, Field(      # firewall zone of the uplink router's own internet connection
        "wan_zone", ZONE, "the uplink's internet zone; the tunnel zone is forwarded to it (it must "
        "masquerade, as OpenWrt's `wan` zone does)", default="wan", what="firewall zone on the uplink",
        uci=(Uci("firewall", "forwarding", "dest", router="uplink", var="wan_zone"),))]
    tracking: Annotated[Tracking, Field(
        "tracking", Nested("mapping"), "see [tracking](#tracking)", shown_default="top-level `tracking`")]
    tunnel: Annotated[TunnelSettings, Field(
        "tunnel", Nested("mapping"), "this tunnel's WireGuard settings, [below](#uplinkstunnel)",
        shown_default="`tunnels`")]
    wan: Annotated[Optional[Wan], Field(   # its own WAN section, when mwanctl sets it up
        "wan", Nested("mapping"), "the uplink router's own internet connection (DHCP, static, PPPoE, QMI, "
        "ModemManager), [below](#uplinkswan-the-uplink-routers-own-internet-connection)",
        shown_default="none: the router's WAN is never touched")] = None
    hooks: Annotated[UplinkHooks, Field(
        "hooks", Nested("mapping"), "this uplink's own commands, on the mother and on the uplink router "
        "itself, see [hooks](#updown-hooks)", shown_default="none")] = field(default_factory=UplinkHooks)
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def iface(self) -> str:
        """netifd interface = WireGuard device = mwan3 interface name (the same on both ends)."""
        return PREFIX + self.name

    @property
    def iface6(self) -> str:
        """netifd alias carrying the IPv6 side for mwan3 (one mwan3 interface per family)."""
        return PREFIX + self.name + "6"


@dataclass(frozen=True)
class MotherWan:
    """One of the mother's own internet connections (block `mother.wans[]`), balanced beside the
    tunnels."""

    name: Annotated[str, Field(   # existing netifd interface on the mother (e.g. `wan`)
        "name", NAME, "an existing interface such as `wan` (a plain string also works: `wans: [wan]`); "
        "not `globals` (mwan3's own section) and not `mw_…`; the mwan3 interface's name",
        default=REQUIRED, what="netifd interface")]
    weight: Annotated[int, Field("weight", WEIGHT, "share within its tier", default=1, uci=(MEMBER_WEIGHT,))]
    tier: Annotated[int, Field(
        "tier", TIER, "failover tier: lower tiers are used first", default=1, uci=(MEMBER_METRIC,))]
    family: Annotated[str, Field(   # ipv4 | ipv6
        "family", OneOf(("ipv4", "ipv6")), "mwan3 tracks one family per interface", default="ipv4",
        uci=(Uci("mwan3", "interface", "family", computed=True),))]
    metric: Annotated[Optional[int], Field(   # set `network.<name>.metric` if given (mwan3 needs distinct metrics)
        "metric", Int(0, 2**31 - 1), "mwan3 needs a distinct route metric per WAN; while some tunnel's "
        "metric is derived (`10 × (slot + 1)`), a multiple of 10 is refused, as a tunnel may get it (MW005)",
        uci=(Uci("network", "interface", "metric", blueprint=False),))]
    tracking: Annotated[Tracking, Field(
        "tracking", Nested("mapping"), "see [tracking](#tracking)", shown_default="top-level `tracking`")]
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def iface(self) -> str:
        return self.name


@dataclass(frozen=True)
class Mother:
    """The router running mwan3: block `mother`, and its `mother.lan` mapping flattened into the
    ``lan_*`` attributes (the `lan` key's own row sits on the first of them)."""

    host: Annotated[str, Field(
        "host", Host(), "how mwanctl reaches the mother (host names: RFC 1123 labels; a link-local IPv6 "
        "address may carry a zone such as `%eth0`, an interface name of ≤ 15 letters, digits, `_`, `.`, "
        "`-`)", default=REQUIRED)]
    name: Annotated[str, Field(
        "name", NAME, "its name in plans, status and `access`", default="mother",
        what="UCI name (`[A-Za-z0-9_]`, ≤ 63)")]
    lan_network: Annotated[
        str,
        Field("lan", Nested("mapping"), "the LAN, below"),
        Field("network", NAME, "the LAN interface", default="lan", what="netifd interface", block="mother.lan"),
    ]
    lan_zone: Annotated[str, Field(
        "zone", ZONE, "the LAN's zone (forwarded into the tunnels)", default="lan", what="firewall zone",
        uci=(Uci("firewall", "forwarding", "src", var="lan_zone"),), block="mother.lan")]
    lan_subnet: Annotated[Optional[IPv4Net], Field(
        "subnet", Parsed(lambda s: ipaddress.IPv4Network(s, strict=False), "an IPv4 network such as "
        "192.168.1.0/24"), "when given, the tunnel pool is checked not to overlap it", block="mother.lan")]
    wans: Annotated[tuple[MotherWan, ...], Field(
        "wans", Nested("list"), "the mother's own internet interfaces, balanced beside the tunnels",
        shown_default="none")]


# -- the traffic ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyMember:
    """One member of a policy (block `policies[].members[]`; a plain name `- dsl` is its `uplink`)."""

    target: Annotated[   # uplink name or mother WAN name
        str,
        Field("uplink", NAME, "the uplink (a plain name `- dsl` means the same)", what="uplink name",
              uci=(Uci("mwan3", "member", "interface", var="iface", computed=True),)),
        Field("wan", NAME, "or one of the mother's own WANs", what="WAN name"),
    ]
    tier: Annotated[int, Field(   # mwan3 member metric: lower tiers are used first
        "tier", TIER, "the member's tier in this policy", shown_default="the uplink's", uci=(MEMBER_METRIC,))]
    weight: Annotated[int, Field(
        "weight", WEIGHT, "its weight in this policy", shown_default="the uplink's", uci=(MEMBER_WEIGHT,))]


@dataclass(frozen=True)
class Policy:
    """An mwan3 policy (block `policies[]`)."""

    name: Annotated[str, Field(
        "name", NAME, "`[A-Za-z0-9_]`, ≤ 12 characters (becomes `mw_<name>`; mwan3 skips names over 15); "
        "not `default`, `unreachable` or `blackhole`, which are mwan3's own (MW011)", default=REQUIRED,
        what="name")]
    members: Annotated[tuple[PolicyMember, ...], Field(
        "members", Nested("list"), "uplink or own-WAN names, or mappings `{uplink: dsl, tier: 1, weight: 3}` "
        "(below). Never a policy: mwan3 cannot nest policies, so a policy can neither contain itself nor "
        "form a cycle (MW007)", default=REQUIRED,
        uci=(Uci("mwan3", "policy", "use_member", is_list=True, computed=True),))]
    last_resort: Annotated[str, Field(   # unreachable | blackhole | default
        "last_resort", OneOf(("unreachable", "blackhole", "default")), "when no member is online: "
        "`unreachable`, `blackhole` or `default` (the main routing table)", default="unreachable",
        uci=(Uci("mwan3", "policy", "last_resort"),))]
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def section(self) -> str:
        return PREFIX + self.name


def _rule(option: str, **kw: Any) -> tuple[Uci, ...]:
    return (Uci("mwan3", "rule", option, **kw),)


def _policy_ref(name: str) -> str:
    """A rule's `use_policy`: mwan3's built-in policies by their name, the topology's as `mw_<name>`."""
    return name if name in BUILTIN_POLICIES else PREFIX + name


def _sticky(rule: Any) -> bool:
    return bool(rule.sticky)


_NETWORK = Parsed(network_text, "an IP address or network")
_PORTS = Ports()
_PORTS_DOC = ("`443`, `1000:2000` or `80,443` (quote them in YAML): iptables' multiport syntax, ports 0–65535, "
              "ranges low to high, at most 15 ports with a range counting as two (MW013). A range written "
              "`80-443` (fw4's spelling) means the same and is written to mwan3 as `80:443`")


@dataclass(frozen=True, kw_only=True)
class Rule:
    """An mwan3 rule (block `rules[]`), its options in mwan3's order."""

    name: Annotated[str, Field(
        "name", NAME, "`[A-Za-z0-9_]`, ≤ 12 characters (becomes `mw_<name>`)", default=REQUIRED, what="name")]
    proto: Annotated[Optional[str], Field(
        "proto", Text(re.compile(r"[a-z0-9]{1,16}"), "use a protocol name like tcp, udp, icmp or a number"),
        "`tcp`, `udp`, `icmp`, … (ports need `tcp` or `udp`: mwan3 ignores them otherwise, so mwanctl "
        "refuses it)", uci=_rule("proto"), what="protocol")] = None
    src_ip: Annotated[Optional[str], Field(
        "src_ip", _NETWORK, "an address or network (no zone id; both of one IP version)",
        uci=_rule("src_ip"))] = None
    src_port: Annotated[Optional[str], Field("src_port", _PORTS, _PORTS_DOC, uci=_rule("src_port"))] = None
    dest_ip: Annotated[Optional[str], Field("dest_ip", _NETWORK, "like `src_ip`", uci=_rule("dest_ip"))] = None
    dest_port: Annotated[Optional[str], Field(
        "dest_port", _PORTS, "like `src_port`", uci=_rule("dest_port"))] = None
    ipset: Annotated[Optional[str], Field(
        "ipset", Text(re.compile(r"[A-Za-z0-9_.-]{1,31}"), "ipset names: up to 31 letters, digits, `_`, "
        "`.` or `-`"), "an existing ipset matched against the destination", uci=_rule("ipset"),
        what="ipset name")] = None
    src_iface: Annotated[Optional[str], Field(
        "src_iface", NAME, "a netifd interface on the mother the traffic comes in on",
        uci=_rule("src_iface"), what="netifd interface")] = None
    family: Annotated[Optional[str], Field(
        "family", OneOf(("ipv4", "ipv6", "any")), "which IP versions the rule matches",
        uci=_rule("family"), shown_default="mwan3's (`any`)")] = None
    sticky: Annotated[bool, Field(
        "sticky", Flag(), "keep a source address on the uplink it first used (for sites that log you out "
        "when your address changes)", uci=_rule("sticky"))] = False
    timeout: Annotated[Optional[int], Field(
        "timeout", Int(1, 10**6), "seconds a sticky source stays; written only with `sticky`",
        uci=_rule("timeout", when=_sticky), shown_default="mwan3's (600)")] = None
    logging: Annotated[bool, Field(
        "logging", Flag(), "log matching packets (needs mwan3's global `logging`)", uci=_rule("logging"))] = False
    policy: Annotated[str, Field(   # a policy name, or the built-ins default/unreachable/blackhole
        "policy", NAME, "a policy name, or mwan3's `default`, `unreachable`, `blackhole`",
        default=REQUIRED, what="policy name", uci=_rule("use_policy", value=_policy_ref))]
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def section(self) -> str:
        return PREFIX + self.name


@dataclass(frozen=True)
class Pool:
    ipv4: IPv4Net
    ipv6: Optional[IPv6Net]


@dataclass(frozen=True)
class Access:
    """How mwanctl reaches one router (block `access.<router>`); separate from what the router
    should become."""

    transport: Annotated[str, Field(
        "transport", OneOf(("ssh", "ubus", "local")), "`ssh`, `ubus` (rpcd JSON-RPC over HTTP(S)) or "
        "`local` (mwanctl runs on the mother itself)")] = "ssh"
    host: Annotated[Optional[str], Field(
        "host", Host(), "where to connect", shown_default="the router's `host`")] = None
    port: Annotated[Optional[int], Field(
        "port", PORT, "the port to connect to", shown_default="22 (ssh)")] = None
    user: Annotated[str, Field(
        "user", Text(USER_RE, "use a login name: letters, digits, `_`, `.` or `-`"), "SSH or rpcd user",
        what="login name")] = "root"
    key: Annotated[Optional[str], Field(
        "key", PATH, "SSH private key file", shown_default="SSH agent and default keys", what="path")] = None
    password_env: Annotated[Optional[str], Field(
        "password_env", Text(ENV_RE, ENV_HINT), "an environment variable holding the password (never the "
        "command line; otherwise mwanctl prompts when it runs in a terminal)", what="variable name")] = None
    password_file: Annotated[Optional[str], Field(
        "password_file", PATH, "a file holding the password", what="path")] = None
    known_hosts: Annotated[Optional[str], Field(
        "known_hosts", PATH, "host keys are checked; a changed key is refused; a new one is trusted only "
        "with `--accept-new-host-key`", shown_default="`~/.ssh/known_hosts`", what="path")] = None
    jump: Annotated[Optional[str], Field(   # name of another router to tunnel SSH through
        "jump", NAME, "another router to tunnel SSH through (e.g. uplinks reachable only via the mother); "
        "jumps must not go round in a circle (MW009)", what="router name")] = None
    ubus_url: Annotated[Optional[str], Field(
        "ubus_url", Text(re.compile(r"https?://\S+"), "use http(s)://<router>/ubus"), "for `ubus`: where "
        "rpcd answers", shown_default="`https://<host>/ubus`", what="URL")] = None
    tls_fingerprint: Annotated[Optional[str], Field(
        "tls_fingerprint", Text(re.compile(r"sha256:[0-9A-Fa-f:]{64,95}"), "use sha256:<64 hex digits>"),
        "for `ubus`: pin a self-signed router certificate", what="`sha256:<hex>`")] = None
    ca_file: Annotated[Optional[str], Field(
        "ca_file", PATH, "for `ubus`: trust this CA file", what="path")] = None
    connect_timeout: Annotated[float, Field("connect_timeout", Int(1, 600), "seconds")] = 10.0
    confirm_timeout: Annotated[int, Field(
        "confirm_timeout", Int(30, 3600, " (under 30 s valid changes get reverted while the network restarts)"),
        "seconds a router waits for confirmation before it restores its old config")] = 90


@dataclass(frozen=True)
class Topology:
    site: str
    mother: Mother
    uplinks: tuple[Uplink, ...]
    pool: Pool
    policies: tuple[Policy, ...]
    rules: tuple[Rule, ...]
    default_policy: str
    access: dict[str, Access]
    file: str = ""
    hooks: Hooks = field(default_factory=Hooks)
    dns: Optional[Dns] = None        # None: mwanctl leaves the mother's dnsmasq alone

    def uplink(self, name: str) -> Uplink:
        return self._uplinks_by_name[name]

    @cached_property
    def _uplinks_by_name(self) -> dict[str, Uplink]:
        """O(1) lookups: compiling a policy of n uplinks must not cost n^2."""
        out: dict[str, Uplink] = {}
        for u in self.uplinks:
            out.setdefault(u.name, u)
        return out

    def policy(self, name: str) -> Policy:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def routers(self) -> list[str]:
        """Router names in deploy order: uplinks first, the mother last."""
        return [u.name for u in self.uplinks] + [self.mother.name]

    def host_of(self, router: str) -> str:
        if router == self.mother.name:
            return self.mother.host
        return self.uplink(router).host

    def access_for(self, router: str) -> Access:
        return self.access.get(router, self.access.get("defaults", Access()))
