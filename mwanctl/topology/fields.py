"""The field table: one declaration per topology field, from YAML key to UCI option.

Every field of topology.yaml is one ``Field`` in one ``Block`` below. A declaration says what
the YAML key is called, its type and range (``Int``, ``Text``, ``OneOf``, ...), its default, the
model attribute it fills, where it lands on the routers (``Uci``: package, section type, option,
option or list, mother or uplink) and its line in the README. From it follow:

* reading and checking: ``read_block`` calls the Reader with exactly that kind, range and
  default (diagnostics keep their file:line:col, hint and rule id);
* rendering: ``placeholders``/``options`` give a converter the values of a block's UCI options,
  and a blueprint line ``fields <block>`` (uci_templates/) expands to one ``option``/``list``
  line per declared option of that section, in declaration order;
* the option names compile/schema.py accepts in blueprints (``declared_options``);
* the README's field tables (topology/readme.py; ``python -m mwanctl.topology.readme README.md``
  rewrites them, tests/test_fields.py fails when they differ).

To add a field to a block, add one ``Field`` to its tuple (and the typed attribute to the
model dataclass named by ``Block.model``: tests/test_fields.py fails when the two drift).
To add a block (e.g. ``uplinks[].wan``): declare ``NEW = Block("uplinks[].wan", (...), model=...)``,
list it in ``BLOCKS``, read it in topology/load.py with ``read_block(r, node, path, NEW)`` and
build the model object from the returned mapping; a converter renders it with
``placeholders(NEW, obj, router)`` into a blueprint that has a ``fields uplinks[].wan`` line
(or with ``options(NEW, obj, package, type)`` into sections it builds itself); a README table
appears where ``<!-- fields uplinks[].wan -->`` ... ``<!-- /fields -->`` is written.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from mwanctl.topology.grammar import MAX_TEXT, network_text, port_list, short
from mwanctl.topology.model import (
    BUILTIN_POLICIES, PREFIX, WAN_AUTHS, WAN_IP_TYPES, WAN_PROTOS, Access, Dns, Hooks, Mother, MotherWan,
    Policy, PolicyMember, Rule, Tracking, TunnelSettings, Uplink, UplinkHooks, Wan,
)
from mwanctl.topology.reader import REQUIRED, Reader
from mwanctl.topology.rules import NOT_ALLOWED, PORTS
from mwanctl.topology.source import YamlMap
from mwanctl.tracking import DEFAULT_PROFILE, DEFAULT_TARGETS, DEFAULT_TARGETS6, PROFILES

# -- kinds: how a value is read and checked (each maps onto one Reader method) ------------------


@dataclass(frozen=True)
class Int:
    """A whole number in lo..hi; ``why`` is appended to the out-of-range message."""

    lo: int
    hi: int
    why: str = ""

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.integer(node, key, path, default, self.lo, self.hi, self.why)

    def describe(self) -> str:
        return f"{self.lo}–{self.hi}"


@dataclass(frozen=True)
class Text:
    """One printable line of text, optionally matching ``pattern`` (``hint`` says how)."""

    pattern: Optional[re.Pattern[str]] = None
    hint: str = ""
    max_len: int = MAX_TEXT

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.string(node, key, path, default, pattern=self.pattern, hint=self.hint, max_len=self.max_len)

    def describe(self) -> str:
        return f"`{self.pattern.pattern}`" if self.pattern is not None else "text"


@dataclass(frozen=True)
class Flag:
    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.boolean(node, key, path, default)

    def describe(self) -> str:
        return "bool"


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.choice(node, key, path, self.choices, default)

    def describe(self) -> str:
        return " / ".join(f"`{c}`" for c in self.choices)


@dataclass(frozen=True)
class Texts:
    """A list of strings (a single string reads as a one-element list), each one line of at most
    ``max_len`` characters."""

    max_len: int = MAX_TEXT

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.strings(node, key, path, default, max_len=self.max_len)

    def describe(self) -> str:
        return "list"


@dataclass(frozen=True)
class AnyOf:
    """A list whose every element is one of ``choices`` (``what`` names one in the message)."""

    choices: tuple[str, ...]
    what: str

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        values = r.strings(node, key, path, default)
        bad = [v for v in values if v not in self.choices]
        if bad:
            r.error(r.src.value(node, key), f"{path}.{key}",
                    f"{short(bad[0])} is not {self.what}; use any of {', '.join(self.choices)}", NOT_ALLOWED)
            return tuple(v for v in values if v in self.choices)
        return values

    def describe(self) -> str:
        return "list of " + ", ".join(f"`{c}`" for c in self.choices)


@dataclass(frozen=True)
class Parsed:
    """Text converted by ``parse`` (an IP network, ...); its ValueError becomes the message."""

    parse: Callable[[str], Any]
    what: str                                   # "an IPv4 network such as 10.254.0.0/16"

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.parsed(node, key, path, self.parse, self.what, default)

    def describe(self) -> str:
        return self.what.split(" such as ")[0].removeprefix("an ").removeprefix("a ")


@dataclass(frozen=True)
class Host:
    """An IP address or a DNS host name (topology/grammar.py decides which)."""

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        return r.host(node, key, path, default)

    def describe(self) -> str:
        return "IP or host name"


@dataclass(frozen=True)
class Ports:
    """An iptables multiport list (`443`, `1000:2000`, `80,443`; `a-b` is read as `a:b`)."""

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        text = r.string(node, key, path, default, max_len=200)
        if text is None:
            return None
        value, problem = port_list(text)
        if value is None:
            r.error(r.src.value(node, key), f"{path}.{key}", problem, PORTS)
        return value

    def describe(self) -> str:
        return "port list"


@dataclass(frozen=True)
class Nested:
    """A mapping or list read as its own block (or by hand) in topology/load.py."""

    shape: str                                  # "mapping" | "list"

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        raise TypeError(f"{path}.{key} is a nested {self.shape}: topology/load.py reads it")

    def describe(self) -> str:
        return self.shape


@dataclass(frozen=True)
class MaybeFlag:
    """true/false, or left out (None: the router's own default applies, nothing is written)."""

    def read(self, r: Reader, node: Any, key: str, path: str, default: Any) -> Any:
        if node is None or key not in node or node[key] is None:
            return default
        return r.boolean(node, key, path, False)

    def describe(self) -> str:
        return "bool"


Kind = Int | Text | Flag | OneOf | Texts | AnyOf | Parsed | Host | Ports | Nested | MaybeFlag


# -- where a value lands ------------------------------------------------------------------------


@dataclass(frozen=True)
class Uci:
    """One UCI option a field becomes. ``var`` is the blueprint placeholder (default: the option
    name); ``when`` leaves it out for objects where mwan3 would misread it; ``value`` converts the
    model value (None leaves the option out); ``computed`` documents an option whose value the
    converter derives from this field and others (placeholders() leaves it to the converter)."""

    package: str
    type: str                                   # section type (`wireguard_<iface>` for peers)
    option: str
    router: str = "mother"                      # "mother" | "uplink"
    is_list: bool = False
    var: str = ""
    when: Optional[Callable[[Any], bool]] = None
    value: Optional[Callable[[Any], Any]] = None
    computed: bool = False                      # the converter works the value out (not the field's)
    blueprint: bool = True                      # False: a converter writes it without a blueprint

    @property
    def placeholder(self) -> str:
        return self.var or self.option


@dataclass(frozen=True)
class Field:
    """One YAML key. ``default`` is the value when the key is absent (``REQUIRED``: it must be
    given); a block read with a ``base`` (inheritance) takes the base's value instead."""

    key: str
    kind: Kind
    doc: str
    default: Any = None
    uci: tuple[Uci, ...] = ()
    attr: str = ""                              # model attribute; default: the key
    what: str = ""                              # README type column; default: the kind's
    shown_default: str = ""                     # README default column; default: the value
    table: str = ""                             # README sub-table of the block ("" = the main one)

    @cached_property
    def name(self) -> str:
        return self.attr or self.key


@dataclass(frozen=True)
class Block:
    """The keys of one YAML mapping, in the order they are read, documented and rendered."""

    path: str                                   # as the README names it: `uplinks[].tunnel`
    fields: tuple[Field, ...]
    model: Optional[type] = None                # the dataclass it fills (checked by tests)
    derived: tuple[str, ...] = ()               # model attributes not read from a key
    extra_keys: tuple[str, ...] = ()            # keys read by hand elsewhere (nested blocks)

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields) + self.extra_keys

    def field(self, key: str) -> Field:
        return self._by_key[key]

    @cached_property
    def _by_key(self) -> dict[str, Field]:
        return {f.key: f for f in self.fields}

    def order(self, first: Sequence[str], skip: Iterable[str]) -> tuple[Field, ...]:
        """The fields in reading order: ``first``, then the rest as declared, without ``skip``
        (computed once per call site's arguments: a file with thousands of uplinks asks often)."""
        key = (tuple(first), tuple(skip))
        plan = self._orders.get(key)
        if plan is None:
            plan = tuple(f for f in [self.field(k) for k in key[0]] + [f for f in self.fields if f.key not in key[0]]
                         if f.key not in key[1])
            self._orders[key] = plan
        return plan

    @cached_property
    def _orders(self) -> dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Field, ...]]:
        return {}


