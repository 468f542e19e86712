"""How one topology field is declared: its kind, its UCI options, the ``Field`` itself.

A ``Field`` is written once, in the ``Annotated`` type of the model attribute it fills
(topology/model.py), e.g. ``failure_interval: Annotated[int, Field("failure_interval", Int(1, 3600),
"seconds between rounds while failing", uci=mwan3("failure_interval"), shown_default="profile")]``;
topology/fields.py builds each ``Block`` from those attributes in their order. This module imports
no model, so model.py can use it; it knows how a value is read (each kind calls one Reader method)
and where it lands (``Uci``), not which fields exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Optional

from mwanctl.topology.grammar import MAX_TEXT, port_list, short
from mwanctl.topology.reader import REQUIRED as REQUIRED  # re-exported: declarations need it
from mwanctl.topology.reader import Reader
from mwanctl.topology.rules import NOT_ALLOWED, PORTS

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


class _NotGiven:
    """The default of a ``Field`` that names none: the model attribute's dataclass default, else None."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


@dataclass(frozen=True)
class Field:
    """One YAML key. ``default`` is the value when the key is absent (``REQUIRED``: it must be
    given); when the field names none, the attribute's dataclass default is used (a default is
    written once: in the Field or on the attribute, never both). A block read with a ``base``
    (inheritance) takes the base's value instead. ``block`` names the YAML mapping when it is not
    the model's own (`mother.lan` fills attributes of ``Mother``)."""

    key: str
    kind: Kind
    doc: str
    default: Any = NOT_GIVEN
    uci: tuple[Uci, ...] = ()
    attr: str = ""                              # model attribute: set from the attribute it annotates
    what: str = ""                              # README type column; default: the kind's
    shown_default: str = ""                     # README default column; default: the value
    table: str = ""                             # README sub-table of the block ("" = the main one)
    block: str = ""                             # the YAML mapping, when not the model's own

    @cached_property
    def name(self) -> str:
        return self.attr or self.key


def mwan3(option: str, **kw: Any) -> tuple[Uci, ...]:
    """An option of the mother's mwan3 ``interface`` sections (uplinks' tunnels and own WANs)."""
    return (Uci("mwan3", "interface", option, **kw),)


# -- kinds and options several models share -----------------------------------------------------

SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
NAME_RE = re.compile(r"[A-Za-z0-9_]{1,63}")
ZONE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,10}")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NAME_HINT = "use up to 63 letters, digits and `_` (UCI section names allow nothing else)"
ZONE_HINT = "firewall zone names: up to 11 letters, digits or `_`"
ENV_HINT = "use an environment variable name: letters, digits and `_`"
PATH_MAX = 4096
NAME = Text(NAME_RE, NAME_HINT)
ZONE = Text(ZONE_RE, ZONE_HINT)
PATH = Text(max_len=PATH_MAX)
PORT = Int(1, 65535)
TIER = Int(1, 256, " (mwan3 skips members with metric > 256)")
WEIGHT = Int(1, 1000)
KEEPALIVE = Int(0, 65535)
MEMBER_METRIC = Uci("mwan3", "member", "metric", computed=True)
MEMBER_WEIGHT = Uci("mwan3", "member", "weight", computed=True)
