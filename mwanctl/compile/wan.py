"""An uplink router's own WAN interface (package ``network``), when its topology has ``wan:``.

PURE: a :class:`~mwanctl.topology.wan.Wan` block plus the secret values (read beforehand by
:mod:`mwanctl.wansecrets`) give one ``interface`` section, rendered from the
``network-uplink-wan`` blueprint. The facts that follow from the protocol live here too: which
options its netifd handler reads (``compile.schema.NETIFD_PROTO_OPTIONS``), the WAN's MTU and the
tunnel MTU it leaves room for, which package provides the handler and whether a router's netifd
has it (``ubus call network get_proto_handlers``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping

from mwanctl.compile.context import Context, of_uplink
from mwanctl.compile.schema import NETIFD_PROTO_OPTIONS
from mwanctl.compile.templates import Templates
from mwanctl.errors import Diagnostic, Location, TopologyError
from mwanctl.topology.fields import WAN, placeholders
from mwanctl.topology.grammar import short
from mwanctl.topology.model import SecretRef, Wan
from mwanctl.topology.rules import TEMPLATE, WAN_FIELDS, WAN_HANDLER, WAN_MTU
from mwanctl.uci.model import UciPackage, UciSection

BLUEPRINT = "network-uplink-wan"

# --- MTU --------------------------------------------------------------------------------------------
# WireGuard's overhead per packet: outer IPv6 header 40 + UDP 8 + WireGuard data header 16 + its
# authentication tag 16 = 80 bytes (60 over IPv4). mwanctl assumes the IPv6 figure whatever the
# endpoint is: an endpoint given as a host name may resolve to either family, and it is the
# figure behind WireGuard's (and mwanctl's) default MTU of 1420 = 1500 - 80.
WG_OVERHEAD = 80
# The WAN's MTU when the topology gives none: ppp.sh's PPPoE default (`mtu="${mtu:-1492}"`), the
# Ethernet default for dhcp/static, and for cellular the modem's own 1500 (carriers that use less
# are not knowable in advance: give `mtu` then).
DEFAULT_WAN_MTU = {"dhcp": 1500, "static": 1500, "pppoe": 1492, "qmi": 1500, "modemmanager": 1500}
MIN_TUNNEL_MTU = 1280            # IPv6's minimum link MTU (and tunnel.mtu's lower bound)


def wan_mtu(wan: Wan) -> int:
    """The MTU inner packets meet on the uplink's WAN (explicit, or the protocol's default)."""
    return wan.mtu if wan.mtu is not None else DEFAULT_WAN_MTU[wan.proto]


def tunnel_mtu_limit(wan: Wan) -> int:
    """The largest tunnel MTU whose WireGuard packets still fit through this WAN unfragmented."""
    return wan_mtu(wan) - WG_OVERHEAD


def derived_tunnel_mtu(wan: Wan | None, default: int) -> int:
    """The tunnel MTU when the uplink sets none: the site default, lowered to fit the WAN."""
    return default if wan is None else min(default, tunnel_mtu_limit(wan))


def describe_wan(wan: Wan, tunnel_mtu: int) -> str:
    """One line for `validate`: what mwanctl will own and the tunnel MTU that follows."""
    return (f"WAN {wan.proto} on network.{wan.interface} (owned by mwanctl), MTU {wan_mtu(wan)}"
            f"{'' if wan.mtu is not None else ' (default)'}; tunnel MTU {tunnel_mtu} "
            f"(at most {wan_mtu(wan)} - {WG_OVERHEAD} = {tunnel_mtu_limit(wan)})")


def check_tunnel_mtu(uplink: str, wan: Wan, explicit: int | None, field: str,
                     loc: Location | None) -> list[Diagnostic]:
    """MW021: an explicit tunnel MTU the WAN cannot carry, or a WAN too small for any tunnel."""
    limit = tunnel_mtu_limit(wan)
    why = f"{wan_mtu(wan)} ({wan.proto}{'' if wan.mtu is not None else ' default'}) - {WG_OVERHEAD}"
    if limit < MIN_TUNNEL_MTU:
        return [Diagnostic(wan.loc, f"uplinks.{uplink}.wan.mtu",
                           f"a WAN MTU of {wan_mtu(wan)} leaves {limit} for the tunnel, below IPv6's "
                           f"minimum of {MIN_TUNNEL_MTU}: use a WAN MTU of at least "
                           f"{MIN_TUNNEL_MTU + WG_OVERHEAD}", rule=WAN_MTU)]
    if explicit is not None and explicit > limit:
        return [Diagnostic(loc, field, f"tunnel MTU {explicit} does not fit through uplink `{uplink}`'s "
                           f"WAN: at most {why} = {limit}; set {limit} or leave it out to have it "
                           "derived", rule=WAN_MTU)]
    return []


# --- what the handler needs ---------------------------------------------------------------------------
# proto -> the packages whose netifd handler implements it (the first one ships the handler)
HANDLER_PACKAGES: dict[str, tuple[str, ...]] = {
    "dhcp": (), "static": (),                        # built into netifd
    "pppoe": ("ppp", "ppp-mod-pppoe"),               # ppp.sh registers pppoe only with the plugin
    "qmi": ("uqmi", "kmod-usb-net-qmi-wwan"),
    "modemmanager": ("modemmanager",),
}
PRESENT, MISSING, UNKNOWN = "present", "missing", "unknown"


def handler_state(proto: str, probe: str | None) -> str:
    """Does the router's netifd have a handler for ``proto``? From the raw text of the
    ``proto_handlers`` probe (``ubus call network get_proto_handlers``: one key per registered
    protocol). ``static`` is netifd's own. An unreadable answer is UNKNOWN, never MISSING."""
    if not HANDLER_PACKAGES.get(proto, ("?",)):
        return PRESENT
    if probe is None or probe.startswith("ERROR"):
        return UNKNOWN
    try:
        data = json.loads(probe)
    except ValueError:
        return UNKNOWN
    if not isinstance(data, dict) or not data:
        return UNKNOWN
    return PRESENT if proto in data else MISSING


