"""The UCI section names the compiler generates, and the clashes among them (rule MW010).

Validation asks the compiler itself which names it would write (rather than re-deriving them),
so a new converter or a user's template override is covered too: two sections of one name in
one package are refused by `uci` ("section of different type overwrites prior section") or,
worse, merged silently into one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from mwanctl.compile.context import Context, Origin
from mwanctl.compile.templates import Templates
from mwanctl.errors import Diagnostic
from mwanctl.keys import KeyPair, TunnelKeys
from mwanctl.topology.model import Topology
from mwanctl.topology.rules import SECTIONS
from mwanctl.uci.model import UciSection

_NO_KEY = KeyPair("", "", "")
_DEFAULT_TEMPLATES: Optional[Templates] = None


@dataclass(frozen=True)
class Generated:
    router: str
    package: str
    name: str
    type: str
    origin: Optional[Origin]


def generated(t: Topology, templates: Optional[Templates] = None) -> list[Generated]:
    """Every named section the compiler would write for ``t``, with the object behind it.

    Names do not depend on keys or pool slots, so placeholders stand in for them."""
    from mwanctl.compile import build_sections
    global _DEFAULT_TEMPLATES
    if templates is None:
        _DEFAULT_TEMPLATES = _DEFAULT_TEMPLATES or Templates()
        templates = _DEFAULT_TEMPLATES
    keys = {u.name: TunnelKeys(0, _NO_KEY, _NO_KEY) for u in t.uplinks}
    ctx = Context(t, {u.name: 0 for u in t.uplinks}, keys, templates, {})
    return listing(ctx, build_sections(ctx))


def listing(ctx: Context, routers: dict[str, dict[str, list[UciSection]]]) -> list[Generated]:
    origins = ctx.origins or {}
    return [Generated(router, package, s.name, s.type, origins.get(id(s)))
            for router, packages in routers.items() for package, secs in packages.items()
            for s in secs if s.name is not None]


def section_clashes(items: Iterable[Generated]) -> list[Diagnostic]:
    """One diagnostic at each offender of every name generated twice in a package of a router.

    Two objects of one name at different places are duplicates that MW002 already reports
    (`wans: [wan, wan]`, an uplink defined twice), so they are not repeated here."""
    first: dict[tuple[str, str, str], Generated] = {}
    out: list[Diagnostic] = []
    reported: set[tuple[str, str, str]] = set()
    for g in items:
        k = (g.router, g.package, g.name)
        prev = first.setdefault(k, g)
        if prev is g:
            continue
        a, b = prev.origin, g.origin
        if a is not None and b is not None and a.key == b.key and a.loc != b.loc:
            continue    # one name defined twice (two uplinks `dsl`): MW002 reports that
        if a == b:      # one object made the same section twice (a blueprint override can)
            out.append(Diagnostic(b.loc if b else None, b.field if b else "(generated)",
                                  f"generates the UCI section `{g.name}` twice in {g.package} on {g.router}; "
                                  "check the blueprints in use (--templates)", rule=SECTIONS))
            continue
        pair = (g.name, a.key if a else "", b.key if b else "")   # once per pair, not per package
        if pair in reported:
            continue
        reported.add(pair)
        where = f"in {g.package} on {g.router}"
        for me, other in ((b, a), (a, b)):
            if me is None or me.loc is None:
                continue
            them = other.what if other is not None else "another section"
            at = f" ({other.loc})" if other is not None and other.loc is not None else ""
            out.append(Diagnostic(
                me.loc, me.field, f"generates the UCI section `{g.name}` {where}, which {them}{at} "
                f"generates too; uci would merge or refuse them: rename one", rule=SECTIONS))
    return out