# -- reading -----------------------------------------------------------------------------------


def read_block(r: Reader, node: Optional[YamlMap], path: str, block: Block, base: Any = None,
               defaults: Optional[Mapping[str, Any]] = None, first: Sequence[str] = (),
               skip: Iterable[str] = (), check_keys: bool = True,
               nested: Optional[Mapping[str, Callable[[dict[str, Any]], Any]]] = None) -> dict[str, Any]:
    """attr -> value for every field of ``block`` in ``node`` (absent keys get their default).

    Unknown keys are reported first. ``base`` (an object with the same attributes) replaces the
    declared defaults (a uplink's tracking inherits the top-level one); ``defaults`` replaces
    single ones; ``first`` are read before the rest (so messages keep their order); ``skip`` are
    left to the caller (``check_keys=False``: the caller already reported unknown keys). A
    ``defaults`` entry that is callable gets the values read so far (`endpoint` defaults to
    `host`). ``nested`` reads the ``Nested`` fields at their place in the order (given the
    values so far); Nested fields without one are the caller's."""
    if check_keys:
        r.known_keys(node, path, block.keys)
    node = node if node is not None else YamlMap()
    out: dict[str, Any] = {}
    for f in block.order(first, skip):
        if isinstance(f.kind, Nested):
            if nested is not None and f.key in nested:
                out[f.name] = nested[f.key](out)
            continue
        if defaults is not None and f.name in defaults:
            default = defaults[f.name]
            default = default(out) if callable(default) else default
        elif base is not None:
            default = getattr(base, f.name)
        else:
            default = f.default
        out[f.name] = f.kind.read(r, node, f.key, path, default)     # read_field, inlined: it runs per key
    return out


_DECLARED = object()


def read_field(r: Reader, node: Any, path: str, f: Field, default: Any = _DECLARED) -> Any:
    """One field's value in ``node`` (its declared default, or ``default``, when absent or
    wrong; wrong is reported)."""
    return f.kind.read(r, node, f.key, path, f.default if default is _DECLARED else default)