def install_hint(proto: str) -> str:
    pkgs = " ".join(HANDLER_PACKAGES[proto])
    return f"`opkg install {pkgs}` (OpenWrt 25.12+: `apk add {pkgs}`), then `/etc/init.d/network restart`"


# --- the section ------------------------------------------------------------------------------------

def blueprint_values(wan: Wan, secrets: Mapping[str, str]) -> dict[str, object]:
    """The blueprint's placeholders for one WAN: the field table's options, the section name and
    the secrets (``secrets``: UCI option -> value; a declared secret without a value is left out:
    callers that plan or render resolve them all first)."""
    values: dict[str, object] = dict(placeholders(WAN, wan, "uplink", "network"))
    values.update(interface=wan.interface,
                  **{opt: secrets.get(opt) if opt in wan.secrets else None for opt in ("password", "pincode")})
    return values


def wan_sections(templates: Templates, wan: Wan, secrets: Mapping[str, str]) -> list[UciSection]:
    """The WAN's section(s), checked against what the protocol's handler declares."""
    return checked(templates.render(BLUEPRINT, **blueprint_values(wan, secrets)), wan)


def checked(secs: list[UciSection], wan: Wan) -> list[UciSection]:
    """Refuse a section (a user's blueprint override) with options the handler never reads."""
    for s in secs:
        unread = sorted(set(s.options) - handler_reads(wan.proto))
        if unread:
            raise TopologyError([Diagnostic(None, f"{BLUEPRINT}.uci", f"options {', '.join(unread)} "
                                            f"are not read by netifd's `{wan.proto}` handler",
                                            rule=TEMPLATE)])
    return secs


class WanSection:
    """Converter: an uplink's WAN interface (package `network`), for uplinks with `wan:`."""

    package = "network"
    section_types = ("interface",)

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        out: dict[str, list[UciSection]] = {}
        for u in ctx.topology.uplinks:
            if u.wan is not None:
                secrets = (ctx.secrets or {}).get(u.name, {})
                out[u.name] = checked(ctx.render(BLUEPRINT, of_uplink(u), **blueprint_values(u.wan, secrets)), u.wan)
        return out


# netifd's own interface attributes an uplink WAN section may carry besides its handler's options
# (interface.c iface_attrs; `mtu` is the device attribute netifd takes from an interface section)
INTERFACE_ATTRS = {"proto", "device", "metric", "dns", "peerdns", "defaultroute", "mtu"}


def handler_reads(proto: str) -> set[str]:
    return NETIFD_PROTO_OPTIONS[proto] | INTERFACE_ATTRS


