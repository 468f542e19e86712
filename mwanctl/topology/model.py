"""The meaning of a topology file: frozen, fully defaulted, validated.

Everything downstream (compiler, deploy, status, key rotation) reads only these objects,
never the YAML. ``loc`` fields point back at the YAML for messages.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

from mwanctl.errors import Location

IPv4Net = ipaddress.IPv4Network
IPv6Net = ipaddress.IPv6Network

PREFIX = "mw_"  # every UCI section mwanctl owns starts with this (mwan3 own-WAN interfaces excepted)
BUILTIN_POLICIES = ("default", "unreachable", "blackhole")   # mwan3's own; rules name them as they are


@dataclass(frozen=True)
class Tracking:
    """How mwan3track decides whether an uplink works (mwan3 `interface` options).

    One attribute per field of the `tracking` block in topology/fields.py, which holds each one's
    YAML key, range, default, UCI option and docs (tests/test_fields.py keeps the two in step)."""

    profile: str
    targets: tuple[str, ...]
    targets6: tuple[str, ...]         # what IPv6 interfaces track (`targets` is IPv4 only)
    method: str
    reliability: int
    count: int
    timeout: int
    interval: int
    failure_interval: int
    recovery_interval: int
    keep_failure_interval: bool
    down: int
    up: int
    initial_state: str
    check_quality: bool
    failure_latency: Optional[int]
    failure_loss: Optional[int]
    recovery_latency: Optional[int]
    recovery_loss: Optional[int]
    flush_conntrack: tuple[str, ...]
    httping_ssl: bool
    size: Optional[int]
    max_ttl: Optional[int]
    # mwanctl's handover tracker (profile `instant`): mwan3track stays as the slow fallback
    probe_interval_ms: int            # between two probes of one target
    window_ms: int                    # no answer from any target for this long: down
    stable_ms: int                    # answers without such a gap for this long: up again
    tracker: bool                     # derived: profile == `instant`


@dataclass(frozen=True)
class TunnelSettings:
    """WireGuard settings of one mother<->uplink tunnel."""

    port: int              # the uplink's listen port (the mother connects to it)
    mtu: int
    keepalive: int
    index: Optional[int]   # explicit slot in the address pool; None = allocate and remember
    metric: Optional[int]  # netifd route metric on the mother; None = derived from the slot


# -- an uplink's own WAN (`uplinks[].wan`, optional) -------------------------------------------------
WAN_PROTOS = ("dhcp", "static", "pppoe", "qmi", "modemmanager")
WAN_IP_TYPES = ("ipv4", "ipv6", "ipv4v6")
WAN_AUTHS = ("none", "pap", "chap", "both")


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


@dataclass(frozen=True)
class Wan:
    """An uplink router's internet interface section, which mwanctl owns while this block exists.
    The attributes are the `uplinks[].wan` keys (topology/fields.py WAN); ``password`` and ``pin``
    are derived from the ``*_env``/``*_file`` keys."""

    proto: str                                        # one of WAN_PROTOS
    device: str                                       # netdev / /dev/cdc-wdm* (qmi) / sysfs path (modemmanager)
    interface: str = "wan"
    address: Optional[ipaddress.IPv4Interface] = None  # static (netmask already applied)
    netmask: Optional[ipaddress.IPv4Address] = None
    gateway: Optional[ipaddress.IPv4Address] = None
    dns: tuple[str, ...] = ()
    peerdns: Optional[bool] = None
    username: Optional[str] = None
    password_env: Optional[str] = None
    password_file: Optional[str] = None
    ac: Optional[str] = None
    service: Optional[str] = None
    apn: Optional[str] = None
    pin_env: Optional[str] = None
    pin_file: Optional[str] = None
    auth: Optional[str] = None                        # one of WAN_AUTHS
    ip_type: Optional[str] = None                     # one of WAN_IP_TYPES
    mtu: Optional[int] = None                         # None: the protocol's default (compile/wan.py)
    metric: Optional[int] = None
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


@dataclass(frozen=True)
class Hooks:
    """The user's commands for one state change each (top-level ``hooks``: every uplink and
    own WAN, on the mother). See compile/hooks.py."""

    online: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.online or self.offline)


@dataclass(frozen=True)
class UplinkHooks:
    """An uplink's hooks: ``online``/``offline`` on the mother (its tunnel in mwan3),
    ``wan_online``/``wan_offline`` on the uplink router (netifd's ifup/ifdown of ``wan_interface``)."""

    online: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()
    wan_online: tuple[str, ...] = ()
    wan_offline: tuple[str, ...] = ()
    wan_interface: str = "wan"

    @property
    def mother(self) -> Hooks:
        return Hooks(self.online, self.offline)

    @property
    def router(self) -> Hooks:
        return Hooks(self.wan_online, self.wan_offline)


@dataclass(frozen=True)
class Dns:
    """The mother's upstream resolvers and the policy their failover policies follow (see
    compile/dns.py)."""

    servers: tuple[str, ...]
    policy: str
    loc: Optional[Location] = field(default=None, compare=False)


@dataclass(frozen=True)
class Uplink:
    name: str
    host: str                 # how the mother reaches it; also the WireGuard endpoint by default
    endpoint: str
    weight: int
    tier: int
    ipv6: bool
    tracking: Tracking
    tunnel: TunnelSettings
    mother_zone: str          # firewall zone on the uplink router that the mother arrives from
    wan_zone: str             # firewall zone of the uplink router's own internet connection
    description: str
    hooks: UplinkHooks = field(default_factory=UplinkHooks)
    loc: Optional[Location] = field(default=None, compare=False)
    wan: Optional[Wan] = None  # its own WAN section, when mwanctl sets it up (`uplinks[].wan`)

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
    """One of the mother's own internet connections, balanced beside the tunnels."""

    name: str                 # existing netifd interface on the mother (e.g. `wan`)
    weight: int
    tier: int
    family: str               # ipv4 | ipv6
    metric: Optional[int]     # set `network.<name>.metric` if given (mwan3 needs distinct metrics)
    tracking: Tracking
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def iface(self) -> str:
        return self.name


@dataclass(frozen=True)
class Mother:
    name: str
    host: str
    lan_network: str
    lan_zone: str
    lan_subnet: Optional[IPv4Net]
    wans: tuple[MotherWan, ...]


@dataclass(frozen=True)
class PolicyMember:
    target: str               # uplink name or mother WAN name
    tier: int                 # mwan3 member metric: lower tiers are used first
    weight: int


@dataclass(frozen=True)
class Policy:
    name: str
    members: tuple[PolicyMember, ...]
    last_resort: str          # unreachable | blackhole | default
    loc: Optional[Location] = field(default=None, compare=False)

    @property
    def section(self) -> str:
        return PREFIX + self.name


@dataclass(frozen=True)
class Rule:
    name: str
    policy: str               # a policy name, or the built-ins default/unreachable/blackhole
    proto: Optional[str] = None
    src_ip: Optional[str] = None
    dest_ip: Optional[str] = None
    src_port: Optional[str] = None
    dest_port: Optional[str] = None
    sticky: bool = False
    timeout: Optional[int] = None
    family: Optional[str] = None
    ipset: Optional[str] = None
    src_iface: Optional[str] = None
    logging: bool = False
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
    """How mwanctl reaches one router; separate from what the router should become."""

    transport: str = "ssh"            # ssh | ubus | local
    host: Optional[str] = None        # default: the router's `host`
    port: Optional[int] = None
    user: str = "root"
    key: Optional[str] = None
    password_env: Optional[str] = None
    password_file: Optional[str] = None
    known_hosts: Optional[str] = None
    jump: Optional[str] = None        # name of another router to tunnel SSH through
    ubus_url: Optional[str] = None
    tls_fingerprint: Optional[str] = None
    ca_file: Optional[str] = None
    connect_timeout: float = 10.0
    confirm_timeout: int = 90


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