# -- rendering ---------------------------------------------------------------------------------


def targets(block: Block, package: str, type_: str, router: Optional[str] = None) -> Iterator[tuple[Field, Uci]]:
    """(field, its UCI option) of ``block`` landing in sections of this package and type."""
    for f in block.fields:
        for u in f.uci:
            if u.package == package and same_type(u.type, type_) and (router is None or u.router == router):
                yield f, u


def same_type(declared: str, actual: str) -> bool:
    return declared == actual or (declared.startswith("wireguard_") and actual.startswith("wireguard_"))


def _value(f: Field, u: Uci, obj: Any) -> Any:
    if u.when is not None and not u.when(obj):
        return None
    v = getattr(obj, f.name)
    if u.value is not None:
        return u.value(v)
    return list(v) if isinstance(v, tuple) else v


def placeholders(block: Block, obj: Any, router: str, package: Optional[str] = None) -> dict[str, Any]:
    """Blueprint placeholder -> value of every UCI option ``obj`` (a model object of ``block``)
    gives sections on ``router`` (optionally of one package)."""
    return {u.placeholder: _value(f, u, obj) for f in block.fields for u in f.uci
            if u.router == router and (package is None or u.package == package) and not u.computed}


def options(block: Block, obj: Any, package: str, type_: str) -> dict[str, Any]:
    """UCI option -> value, for converters that build sections themselves (no blueprint)."""
    return {u.option: _value(f, u, obj) for f, u in targets(block, package, type_) if not u.computed}


def declared_options(package: str, type_: str) -> set[str]:
    """Every option the table writes into sections of this package and type."""
    return {u.option for b in BLOCKS for _, u in targets(b, package, type_)}


def declared_lists(package: str, type_: str) -> set[str]:
    return {u.option for b in BLOCKS for _, u in targets(b, package, type_) if u.is_list}


def block(path: str) -> Block:
    for b in BLOCKS:
        if b.path == path:
            return b
    raise KeyError(path)


# == the declarations ==========================================================================



def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}"


def _tracker(option: str) -> tuple[Uci, ...]:
    """An option of mwanctl's own tracker (`uplink` sections of /etc/config/mwanctl, compile/tracker.py)."""
    return (Uci("mwanctl", "uplink", option, value=_seconds, blueprint=False),)


def _with_quality(t: Any) -> bool:
    return bool(t.check_quality)


def _with_httping(t: Any) -> bool:
    return bool(t.method == "httping")


def _nonzero(v: int) -> Optional[int]:
    return v or None


def _mwan3(option: str, **kw: Any) -> tuple[Uci, ...]:
    return (Uci("mwan3", "interface", option, **kw),)


def _profile_number(key: str, doc: str) -> Field:
    return Field(key, Int(1, 3600), doc, default=None, uci=_mwan3(key), shown_default="profile")


METHOD_RE = re.compile(r"ping|arping|httping|nslookup|nping-[a-z]+")

TRACKING = Block("tracking", (
    Field("profile", OneOf(tuple(PROFILES)), "sets the numbers marked *profile* (explicit numbers override "
          "it); `instant` is mwanctl's own handover tracker, [below](#sub-second-handover-profile-instant)",
          default=DEFAULT_PROFILE),
    Field("targets", Texts(), "IPv4 addresses probed through the interface (host names only with "
          "`httping`); an IPv6 address here is an error", default=DEFAULT_TARGETS,
          uci=_mwan3("track_ip", is_list=True), what="list of IPv4 addresses"),
    Field("targets6", Texts(), "the IPv6 interfaces' `track_ip` instead of `targets` (the "
          "`mw_<uplink>6` aliases of `ipv6: true` uplinks and `family: ipv6` WANs): IPv6 addresses, an IPv4 one is an "
          "error; an empty list is an error where it is needed: the interface could never fail over",
          default=DEFAULT_TARGETS6, what="list of IPv6 addresses"),
    Field("method", Text(METHOD_RE, "use ping, arping, httping, nslookup or nping-<mode>"),
          "how mwan3track probes", default="ping", uci=_mwan3("track_method"),
          what="`ping`, `arping`, `httping`, `nslookup`, `nping-<mode>`"),
    Field("reliability", Int(1, 64), "targets that must answer per round (at most the number of targets)",
          default=1, uci=_mwan3("reliability")),
    _profile_number("count", "probes per target and round"),
    _profile_number("timeout", "seconds to wait for an answer"),
    _profile_number("interval", "seconds between rounds while online"),
    _profile_number("failure_interval", "seconds between rounds while failing"),
    _profile_number("recovery_interval", "seconds between rounds while recovering"),
    Field("keep_failure_interval", Flag(), "keep `failure_interval` once offline", default=False,
          uci=_mwan3("keep_failure_interval")),
    _profile_number("down", "failed rounds in a row that take the interface offline"),
    _profile_number("up", "good rounds in a row that bring it back"),
    Field("initial_state", OneOf(("online", "offline")), "the state before the first round",
          default="online", uci=_mwan3("initial_state")),
    Field("check_quality", Flag(), "also judge latency and loss (the four options below)", default=False,
          uci=_mwan3("check_quality")),
    Field("failure_latency", Int(1, 100000), "ms; written only with `check_quality`",
          uci=_mwan3("failure_latency", when=_with_quality), shown_default="mwan3's"),
    Field("failure_loss", Int(0, 100), "%; written only with `check_quality`",
          uci=_mwan3("failure_loss", when=_with_quality), shown_default="mwan3's"),
    Field("recovery_latency", Int(1, 100000), "ms; written only with `check_quality`",
          uci=_mwan3("recovery_latency", when=_with_quality), shown_default="mwan3's"),
    Field("recovery_loss", Int(0, 100), "%; written only with `check_quality`",
          uci=_mwan3("recovery_loss", when=_with_quality), shown_default="mwan3's"),
    Field("flush_conntrack", AnyOf(("ifup", "ifdown", "connected", "disconnected"), "an mwan3 event"),
          "events on which mwan3 flushes the connection tracking table", default=(),
          uci=_mwan3("flush_conntrack", is_list=True)),
    Field("httping_ssl", Flag(), "probe over HTTPS; written only with `method: httping`", default=False,
          uci=_mwan3("httping_ssl", when=_with_httping)),
    Field("size", Int(1, 65000), "ping payload size in bytes", uci=_mwan3("size"), shown_default="mwan3's"),
    Field("max_ttl", Int(1, 255), "ping TTL", uci=_mwan3("max_ttl"), shown_default="mwan3's"),
    Field("probe_interval_ms", Int(50, 1000), "between two probes of one target; every IPv4 target is "
          "probed in parallel", default=200, uci=_tracker("interval"),
          table="instant"),
    Field("window_ms", Int(100, 10000), "no target answered for this long: the uplink is down (at least "
          "two probe intervals)", default=600, uci=_tracker("window"),
          table="instant"),
    Field("stable_ms", Int(100, 60000), "answers without such a gap for this long: it is up again "
          "(hysteresis)", default=1000, uci=_tracker("stable"),
          table="instant"),
), model=Tracking, derived=("tracker",))