# --- validation of one block (MW020) -------------------------------------------------------------------
# which `wan:` fields each protocol reads (a field given for another protocol is an error, never
# silently dropped)
FIELDS = {
    "dhcp": {"dns", "peerdns", "mtu", "metric"},
    "static": {"address", "netmask", "gateway", "dns", "mtu", "metric"},
    "pppoe": {"username", "password", "ac", "service", "dns", "peerdns", "mtu", "metric"},
    "qmi": {"apn", "pin", "auth", "username", "password", "ip_type", "dns", "peerdns", "mtu", "metric"},
    "modemmanager": {"apn", "pin", "auth", "username", "password", "ip_type", "dns", "peerdns", "metric"},
}
OPTIONAL_FIELDS = set().union(*FIELDS.values())
NETDEV = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")        # a Linux device name (IFNAMSIZ 16)
QMI_DEVICE = re.compile(r"/dev/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
MM_DEVICE = re.compile(r"/sys/devices/[A-Za-z0-9_.:+-]+(?:/[A-Za-z0-9_.:+-]+)*")
# 3GPP TS 23.003 9.1: labels of letters, digits and hyphens joined by dots, at most 100 octets;
# it also keeps qmi.sh's unquoted `--apn $apn` and mmcli's comma-joined list intact
APN = re.compile(r"(?=.{1,100}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
INTERFACE = re.compile(r"[A-Za-z0-9_]{1,15}")
PIN = re.compile(r"[0-9]{4,8}")                                  # ETSI TS 102 221: 4 to 8 digits


def given_fields(wan: Wan) -> set[str]:
    return {f for f in OPTIONAL_FIELDS if getattr(wan, f) not in (None, ())}


def _key(wan: Wan, attr: str) -> str:
    """The YAML key a model attribute came from (a secret: whichever of *_env/*_file was given)."""
    ref = getattr(wan, attr) if attr in ("password", "pin") else None
    if isinstance(ref, SecretRef):
        return f"{attr}_env" if ref.env is not None else f"{attr}_file"
    return attr


def check_wan(uplink: str, wan: Wan, locs: Mapping[str, Location] | None = None) -> list[Diagnostic]:
    """MW020: the block's fields agree with its protocol; ``locs``: YAML key -> where it is written."""
    where = dict(locs or {})
    base = f"uplinks.{uplink}.wan"
    out: list[Diagnostic] = []

    def bad(attr: str, msg: str) -> None:
        key = _key(wan, attr)
        out.append(Diagnostic(where.get(key, wan.loc), f"{base}.{key}", msg, rule=WAN_FIELDS))

    for f in sorted(given_fields(wan) - FIELDS[wan.proto]):
        if f == "mtu" and wan.proto == "modemmanager":
            bad(f, "modemmanager.sh has no `mtu` option (it applies the bearer's MTU); leave it out "
                   "and lower `tunnel.mtu` if the carrier's MTU is below 1500")
        else:
            takes = sorted(p for p, fs in FIELDS.items() if f in fs)
            bad(f, f"not read by proto `{wan.proto}` (only by {', '.join(takes)})")
    dev_re, dev_what = {"qmi": (QMI_DEVICE, "the modem's control device, e.g. /dev/cdc-wdm0"),
                        "modemmanager": (MM_DEVICE, ("the modem's sysfs path, e.g. /sys/devices/platform/"
                                                     "1e1c0000.xhci/usb1/1-1"))}.get(
        wan.proto, (NETDEV, "a network device name such as `wan`, `eth1` or `eth0.7` (15 characters at most)"))
    if not dev_re.fullmatch(wan.device):
        bad("device", f"for proto `{wan.proto}` this is {dev_what}")
    if not INTERFACE.fullmatch(wan.interface) or wan.interface.startswith("mw_") or wan.interface in ("loopback", "lan"):
        bad("interface", "a netifd interface name of up to 15 letters, digits and `_`; not `loopback`, "
                         "`lan` or `mw_…` (mwanctl's own)")
    for d in wan.dns:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            bad("dns", f"{short(d)} is not an IP address (netifd ignores a name here)")
    if wan.proto == "static":
        if wan.address is None:
            bad("address", "proto `static` needs an address, e.g. `address: 192.0.2.2/24`")
        elif wan.gateway is not None and (wan.gateway not in wan.address.network or wan.gateway == wan.address.ip):
            bad("gateway", f"{wan.gateway} is not another address in {wan.address.network}: netifd's "
                           "default route through it would be refused by the kernel")
    if wan.password is not None and not wan.username:
        bad("password", f"a password without `username` is never sent ({'ppp.sh' if wan.proto == 'pppoe' else wan.proto} "
                        "passes it only with a user name)")
    if wan.apn is not None and not APN.fullmatch(wan.apn):
        bad("apn", "an APN is labels of letters, digits and `-` joined by dots (3GPP TS 23.003), at most 100 characters")
    if wan.username is not None:
        unsafe = {"qmi": (r"[\s*?\[]", "qmi.sh passes it unquoted to uqmi"),
                  "modemmanager": (r"[\s,]", "modemmanager.sh joins it into mmcli's comma-separated list")}
        pat = unsafe.get(wan.proto)
        if pat and re.search(pat[0], wan.username):
            bad("username", f"no spaces{', commas' if wan.proto == 'modemmanager' else ' or glob characters'} "
                            f"here: {pat[1]}")
    return out


def check_secret_value(proto: str, option: str, value: str) -> str | None:
    """What is wrong with a resolved secret's value, if anything (never quoting the value)."""
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value):
        return "contains a control character or line break"
    if not value:
        return "is empty"
    if len(value) > 255:
        return "is longer than 255 characters"
    if option == "pincode" and not PIN.fullmatch(value):
        return "is not a SIM PIN of 4 to 8 digits"
    if proto == "qmi" and re.search(r"[\s*?\[]", value):
        return "contains a space or glob character, which qmi.sh's unquoted `--password $password` would split"
    if proto == "modemmanager" and re.search(r"[\s,]", value):
        return "contains a space or comma, which modemmanager.sh's comma-joined mmcli arguments would split"
    return None


# --- at plan time ------------------------------------------------------------------------------------

def plan_findings(router: str, uplink: str, wan: Wan, probe: str | None, touched: bool,
                  proto_loc: Location | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes) for a router whose WAN section mwanctl owns; ``probe`` is the router's
    ``proto_handlers`` answer, ``touched`` whether this plan changes the section.

    A handler netifd does not have is a problem (the router is not deployed): netifd would attach
    the interface to no protocol (proto.c: INVALID_PROTO) and the uplink would lose its internet.
    When the router cannot be asked (no answer, an rpcd ACL without ``network
    get_proto_handlers``) it is a warning only: the config may well be fine."""
    problems: list[str] = []
    notes: list[str] = []
    field = f"uplinks.{uplink}.wan.proto"
    where = proto_loc or wan.loc
    if touched:
        notes.append(f"mwanctl owns network.{wan.interface} on {router} (from uplinks.{uplink}.wan, proto "
                     f"{wan.proto}): the whole section is written as the topology says, and netifd "
                     "reconnects it when it changes (a moment without internet on this uplink)")
    if probe is None:          # not asked (key rotation's plan, which changes tunnel sections only)
        return problems, notes
    state = handler_state(wan.proto, probe)
    if state == MISSING:
        # a section already as the topology says is no worse for deploying the rest: warn only
        diag = Diagnostic(where, field, f"netifd on {router} has no `{wan.proto}` protocol handler, so "
                          f"network.{wan.interface} {'would come' if touched else 'is'} up without internet: "
                          f"install {install_hint(wan.proto)}", severity="error" if touched else "warning",
                          rule=WAN_HANDLER)
        (problems if touched else notes).append(str(diag))
    elif state == UNKNOWN:
        why = (probe or "no answer").splitlines()[0][:120] if probe else "no answer"
        notes.append(str(Diagnostic(where, field, f"could not ask netifd on {router} whether it has the "
                                    f"`{wan.proto}` handler ({why}); it needs {' and '.join(HANDLER_PACKAGES[wan.proto])}",
                                    severity="warning", rule=WAN_HANDLER)))
    return problems, notes


def zone_findings(router: str, uplink: str, wan: Wan, firewall: UciPackage | None,
                  forwarding: str = "mw_tun_fwd") -> list[str]:
    """A warning (MW022) when the firewall zone the tunnel is forwarded to (the uplink's
    `wan_zone`, the ``dest`` of mwanctl's forwarding) does not list the WAN interface: fw4 would
    then neither masquerade nor forward the tunnel's traffic out of it. mwanctl does not own that
    zone, so it only says what to add."""
    fwd = firewall.get(forwarding) if firewall is not None else None
    dest = fwd.options.get("dest") if fwd is not None else None
    if firewall is None or not isinstance(dest, str):
        return []
    zone = next((s for s in firewall.of_type("zone") if s.options.get("name") == dest), None)
    listed = zone.options.get("network", ()) if zone is not None else ()
    networks = listed.split() if isinstance(listed, str) else list(listed)
    if zone is not None and wan.interface in networks:
        return []
    what = (f"firewall zone `{dest}` on {router} does not list network `{wan.interface}`" if zone is not None
            else f"{router} has no firewall zone `{dest}`")
    return [str(Diagnostic(wan.loc, f"uplinks.{uplink}.wan.interface",
                           f"{what}: the tunnel's traffic would not leave by this WAN; add "
                           f"`list network '{wan.interface}'` to that zone (mwanctl does not own it)",
                           severity="warning", rule=WAN_HANDLER))]
