"""The field table: the blocks of topology fields, built from their one declaration each.

A field is declared once, as a ``Field`` (topology/declare.py) in the ``Annotated`` type of the
model attribute it fills (topology/model.py): its YAML key, its type and range (``Int``, ``Text``,
``OneOf``, ...), its default, where it lands on the routers (``Uci``: package, section type,
option, option or list, mother or uplink) and its line in the README. Here each YAML mapping
becomes a ``Block``: ``model_blocks`` collects a dataclass's Fields in attribute order, so the
order they are written in is the order they are read, documented and rendered. The two mappings
with no model of their own (the top level and ``tunnels``) are declared here. From a block follow:

* reading and checking: ``read_block`` calls the Reader with exactly that kind, range and
  default (diagnostics keep their file:line:col, hint and rule id);
* rendering: ``placeholders``/``options`` give a converter the values of a block's UCI options,
  and a blueprint line ``fields <block>`` (uci_templates/) expands to one ``option``/``list``
  line per declared option of that section, in declaration order;
* the option names compile/schema.py accepts in blueprints (``declared_options``);
* the README's field tables (topology/readme.py; ``python -m mwanctl.topology.readme README.md``
  rewrites them, tests/test_fields.py fails when they differ).

To add a field, annotate its attribute in the model dataclass with a ``Field``; nothing here
changes. To add a block (e.g. ``uplinks[].wan``): write the dataclass with its annotated
attributes, add ``NEW = model_block(Wan, "uplinks[].wan")`` and list it in ``BLOCKS``, read it in
topology/load.py with ``read_block(r, node, path, NEW)`` and build the model object from the
returned mapping; a converter renders it with ``placeholders(NEW, obj, router)`` into a blueprint
that has a ``fields uplinks[].wan`` line (or with ``options(NEW, obj, package, type)`` into
sections it builds itself); a README table appears where ``<!-- fields uplinks[].wan -->`` ...
``<!-- /fields -->`` is written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from mwanctl.topology import model
from mwanctl.topology.declare import (
    KEEPALIVE,
    NOT_GIVEN,
    PORT,
    REQUIRED,
    SITE_RE,
    Parsed,
    Text,
)
from mwanctl.topology.declare import (  # the kinds are re-exported: tests and tools name them from here
    NAME as NAME,
)
from mwanctl.topology.declare import (
    NAME_HINT as NAME_HINT,
)
from mwanctl.topology.declare import (
    NAME_RE as NAME_RE,
)
from mwanctl.topology.declare import (
    Field as Field,
)
from mwanctl.topology.declare import (
    Int as Int,
)
from mwanctl.topology.declare import (
    Nested as Nested,
)
from mwanctl.topology.declare import (
    OneOf as OneOf,
)
from mwanctl.topology.declare import (
    Uci as Uci,
)
from mwanctl.topology.reader import Reader
from mwanctl.topology.source import YamlMap


@dataclass(frozen=True)
class Block:
    """The keys of one YAML mapping, in the order they are read, documented and rendered."""

    path: str                                   # as the README names it: `uplinks[].tunnel`
    fields: tuple[Field, ...]
    model: Optional[type] = None                # the dataclass whose annotations declared it

    def __post_init__(self) -> None:
        # a Field that names no default and fills no defaulted attribute defaults to None
        object.__setattr__(self, "fields", tuple(
            dataclasses.replace(f, default=None) if f.default is NOT_GIVEN else f for f in self.fields))

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

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


def model_blocks(cls: type, path: str, *more: str) -> tuple[Block, ...]:
    """The blocks the annotated attributes of dataclass ``cls`` declare, in attribute order: a
    ``Field`` belongs to ``path`` unless it names another mapping with ``block=`` (one of
    ``more``). Each Field gets the attribute it annotates as ``attr`` (several Fields on one
    attribute: two keys fill it) and, when it names no default, the attribute's dataclass default.
    Declaring a default both ways, or a key twice in one block, is refused here, at import."""
    hints = typing.get_type_hints(cls, include_extras=True)
    found: dict[str, list[Field]] = {p: [] for p in (path, *more)}
    for attr in dataclasses.fields(cls):
        for f in getattr(hints[attr.name], "__metadata__", ()):
            if not isinstance(f, Field):
                continue
            where = f.block or path
            if where not in found:
                raise TypeError(f"{cls.__name__}.{attr.name}: block {where!r} is not one of {tuple(found)}")
            if f.attr and f.attr != attr.name:
                raise TypeError(f"{cls.__name__}.{attr.name}: its Field says attr={f.attr!r}")
            default = f.default
            if attr.default is not dataclasses.MISSING:
                if default is not NOT_GIVEN:
                    raise TypeError(f"{cls.__name__}.{attr.name}: a default in the Field and on the attribute; "
                                    "write it once")
                default = attr.default
            if any(g.key == f.key for g in found[where]):
                raise TypeError(f"{cls.__name__}.{attr.name}: key {f.key!r} twice in block {where!r}")
            found[where].append(dataclasses.replace(f, attr=attr.name, default=default))
    empty = [p for p, fs in found.items() if not fs]
    if empty:
        raise TypeError(f"{cls.__name__}: no Field declares block {empty[0]!r}")
    return tuple(Block(p, tuple(fs), model=cls) for p, fs in found.items())


def model_block(cls: type, path: str) -> Block:
    """The one block dataclass ``cls`` declares (see ``model_blocks``)."""
    return model_blocks(cls, path)[0]


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


# == the blocks ================================================================================
# Declared on the model attributes (topology/model.py), except the two mappings without a model.

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
    Field("default_policy", NAME, "the policy of the catch-all rule (`0.0.0.0/0`, and `::/0` when IPv6 "
          "is on)", default="balanced", what="policy name",
          uci=(Uci("mwan3", "rule", "use_policy", computed=True),)),
    Field("access", Nested("mapping"), "how mwanctl reaches each router — kept apart from what the router "
          "should become", shown_default="SSH as root"),
    Field("hooks", Nested("mapping"), "commands run on the mother when an uplink or own WAN goes online or "
          "offline, see [hooks](#updown-hooks)", shown_default="none"),
    Field("dns", Nested("mapping"), "the mother's upstream DNS servers, kept reachable whichever uplink dies, "
          "see [DNS](#dns-that-survives-an-uplink)", shown_default="none: dnsmasq is left alone"),
))


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
    Field("port", PORT, "default listen port on the uplinks", default=51820),
    Field("mtu", Int(1280, 9000, " (IPv6 needs 1280; over PPPoE/LTE use 1380-1412)"),
          "default WireGuard MTU", default=1420),
    Field("keepalive", KEEPALIVE, "default keepalive from the mother", default=25),
))


TRACKING = model_block(model.Tracking, "tracking")
TUNNEL = model_block(model.TunnelSettings, "uplinks[].tunnel")
MOTHER, LAN = model_blocks(model.Mother, "mother", "mother.lan")
OWN_WAN = model_block(model.MotherWan, "mother.wans[]")
UPLINK = model_block(model.Uplink, "uplinks[]")
WAN = model_block(model.Wan, "uplinks[].wan")
UPLINK_HOOKS = model_block(model.UplinkHooks, "uplinks[].hooks")
POLICY = model_block(model.Policy, "policies[]")
MEMBER = model_block(model.PolicyMember, "policies[].members[]")
RULE = model_block(model.Rule, "rules[]")
ACCESS = model_block(model.Access, "access.<router>")
HOOKS = model_block(model.Hooks, "hooks")
DNS = model_block(model.Dns, "dns")

BLOCKS: tuple[Block, ...] = (TOP, MOTHER, LAN, OWN_WAN, UPLINK, TUNNEL, WAN, UPLINK_HOOKS, TUNNELS, TRACKING,
                             POLICY, MEMBER, RULE, ACCESS, HOOKS, DNS)
