"""Load the UCI blueprints in ``uci_templates/`` (or a user's override directory) and fill them.

Blueprints only shape *which* options a role gets; values are inserted after tokenising, into
the UCI model, so no value ever passes through text substitution (nothing to inject).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Optional

from mwanctl.compile.schema import known_options, list_options
from mwanctl.errors import Diagnostic, Location, TopologyError
from mwanctl.topology import fields
from mwanctl.topology.rules import TEMPLATE
from mwanctl.uci.model import UciSection

PLACEHOLDER = re.compile(r"\$\{([a-z0-9_]+)\}")
WHOLE = re.compile(r"^\$\{([a-z0-9_]+)\}$")


@dataclass(frozen=True)
class Line:
    kind: str          # "option" | "list"
    name: str
    literal: Optional[str]
    var: Optional[str]
    lineno: int


@dataclass(frozen=True)
class Block:
    type: str
    name: str
    lines: tuple[Line, ...]
    lineno: int


@dataclass(frozen=True)
class Template:
    file: str
    package: str
    blocks: tuple[Block, ...]

    def render(self, values: Mapping[str, Any]) -> list[UciSection]:
        return [_render_block(self, b, values) for b in self.blocks]


def _fail(file: str, lineno: int, msg: str) -> TopologyError:
    return TopologyError([Diagnostic(Location(file, lineno, 1), "template", msg, rule=TEMPLATE)])


def parse_template(text: str, file: str) -> Template:
    package = Path(file).name.split("-", 1)[0]
    blocks: list[Block] = []
    cur: Optional[tuple[str, str, int, list[Line]]] = None
    for n, raw in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise _fail(file, n, f"cannot read this line ({exc})") from exc
        if not words:
            continue
        if words[0] == "config" and len(words) == 3:
            if cur:
                blocks.append(Block(cur[0], cur[1], tuple(cur[3]), cur[2]))
            cur = (words[1], words[2], n, [])
        elif words[0] in ("option", "list") and len(words) == 3 and cur is not None:
            m = WHOLE.match(words[2]) if "'" not in raw.split(None, 2)[2][:1] else None
            cur[3].append(Line(words[0], words[1], None if m else words[2], m.group(1) if m else None, n))
        elif words[0] == "fields" and len(words) == 2 and cur is not None:
            cur[3].extend(_field_lines(file, n, package, cur[0], words[1], cur[3]))
        else:
            raise _fail(file, n, "expected `config <type> <name>`, `option <name> <value>`, "
                        "`list <name> <value>` (values: 'literal' or ${placeholder}) or `fields <block>`")
    if cur:
        blocks.append(Block(cur[0], cur[1], tuple(cur[3]), cur[2]))
    tpl = Template(file, package, tuple(blocks))
    _check_names(tpl)
    return tpl


def _field_lines(file: str, lineno: int, package: str, section_type: str, name: str,
                 written: list[Line]) -> list[Line]:
    """`fields <block>`: one line per option the fields of a block (declared in topology/model.py) give
    this package and section type, on the router the blueprint is for, in declaration order;
    options the section already wrote above the line are left out."""
    try:
        block = fields.block(name)
    except KeyError:
        known = ", ".join(b.path for b in fields.BLOCKS)
        raise _fail(file, lineno, f"no field block `{name}`; known: {known}") from None
    router = "uplink" if "-uplink" in Path(file).name else "mother"
    out: dict[tuple[str, str], Line] = {}
    done = {line.name for line in written}
    for _, u in fields.targets(block, package, PLACEHOLDER.sub("x", section_type), router):
        if u.option in done:
            continue
        kind = "list" if u.is_list else "option"
        out.setdefault((u.option, u.placeholder), Line(kind, u.option, None, u.placeholder, lineno))
    return list(out.values())


def _check_names(tpl: Template) -> None:
    """A misspelt option is silently ignored on a router: refuse it here instead."""
    for b in tpl.blocks:
        type_ = PLACEHOLDER.sub("x", b.type)
        known = known_options(tpl.package, type_)
        if known is None:
            raise _fail(tpl.file, b.lineno, f"mwanctl does not know section type `{b.type}` in {tpl.package}")
        for line in b.lines:
            if line.name not in known:
                import difflib
                close = difflib.get_close_matches(line.name, sorted(known), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                raise _fail(tpl.file, line.lineno,
                            f"`{line.name}` is not an option OpenWrt reads in {tpl.package} `{type_}` "
                            f"sections{hint}")
            if line.kind == "option" and line.name in list_options(tpl.package, type_):
                raise _fail(tpl.file, line.lineno, f"`{line.name}` is a list on OpenWrt; write `list {line.name}`")


def _subst(text: str, values: Mapping[str, Any], tpl: Template, lineno: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in values or values[m.group(1)] is None:
            raise _fail(tpl.file, lineno, f"placeholder ${{{m.group(1)}}} has no value here")
        return str(values[m.group(1)])
    return PLACEHOLDER.sub(one, text)


def _as_text(v: Any) -> Optional[str]:
    if v is None or v == "" or v is False:
        return None if v is not False else "0"
    if v is True:
        return "1"
    return str(v)


def _render_block(tpl: Template, b: Block, values: Mapping[str, Any]) -> UciSection:
    sec = UciSection(_subst(b.type, values, tpl, b.lineno), _subst(b.name, values, tpl, b.lineno))
    for line in b.lines:
        if line.var is None:
            val: Any = line.literal
        else:
            if line.var not in values:
                raise _fail(tpl.file, line.lineno, f"unknown placeholder ${{{line.var}}}; see uci_templates/README.md")
            val = values[line.var]
        if line.kind == "list":
            items = tuple(x for x in (_as_text(v) for v in (val if isinstance(val, (list, tuple)) else [val])) if x)
            if items:
                prev = sec.options.get(line.name, ())
                sec.options[line.name] = tuple(prev) + items
        else:
            if val is False and line.var is not None:
                continue  # a false flag is the default: leave it out
            text = _as_text(val)
            if text is not None:
                sec.options[line.name] = text
    return sec


class Templates:
    """The built-in blueprints, each optionally replaced by a file of the same name in ``override``."""

    NAMES = ("network-mother-tunnel", "network-mother-tunnel6", "network-uplink-tunnel",
             "network-uplink-wan", "mwan3-interface", "mwan3-member", "mwan3-policy", "mwan3-rule",
             "firewall-mother", "firewall-uplink")

    def __init__(self, override: Optional[Path] = None):
        self._t: dict[str, Template] = {}
        for name in self.NAMES:
            fname = name + ".uci"
            if override is not None and (override / fname).is_file():
                self._t[name] = parse_template((override / fname).read_text(), str(override / fname))
            else:
                text = resources.files("mwanctl.uci_templates").joinpath(fname).read_text()
                self._t[name] = parse_template(text, f"uci_templates/{fname}")

    def render(self, name: str, **values: Any) -> list[UciSection]:
        return self._t[name].render(values)