_PORT = Int(1, 65535)
_MTU = Int(1280, 9000)
_KEEPALIVE = Int(0, 65535)

TUNNEL = Block("uplinks[].tunnel", (
    Field("port", _PORT, "the uplink's WireGuard listen port", shown_default="`tunnels.port`",
          uci=(Uci("network", "interface", "listen_port", router="uplink"),
               Uci("network", "wireguard_<iface>", "endpoint_port"),
               Uci("firewall", "rule", "dest_port", router="uplink", var="listen_port"))),
    Field("mtu", _MTU, "WireGuard MTU; with a `wan:` block at most the WAN's MTU − 80 (MW021), and when "
          "left out derived from it ([below](#wan-mtu-and-the-tunnel-mtu))",
          shown_default="`tunnels.mtu` (lowered to fit `wan`)",
          uci=(Uci("network", "interface", "mtu"), Uci("network", "interface", "mtu", router="uplink"))),
    Field("keepalive", _KEEPALIVE, "seconds between the mother's keepalives (0: none)",
          shown_default="`tunnels.keepalive`",
          uci=(Uci("network", "wireguard_<iface>", "persistent_keepalive", var="keepalive", value=_nonzero),)),
    Field("index", Int(0, 2**20), "the tunnel's slot in the address pool (and in `pool6`, at the same "
          "index); normally allocated once and remembered in the key store", shown_default="allocated"),
    Field("metric", Int(1, 2**31 - 1), "the tunnel's route metric on the mother; every WAN-like interface "
          "needs its own (MW005)", shown_default="`10 × (slot + 1)`",
          uci=(Uci("network", "interface", "metric"),)),
), model=TunnelSettings)

