"""The option names OpenWrt actually reads, per package and section type.

From reference.md (§1 mwan3, §3 netifd WireGuard, §6 firewall). A name not in here is silently
ignored on a router, so every compiled section is checked against this table — that is what
catches a typo in a user's template override. The options a topology field writes are declared
once, on the model attribute of their field (topology/model.py, gathered by topology/fields.py),
and count as known from there; the sets below hold only what OpenWrt reads besides (what mwanctl writes from no field, or never writes but a
user's blueprint may add).
"""

from __future__ import annotations

from mwanctl.topology.fields import declared_lists, declared_options

# Besides these, each section type knows the options the field table declares for it (its
# README tables list them), e.g. `mtu`, `metric`, `listen_port`, `endpoint_port`, `endpoint_host`,
# `persistent_keepalive`, `description` in network; the tracking, rule and policy options in mwan3.
NETIFD_COMMON = {"proto", "device", "defaultroute", "peerdns", "dns", "ip4table", "ip6table",
                 "auto", "disabled", "ipaddr", "netmask", "gateway", "ip6addr", "ip6gw",
                 "ip6assign", "delegate", "force_link"}
WIREGUARD_IFACE = {"private_key", "addresses", "fwmark", "ip6prefix", "nohostroute", "tunlink"}
WIREGUARD_PEER = {"public_key", "preshared_key", "allowed_ips", "route_allowed_ips", "disabled"}
# The options each WAN protocol handler declares (proto_config_add_*), per proto: ppp.sh (pppoe),
# qmi.sh (uqmi), modemmanager.sh, netifd's dhcp.sh and its built-in static proto (proto.c). Copied
# as data, with the upstream paths and commits, in tests/data/netifd_proto_handlers.json, which
# tests/test_wan_compile.py holds this table to. NETIFD_PROTO_DEFAULTS is proto_config_add_defaults.
NETIFD_PROTO_DEFAULTS = {"defaultroute", "peerdns", "renew", "metric"}
NETIFD_PROTO_OPTIONS = {
    "pppoe": {"username", "password", "keepalive", "demand", "pppd_options", "connect", "disconnect",
              "ipv6", "authfail", "mtu", "ac", "service"},
    "qmi": {"device", "apn", "v6apn", "auth", "username", "password", "pincode", "delay", "modes",
            "pdptype", "profile", "v6profile", "dhcp", "dhcpv6", "autoconnect", "plmn", "timeout",
            "mtu"} | NETIFD_PROTO_DEFAULTS,
    "modemmanager": {"device", "apn", "allowedauth", "username", "password", "allowedmode",
                     "preferredmode", "pincode", "iptype", "sourcefilter", "plmn", "signalrate",
                     "lowpower", "allow_roaming", "force_connection", "init_epsbearer", "init_iptype",
                     "init_allowedauth", "init_password", "init_user", "init_apn"} | NETIFD_PROTO_DEFAULTS,
    "dhcp": {"ipaddr", "hostname", "clientid", "vendorid", "broadcast", "reqopts", "iface6rd",
             "sendopts", "delegate", "zone6rd"},
    "static": {"ipaddr", "ip6addr", "netmask", "broadcast", "ptpaddr", "gateway", "ip6gw", "ip6prefix",
               "ip6deprecated"},
}
NETIFD_WAN_OPTIONS = set().union(*NETIFD_PROTO_OPTIONS.values())
MWAN3_INTERFACE = {"enabled"}
MWAN3_MEMBER: set[str] = set()
MWAN3_POLICY: set[str] = set()
MWAN3_RULE: set[str] = set()
FW_ZONE = {"name", "network", "device", "subnet", "input", "output", "forward", "masq", "masq6",
           "masq_src", "masq_dest", "mtu_fix", "family", "log", "enabled"}
FW_FORWARDING = {"family", "enabled", "name"}
FW_RULE = {"name", "dest", "proto", "src_ip", "dest_ip", "src_port", "icmp_type", "target", "family",
           "enabled", "limit"}

# options that must be written as `list`: their readers ignore or misread a plain `option`
# (mwan3 reads them with config_list_foreach, which skips plain options). fw4 reads rule
# `proto` either way, so it is not listed.
LISTS = {
    ("network", "wireguard_peer"): {"allowed_ips"},
    ("network", "interface"): {"addresses", "ip6addr", "dns", "ip6prefix", "allowedauth", "reqopts"},
    ("firewall", "zone"): {"network", "device", "subnet", "masq_src", "masq_dest"},
}


def known_options(package: str, section_type: str) -> set[str] | None:
    """Options read for this section type, or None when mwanctl does not know the type."""
    known = _openwrt_options(package, section_type)
    return None if known is None else known | declared_options(package, section_type)


def _openwrt_options(package: str, section_type: str) -> set[str] | None:
    if package == "network":
        if section_type.startswith("wireguard_"):
            return WIREGUARD_PEER
        if section_type == "interface":
            return NETIFD_COMMON | WIREGUARD_IFACE | NETIFD_WAN_OPTIONS
    if package == "mwan3":
        return {"interface": MWAN3_INTERFACE, "member": MWAN3_MEMBER, "policy": MWAN3_POLICY,
                "rule": MWAN3_RULE}.get(section_type)
    if package == "firewall":
        return {"zone": FW_ZONE, "forwarding": FW_FORWARDING, "rule": FW_RULE}.get(section_type)
    return None


def list_options(package: str, section_type: str) -> set[str]:
    key = "wireguard_peer" if section_type.startswith("wireguard_") else section_type
    return LISTS.get((package, key), set()) | declared_lists(package, section_type)