# `tunnels`: the address pools, and the defaults of every tunnel (the same kinds).
def _net4(s: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(s, strict=True)


def _net6(s: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(s, strict=True)


TUNNELS = Block("tunnels", (
    Field("pool", Parsed(_net4, "an IPv4 network such as 10.254.0.0/16"),
          "carved into one `/30` per tunnel: the uplink gets `.1`, the mother `.2`. Slots are allocated "
          "once per uplink and remembered in the key store, so **adding or removing an uplink never "
          "renumbers the others**. Must not touch 0.0.0.0/8, loopback, link-local, multicast or "
          "240.0.0.0/4 (MW012)", default=ipaddress.IPv4Network("10.254.0.0/16")),
    Field("pool6", Parsed(_net6, "an IPv6 network such as fd00:254::/48"),
          "carved into one `/64` per tunnel (`::1` uplink, `::2` mother); inside `2000::/3` or "
          "`fc00::/7`, at most a `/64`, and with a `/64` for every uplink's slot: the usable slots are "
          "those both pools hold (MW004, MW012)", shown_default="none"),
    Field("port", _PORT, "default listen port on the uplinks", default=51820),
    Field("mtu", Int(1280, 9000, " (IPv6 needs 1280; over PPPoE/LTE use 1380-1412)"),
          "default WireGuard MTU", default=1420),
    Field("keepalive", _KEEPALIVE, "default keepalive from the mother", default=25),
))

# -- the routers and the traffic ----------------------------------------------------------------

SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
NAME_RE = re.compile(r"[A-Za-z0-9_]{1,63}")
ZONE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,10}")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NAME_HINT = "use up to 63 letters, digits and `_` (UCI section names allow nothing else)"
ZONE_HINT = "firewall zone names: up to 11 letters, digits or `_`"
PATH_MAX = 4096
_NAME = Text(NAME_RE, NAME_HINT)
_ZONE = Text(ZONE_RE, ZONE_HINT)
_PATH = Text(max_len=PATH_MAX)
_TIER = Int(1, 256, " (mwan3 skips members with metric > 256)")
_WEIGHT = Int(1, 1000)
_MEMBER_METRIC = Uci("mwan3", "member", "metric", computed=True)
_MEMBER_WEIGHT = Uci("mwan3", "member", "weight", computed=True)


def _policy_ref(name: str) -> str:
    """A rule's `use_policy`: mwan3's built-in policies by their name, the topology's as `mw_<name>`."""
    return name if name in BUILTIN_POLICIES else PREFIX + name


def _sticky(rule: Any) -> bool:
    return bool(rule.sticky)


TOP = Block("top", (
    Field("site", Text(SITE_RE, "use up to 32 letters, digits, `-` or `_`, starting with a letter or digit"),
          "names the key store and appears in descriptions", default=REQUIRED),
    Field("mother", Nested("mapping"), "the router running mwan3, see below", default=REQUIRED),
    Field("uplinks", Nested("list"), "the uplink routers, see below", default=REQUIRED),
    Field("tunnels", Nested("mapping"), "the address pools and defaults for every tunnel, see below"),
    Field("tracking", Nested("mapping"), "defaults for every uplink's and own WAN's health check, see below",
          shown_default="profile `balanced`"),
    Field("policies", Nested("list"), "mwan3 policies; `balanced` (all uplinks and own WANs by tier and "
          "weight) exists unless you define your own `balanced`", shown_default="`balanced`"),
    Field("rules", Nested("list"), "traffic rules, matched in order before the catch-all default rule"),
    Field("default_policy", _NAME, "the policy of the catch-all rule (`0.0.0.0/0`, and `::/0` when IPv6 "
          "is on)", default="balanced", what="policy name",
          uci=(Uci("mwan3", "rule", "use_policy", computed=True),)),
    Field("access", Nested("mapping"), "how mwanctl reaches each router — kept apart from what the router "
          "should become", shown_default="SSH as root"),
    Field("hooks", Nested("mapping"), "commands run on the mother when an uplink or own WAN goes online or "
          "offline, see [hooks](#updown-hooks)", shown_default="none"),
    Field("dns", Nested("mapping"), "the mother's upstream DNS servers, kept reachable whichever uplink dies, "
          "see [DNS](#dns-that-survives-an-uplink)", shown_default="none: dnsmasq is left alone"),
), model=None)

MOTHER = Block("mother", (
    Field("host", Host(), "how mwanctl reaches the mother (host names: RFC 1123 labels; a link-local IPv6 "
          "address may carry a zone such as `%eth0`, an interface name of ≤ 15 letters, digits, `_`, `.`, "
          "`-`)", default=REQUIRED),
    Field("name", _NAME, "its name in plans, status and `access`", default="mother",
          what="UCI name (`[A-Za-z0-9_]`, ≤ 63)"),
    Field("lan", Nested("mapping"), "the LAN, below"),
    Field("wans", Nested("list"), "the mother's own internet interfaces, balanced beside the tunnels",
          shown_default="none"),
), model=Mother)

LAN = Block("mother.lan", (
    Field("network", _NAME, "the LAN interface", default="lan", attr="lan_network", what="netifd interface"),
    Field("zone", _ZONE, "the LAN's zone (forwarded into the tunnels)", default="lan", attr="lan_zone",
          what="firewall zone", uci=(Uci("firewall", "forwarding", "src", var="lan_zone"),)),
    Field("subnet", Parsed(lambda s: ipaddress.IPv4Network(s, strict=False), "an IPv4 network such as "
          "192.168.1.0/24"), "when given, the tunnel pool is checked not to overlap it", attr="lan_subnet"),
), model=Mother)

OWN_WAN = Block("mother.wans[]", (
    Field("name", _NAME, "an existing interface such as `wan` (a plain string also works: `wans: [wan]`); "
          "not `globals` (mwan3's own section) and not `mw_…`; the mwan3 interface's name",
          default=REQUIRED, what="netifd interface"),
    Field("weight", _WEIGHT, "share within its tier", default=1, uci=(_MEMBER_WEIGHT,)),
    Field("tier", _TIER, "failover tier: lower tiers are used first", default=1, uci=(_MEMBER_METRIC,)),
    Field("family", OneOf(("ipv4", "ipv6")), "mwan3 tracks one family per interface", default="ipv4",
          uci=(Uci("mwan3", "interface", "family", computed=True),)),
    Field("metric", Int(0, 2**31 - 1), "mwan3 needs a distinct route metric per WAN; while some tunnel's "
          "metric is derived (`10 × (slot + 1)`), a multiple of 10 is refused, as a tunnel may get it (MW005)",
          uci=(Uci("network", "interface", "metric", blueprint=False),)),
    Field("tracking", Nested("mapping"), "see [tracking](#tracking)", shown_default="top-level `tracking`"),
), model=MotherWan)

UPLINK = Block("uplinks[]", (
    Field("name", _NAME, "becomes the interface `mw_<name>` on both ends; mwan3 allows 13 characters for "
          "interface names", default=REQUIRED, what="`[A-Za-z0-9_]`, ≤ 10 chars (≤ 9 with `ipv6`)"),
    Field("host", Host(), "how mwanctl reaches the uplink router, and the WireGuard endpoint",
          default=REQUIRED),
    Field("endpoint", Host(), "where the mother sends the tunnel's UDP, when it differs from `host` (same "
          "grammar as `host`)", shown_default="`host`",
          uci=(Uci("network", "wireguard_<iface>", "endpoint_host"),)),
    Field("weight", _WEIGHT, "share of new flows within its tier", default=1, uci=(_MEMBER_WEIGHT,)),
    Field("tier", _TIER, "failover tier: tier 2 is used only while every tier-1 uplink is down", default=1,
          uci=(_MEMBER_METRIC,)),
    Field("ipv6", Flag(), "carry IPv6 too (needs `tunnels.pool6`); adds an IPv6 alias `mw_<name>6` that mwan3 "
          "balances separately and tracks with `tracking.targets6`", default=False),
    Field("description", Text(), "stored in the peer section byte for byte (quotes, `$(…)`, backticks and "
          "any Unicode are fine; control characters, line separators and lone surrogates are refused)",
          shown_default="`uplink <name>`", what="one line of text, ≤ 255 characters",
          uci=(Uci("network", "wireguard_<iface>", "description"),)),
    Field("mother_zone", _ZONE, "where the mother's WireGuard packets arrive; the WireGuard port is opened "
          "from it", default="lan", what="firewall zone on the uplink",
          uci=(Uci("firewall", "rule", "src", router="uplink", var="mother_zone"),)),
    Field("wan_zone", _ZONE, "the uplink's internet zone; the tunnel zone is forwarded to it (it must "
          "masquerade, as OpenWrt's `wan` zone does)", default="wan", what="firewall zone on the uplink",
          uci=(Uci("firewall", "forwarding", "dest", router="uplink", var="wan_zone"),)),
    Field("tracking", Nested("mapping"), "see [tracking](#tracking)", shown_default="top-level `tracking`"),
    Field("tunnel", Nested("mapping"), "this tunnel's WireGuard settings, [below](#uplinkstunnel)",
          shown_default="`tunnels`"),
    Field("wan", Nested("mapping"), "the uplink router's own internet connection (DHCP, static, PPPoE, QMI, "
          "ModemManager), [below](#uplinkswan-the-uplink-routers-own-internet-connection)",
          shown_default="none: the router's WAN is never touched"),
    Field("hooks", Nested("mapping"), "this uplink's own commands, on the mother and on the uplink router "
          "itself, see [hooks](#updown-hooks)", shown_default="none"),
), model=Uplink)

POLICY = Block("policies[]", (
    Field("name", _NAME, "`[A-Za-z0-9_]`, ≤ 12 characters (becomes `mw_<name>`; mwan3 skips names over 15); "
          "not `default`, `unreachable` or `blackhole`, which are mwan3's own (MW011)", default=REQUIRED,
          what="name"),
    Field("members", Nested("list"), "uplink or own-WAN names, or mappings `{uplink: dsl, tier: 1, weight: 3}` "
          "(below). Never a policy: mwan3 cannot nest policies, so a policy can neither contain itself nor "
          "form a cycle (MW007)", default=REQUIRED,
          uci=(Uci("mwan3", "policy", "use_member", is_list=True, computed=True),)),
    Field("last_resort", OneOf(("unreachable", "blackhole", "default")), "when no member is online: "
          "`unreachable`, `blackhole` or `default` (the main routing table)", default="unreachable",
          uci=(Uci("mwan3", "policy", "last_resort"),)),
), model=Policy)

MEMBER = Block("policies[].members[]", (
    Field("uplink", _NAME, "the uplink (a plain name `- dsl` means the same)", attr="target", what="uplink name",
          uci=(Uci("mwan3", "member", "interface", var="iface", computed=True),)),
    Field("wan", _NAME, "or one of the mother's own WANs", attr="target", what="WAN name"),
    Field("tier", _TIER, "the member's tier in this policy", shown_default="the uplink's", uci=(_MEMBER_METRIC,)),
    Field("weight", _WEIGHT, "its weight in this policy", shown_default="the uplink's", uci=(_MEMBER_WEIGHT,)),
), model=PolicyMember)

_RULE = "mwan3", "rule"
RULE = Block("rules[]", (
    Field("name", _NAME, "`[A-Za-z0-9_]`, ≤ 12 characters (becomes `mw_<name>`)", default=REQUIRED, what="name"),
    Field("proto", Text(re.compile(r"[a-z0-9]{1,16}"), "use a protocol name like tcp, udp, icmp or a number"),
          "`tcp`, `udp`, `icmp`, … (ports need `tcp` or `udp`: mwan3 ignores them otherwise, so mwanctl "
          "refuses it)", uci=(Uci(*_RULE, "proto"),), what="protocol"),
    Field("src_ip", Parsed(network_text, "an IP address or network"), "an address or network (no zone id; "
          "both of one IP version)", uci=(Uci(*_RULE, "src_ip"),)),
    Field("src_port", Ports(), "`443`, `1000:2000` or `80,443` (quote them in YAML): iptables' multiport "
          "syntax, ports 0–65535, ranges low to high, at most 15 ports with a range counting as two (MW013). "
          "A range written `80-443` (fw4's spelling) means the same and is written to mwan3 as `80:443`",
          uci=(Uci(*_RULE, "src_port"),)),
    Field("dest_ip", Parsed(network_text, "an IP address or network"), "like `src_ip`",
          uci=(Uci(*_RULE, "dest_ip"),)),
    Field("dest_port", Ports(), "like `src_port`", uci=(Uci(*_RULE, "dest_port"),)),
    Field("ipset", Text(re.compile(r"[A-Za-z0-9_.-]{1,31}"), "ipset names: up to 31 letters, digits, `_`, "
          "`.` or `-`"), "an existing ipset matched against the destination", uci=(Uci(*_RULE, "ipset"),),
          what="ipset name"),
    Field("src_iface", _NAME, "a netifd interface on the mother the traffic comes in on",
          uci=(Uci(*_RULE, "src_iface"),), what="netifd interface"),
    Field("family", OneOf(("ipv4", "ipv6", "any")), "which IP versions the rule matches",
          uci=(Uci(*_RULE, "family"),), shown_default="mwan3's (`any`)"),
    Field("sticky", Flag(), "keep a source address on the uplink it first used (for sites that log you out "
          "when your address changes)", default=False, uci=(Uci(*_RULE, "sticky"),)),
    Field("timeout", Int(1, 10**6), "seconds a sticky source stays; written only with `sticky`",
          uci=(Uci(*_RULE, "timeout", when=_sticky),), shown_default="mwan3's (600)"),
    Field("logging", Flag(), "log matching packets (needs mwan3's global `logging`)", default=False,
          uci=(Uci(*_RULE, "logging"),)),
    Field("policy", _NAME, "a policy name, or mwan3's `default`, `unreachable`, `blackhole`",
          default=REQUIRED, what="policy name", uci=(Uci(*_RULE, "use_policy", value=_policy_ref),)),
), model=Rule)

ACCESS = Block("access.<router>", (
    Field("transport", OneOf(("ssh", "ubus", "local")), "`ssh`, `ubus` (rpcd JSON-RPC over HTTP(S)) or "
          "`local` (mwanctl runs on the mother itself)", default="ssh"),
    Field("host", Host(), "where to connect", shown_default="the router's `host`"),
    Field("port", Int(1, 65535), "the port to connect to", shown_default="22 (ssh)"),
    Field("user", Text(USER_RE, "use a login name: letters, digits, `_`, `.` or `-`"), "SSH or rpcd user",
          default="root", what="login name"),
    Field("key", _PATH, "SSH private key file", shown_default="SSH agent and default keys", what="path"),
    Field("password_env", Text(ENV_RE, "use an environment variable name: letters, digits and `_`"),
          "an environment variable holding the password (never the command line; otherwise mwanctl "
          "prompts when it runs in a terminal)", what="variable name"),
    Field("password_file", _PATH, "a file holding the password", what="path"),
    Field("known_hosts", _PATH, "host keys are checked; a changed key is refused; a new one is trusted only "
          "with `--accept-new-host-key`", shown_default="`~/.ssh/known_hosts`", what="path"),
    Field("jump", _NAME, "another router to tunnel SSH through (e.g. uplinks reachable only via the mother); "
          "jumps must not go round in a circle (MW009)", what="router name"),
    Field("ubus_url", Text(re.compile(r"https?://\S+"), "use http(s)://<router>/ubus"), "for `ubus`: where "
          "rpcd answers", shown_default="`https://<host>/ubus`", what="URL"),
    Field("tls_fingerprint", Text(re.compile(r"sha256:[0-9A-Fa-f:]{64,95}"), "use sha256:<64 hex digits>"),
          "for `ubus`: pin a self-signed router certificate", what="`sha256:<hex>`"),
    Field("ca_file", _PATH, "for `ubus`: trust this CA file", what="path"),
    Field("connect_timeout", Int(1, 600), "seconds", default=10),
    Field("confirm_timeout", Int(30, 3600, " (under 30 s valid changes get reverted while the network restarts)"),
          "seconds a router waits for confirmation before it restores its old config", default=90),
), model=Access)

# `uplinks[].wan`: the uplink router's own internet interface (optional). The option names are
# those netifd's handlers read (compile/schema.py NETIFD_PROTO_OPTIONS, from ppp.sh, qmi.sh,
# modemmanager.sh, dhcp.sh and netifd's static proto); which fields each proto takes, and the
# rules across fields, are compile/wan.py's (MW020). Secrets are not options here: their values are
# read by mwanctl/wansecrets.py and written to `password`/`pincode` by the blueprint.
ENV_NAME = ENV_RE
ENV_HINT = "use an environment variable name: letters, digits and `_`"
WAN_INTERFACE = re.compile(r"[A-Za-z0-9_]{1,15}")
WAN_TEXT = re.compile(r"[^\s'\\]+")     # one word: ISP user names, AC and service names


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


# qmi.sh's pdptype words (it lowercases; anything else falls back to `ip`); uqmi's --auth-type
# words are `auth`'s own; ModemManager takes a list of allowed methods
QMI_PDPTYPE = {"ipv4": "ip", "ipv6": "ipv6", "ipv4v6": "ipv4v6"}
MM_ALLOWEDAUTH = {"none": ("none",), "pap": ("pap",), "chap": ("chap",), "both": ("pap", "chap")}

WAN = Block("uplinks[].wan", (
    Field("proto", OneOf(WAN_PROTOS), "how the uplink router reaches the internet: netifd's `dhcp` and "
          "`static`, `pppoe` (packages `ppp`, `ppp-mod-pppoe`), `qmi` (`uqmi`) or `modemmanager`",
          default=REQUIRED, uci=(_wan("proto"),), shown_default="required"),
    Field("interface", Text(WAN_INTERFACE, "use a netifd interface name: up to 15 letters, digits or `_`"),
          "the netifd interface section mwanctl then owns (written whole); not `lan`, `loopback` or `mw_…`",
          default="wan", what="netifd interface"),
    Field("device", Text(max_len=PATH_MAX), "`dhcp`/`static`/`pppoe`: the network device (`wan`, `eth1`, "
          "`eth0.7`); `qmi`: the modem's control device (`/dev/cdc-wdm0`); `modemmanager`: the modem's "
          "sysfs path (`/sys/devices/…`, see `mmcli -m 0`)", default=REQUIRED, uci=(_wan("device"),),
          shown_default="required", what="device or path"),
    Field("address", Parsed(_ipv4_interface, "an IPv4 address such as 192.0.2.10/24"),
          "`static`: the address, with its prefix or with `netmask`", what="IPv4 address[/prefix]",
          uci=(_wan("ipaddr", value=_given(lambda a: str(a.ip))),
               _wan("netmask", var="netmask", value=_given(lambda a: str(a.netmask))))),
    Field("netmask", Parsed(_ipv4, "an IPv4 netmask such as 255.255.255.0"),
          "`static`: the netmask, when `address` has no prefix (default /32, as netifd's)", what="IPv4 netmask"),
    Field("gateway", Parsed(_ipv4, "an IPv4 address such as 192.0.2.1"),
          "`static`: the default gateway, inside the address's network", uci=(_wan("gateway", value=_given(str)),),
          what="IPv4 address"),
    Field("dns", Texts(), "DNS servers the router adds to its resolver (any proto)", default=(),
          uci=(_wan("dns", is_list=True),), what="list of IP addresses", shown_default="none"),
    Field("peerdns", MaybeFlag(), "use the DNS servers the ISP hands out (`dhcp`, `pppoe`, `qmi`, "
          "`modemmanager`)", uci=(_wan("peerdns", value=_bool01),), shown_default="netifd's (true)"),
    Field("username", Text(WAN_TEXT, "one word without spaces or quotes"), "`pppoe`/`qmi`/`modemmanager`: "
          "the ISP's or APN's user name", uci=(_wan("username"),), what="text"),
    Field("password_env", Text(ENV_NAME, ENV_HINT), "the password's environment variable (never the "
          "password itself: it is read at `render`/`plan`/`deploy` and shown as `<hidden>`)",
          what="variable name"),
    Field("password_file", Text(max_len=PATH_MAX), "or a file holding it (one trailing newline is "
          "dropped; a relative path is taken from the topology file's directory)", what="path"),
    Field("ac", Text(WAN_TEXT, "one word without spaces or quotes"), "`pppoe`: only this access concentrator",
          uci=(_wan("ac"),), what="text"),
    Field("service", Text(WAN_TEXT, "one word without spaces or quotes"), "`pppoe`: the service name",
          uci=(_wan("service"),), what="text"),
    Field("apn", Text(max_len=100), "`qmi`/`modemmanager`: the access point name (3GPP: labels of letters, "
          "digits and `-` joined by dots)", uci=(_wan("apn"),), what="APN"),
    Field("pin_env", Text(ENV_NAME, ENV_HINT), "`qmi`/`modemmanager`: the SIM PIN's environment variable "
          "(4–8 digits; a secret like the password)", what="variable name"),
    Field("pin_file", Text(max_len=PATH_MAX), "or a file holding the PIN", what="path"),
    Field("auth", OneOf(WAN_AUTHS), "`qmi`/`modemmanager`: the APN's authentication (`both`: PAP or CHAP)",
          uci=(_wan("auth", when=_proto_is("qmi")),
               _wan("allowedauth", is_list=True, when=_proto_is("modemmanager"),
                    value=_given(lambda a: list(MM_ALLOWEDAUTH[a])))),
          shown_default="the modem's"),
    Field("ip_type", OneOf(WAN_IP_TYPES), "`qmi`/`modemmanager`: the bearer's IP family",
          uci=(_wan("pdptype", when=_proto_is("qmi"), value=_given(lambda t: QMI_PDPTYPE[t])),
               _wan("iptype", when=_proto_is("modemmanager"))),
          shown_default="`ipv4` (qmi), the modem's (modemmanager)"),
    Field("mtu", Int(576, 9000), "the WAN's MTU (not `modemmanager`: it applies the bearer's); the tunnel "
          "MTU is derived from it (see [below](#wan-mtu-and-the-tunnel-mtu))", uci=(_wan("mtu"),),
          shown_default="1492 (`pppoe`), 1500"),
    Field("metric", Int(0, 2**31 - 1), "route metric of the WAN's default route on the uplink router",
          uci=(_wan("metric"),), shown_default="netifd's (0)"),
), model=Wan, derived=("password", "pin"))

# -- hooks and DNS (compile/hooks.py, compile/dns.py) -------------------------------------------

COMMAND_MAX = 4096      # one shell command line: a webhook's JSON body needs more than 255
_COMMANDS = Texts(COMMAND_MAX)
_CMD_WHAT = "list of shell commands"
_IFACE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")


def _cmds(key: str, doc: str) -> Field:
    return Field(key, _COMMANDS, doc, default=(), what=_CMD_WHAT, shown_default="none")


HOOKS = Block("hooks", (
    _cmds("online", "run on the mother when any uplink or own WAN becomes online in mwan3 (before the "
          "uplink's own `online` commands)"),
    _cmds("offline", "run on the mother when any uplink or own WAN that was online goes offline"),
), model=Hooks)

UPLINK_HOOKS = Block("uplinks[].hooks", (
    _cmds("online", "run on the mother when this uplink's tunnel becomes online in mwan3 (after the "
          "top-level `hooks.online`)"),
    _cmds("offline", "run on the mother when this uplink's tunnel goes offline in mwan3"),
    _cmds("wan_online", "run on the uplink router when its WAN interface comes up (netifd `ifup`)"),
    _cmds("wan_offline", "run on the uplink router when its WAN interface goes down (netifd `ifdown`)"),
    Field("wan_interface", Text(_IFACE_RE, "use the netifd interface name, up to 15 letters, digits or `_`"),
          "the uplink router's netifd interface that `wan_online`/`wan_offline` watch", default="wan",
          what="netifd interface"),
), model=UplinkHooks)

DNS = Block("dns", (
    Field("servers", Texts(), "the mother's dnsmasq forwards to these only (`noresolv`), every query to all "
          "of them at once (`allservers`); each gets an mwan3 rule and its own failover policy, so each "
          "prefers another uplink (IPv6 addresses need an IPv6 uplink or own WAN)",
          default=("1.1.1.1", "9.9.9.9"), what="list of IP addresses"),
    Field("policy", Text(re.compile(r"[A-Za-z0-9_]{1,63}"), "use a policy name"),
          "the policy whose members and tiers the servers' failover policies are made of",
          shown_default="`default_policy`", what="policy name"),
), model=Dns)

BLOCKS: tuple[Block, ...] = (TOP, MOTHER, LAN, OWN_WAN, UPLINK, TUNNEL, WAN, UPLINK_HOOKS, TUNNELS, TRACKING,
                             POLICY, MEMBER, RULE, ACCESS, HOOKS, DNS)
