"""The field table (mwanctl/topology/fields.py, from the declarations in model.py) drives reading,
rendering and the README.

Each field is declared once, on its model attribute (topology/model.py). Each test here would
fail if what mwanctl does with the field drifted from that declaration: the README tables are
regenerated and compared, every declared range is what the loader enforces, every declared UCI
option reaches the built-in blueprints, the blocks keep declaration order, and the mwan3
interface options are exactly the ones mwan3 reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import pytest

from mwanctl.compile import compile_site
from mwanctl.compile.templates import Templates
from mwanctl.errors import TopologyError
from mwanctl.keys import KeyPair, TunnelKeys
from mwanctl.topology import fields
from mwanctl.topology.declare import Field, Int, mwan3
from mwanctl.topology.load import diagnose_text
from mwanctl.topology.reader import NOT_ALLOWED, OUT_OF_RANGE, REQUIRED
from mwanctl.topology.readme import MARK, block_table, render_readme, table

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).parent
TOPO = "site: t\nmother: {host: 192.168.1.1}\nuplinks:\n  - {name: dsl, host: 192.168.1.2}\n"
KEYS = {"dsl": TunnelKeys(0, KeyPair("cHJpdmF0ZS1tb3RoZXItMDAwMDAwMDAwMDAwMDAwMDA=", "pub-mother", "2026-01-01T00:00:00Z"),
                          KeyPair("cHJpdmF0ZS11cGxpbmstMDAwMDAwMDAwMDAwMDAwMDA=", "pub-uplink", "2026-01-01T00:00:00Z"))}
# where a block's mapping sits in a topology, to put one key into it
PLACES = {
    "tracking": ("tracking", lambda body: TOPO + f"tracking: {{{body}}}\n"),
    "tunnels": ("tunnels", lambda body: TOPO + f"tunnels: {{{body}}}\n"),
    "uplinks[].tunnel": ("uplinks.dsl.tunnel",
                         lambda body: TOPO.replace("host: 192.168.1.2}", f"host: 192.168.1.2, tunnel: {{{body}}}}}")),
    "uplinks[]": ("uplinks.dsl", lambda body: TOPO.replace("host: 192.168.1.2}", f"host: 192.168.1.2, {body}}}")),
    "mother.wans[]": ("mother.wans.wan", lambda body: TOPO.replace(
        "mother: {host: 192.168.1.1}", f"mother: {{host: 192.168.1.1, wans: [{{name: wan, {body}}}]}}")),
    "access.<router>": ("access.defaults", lambda body: TOPO + f"access: {{defaults: {{{body}}}}}\n"),
    "rules[]": ("rules.r", lambda body: TOPO + f"rules: [{{name: r, policy: balanced, sticky: true, {body}}}]\n"),
    "policies[].members[]": ("policies.p.members[0]",
                             lambda body: TOPO + f"policies: [{{name: p, members: [{{uplink: dsl, {body}}}]}}]\n"),
    "policies[]": ("policies.p", lambda body: TOPO + f"policies: [{{name: p, members: [dsl], {body}}}]\n"),
}


def test_readme_field_tables_are_generated_from_the_declarations() -> None:
    text = (ROOT / "README.md").read_text()
    assert render_readme(text) == text, "run: python -m mwanctl.topology.readme README.md"
    shown = {m.group(1).partition(":")[0] for m in MARK.finditer(text)}
    assert shown == {b.path for b in fields.BLOCKS}, "every block has its table in the README"


def test_a_table_changes_when_a_declaration_does() -> None:
    before = table("tracking")
    f = fields.TRACKING.field("size")
    assert "| `size` | 1–65000 | mwan3's | mother: mwan3 interface `size` |" in before and f.doc in before
    changed = dataclasses.replace(f, kind=fields.Int(1, 9000))
    block = dataclasses.replace(fields.TRACKING, fields=tuple(changed if x is f else x for x in fields.TRACKING.fields))
    assert "| `size` | 1–9000 |" in block_table(block)


def test_blocks_are_built_in_attribute_order() -> None:
    """Declaration order is reading, README and `fields <block>` order: a block lists its model's
    annotated attributes as the dataclass does (one attribute may hold two keys, `uplink`/`wan`)."""
    for b in fields.BLOCKS:
        if b.model is None:
            continue
        order = [f.name for f in dataclasses.fields(b.model)]
        names = [f.name for f in b.fields]
        assert names == sorted(names, key=order.index), b.path


def test_the_declarations_land_on_their_attributes() -> None:
    assert [f.name for f in fields.MEMBER.fields[:2]] == ["target", "target"]
    assert [f.name for f in fields.LAN.fields] == ["lan_network", "lan_zone", "lan_subnet"]
    assert fields.MOTHER.keys == ("host", "name", "lan", "wans")
    assert fields.TRACKING.field("failure_interval").name == "failure_interval"
    assert "tracker" not in {f.name for f in fields.TRACKING.fields}      # derived: no Field
    # a default is written once: the Field's, or else the attribute's
    assert fields.WAN.field("interface").default == "wan" and fields.WAN.field("proto").default is REQUIRED
    assert fields.RULE.field("sticky").default is False and fields.RULE.field("proto").default is None


def test_every_block_has_each_key_once() -> None:
    for b in fields.BLOCKS:
        assert len(set(b.keys)) == len(b.keys), b.path


@dataclasses.dataclass(frozen=True)
class _Probe:
    a: Annotated[int, Field("a", Int(1, 5), "a doc", uci=mwan3("a_opt"))]
    b: Annotated[str, Field("b", Int(1, 5), "b doc", block="probe.inner")] = "x"


def test_one_annotation_is_a_field_everywhere() -> None:
    """What adding an option takes: the annotated attribute alone gives the table row, the
    option a `fields` line expands to and its value for a converter."""
    outer, inner = fields.model_blocks(_Probe, "probe", "probe.inner")
    assert "| `a` | 1–5 |  | mother: mwan3 interface `a_opt` | a doc |" in block_table(outer)
    assert [u.option for _, u in fields.targets(outer, "mwan3", "interface")] == ["a_opt"]
    assert fields.placeholders(outer, _Probe(3), "mother") == {"a_opt": 3}
    assert inner.field("b").default == "x" and inner.keys == ("b",)


def test_a_declaration_that_says_a_thing_twice_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class TwoDefaults:
        a: Annotated[int, Field("a", Int(1, 5), "doc", default=2)] = 2

    @dataclasses.dataclass(frozen=True)
    class TwoKeys:
        a: Annotated[int, Field("a", Int(1, 5), "doc")]
        b: Annotated[int, Field("a", Int(1, 5), "doc")]

    with pytest.raises(TypeError, match="write it once"):
        fields.model_block(TwoDefaults, "x")
    with pytest.raises(TypeError, match="key 'a' twice"):
        fields.model_block(TwoKeys, "x")
    with pytest.raises(TypeError, match="block 'probe.inner' is not one of"):
        fields.model_block(_Probe, "probe")


def _mwan3_interface_options() -> dict[str, str]:
    lines = (HERE / "facts" / "mwan3" / "interface-options.txt").read_text().splitlines()
    return dict(line.split(None, 1) for line in lines if line and not line.startswith("#"))


def test_every_mwan3_interface_option_is_declared_and_no_other() -> None:
    """Each option mwan3 reads from an `interface` section (recorded from openwrt/packages) is a
    declared field or written by the blueprint itself (`enabled`); nothing else is declared for
    those sections, so a misspelt option fails here rather than being ignored on the router."""
    mwan3_reads = set(_mwan3_interface_options())
    declared = fields.declared_options("mwan3", "interface")
    blueprint = {line.name for blk in Templates()._t["mwan3-interface"].blocks for line in blk.lines
                 if line.literal is not None}
    assert blueprint == {"enabled"}
    assert mwan3_reads - declared == blueprint
    assert declared <= mwan3_reads


def _int_fields() -> list[tuple[fields.Block, fields.Field]]:
    return [(b, f) for b in fields.BLOCKS if b.path in PLACES for f in b.fields if isinstance(f.kind, fields.Int)]


@pytest.mark.parametrize("block,f", _int_fields(), ids=lambda x: getattr(x, "path", getattr(x, "key", "")))
def test_the_loader_enforces_every_declared_range(block: fields.Block, f: fields.Field) -> None:
    assert isinstance(f.kind, fields.Int)
    path, put = PLACES[block.path]
    extra = ", probe_interval_ms: 50" if f.key == "window_ms" else ""   # keep the MW006 check quiet
    topo, diags = diagnose_text(put(f"{f.key}: {f.kind.lo}{extra}"))
    assert not [d for d in diags if d.field == f"{path}.{f.key}"], [str(d) for d in diags]
    # a member's `tier: 0`/`weight: 0` reads as "the uplink's own" (the default the loader passes)
    lows = () if block is fields.MEMBER else (f.kind.lo - 1,)
    for bad in (*lows, f.kind.hi + 1):
        topo, diags = diagnose_text(put(f"{f.key}: {bad}"))
        hits = [d for d in diags if d.field == f"{path}.{f.key}"]
        assert hits and hits[0].rule == OUT_OF_RANGE and f"{f.kind.lo}..{f.kind.hi}" in hits[0].message


def _choice_fields() -> list[tuple[fields.Block, fields.Field]]:
    return [(b, f) for b in fields.BLOCKS if b.path in PLACES for f in b.fields
            if isinstance(f.kind, fields.OneOf) and f.key != "transport"]


@pytest.mark.parametrize("block,f", _choice_fields(), ids=lambda x: getattr(x, "path", getattr(x, "key", "")))
def test_the_loader_offers_every_declared_choice(block: fields.Block, f: fields.Field) -> None:
    assert isinstance(f.kind, fields.OneOf)
    path, put = PLACES[block.path]
    for good in f.kind.choices:
        topo, diags = diagnose_text(put(f"{f.key}: {good}"))
        assert not [d for d in diags if d.field == f"{path}.{f.key}"], [str(d) for d in diags]
    topo, diags = diagnose_text(put(f"{f.key}: zzz"))
    hits = [d for d in diags if d.field == f"{path}.{f.key}"]
    assert hits and hits[0].rule == NOT_ALLOWED and all(c in hits[0].message for c in f.kind.choices)


def test_every_declared_uci_option_is_in_a_builtin_blueprint() -> None:
    tpls = Templates()._t
    for b in fields.BLOCKS:
        for f in b.fields:
            for u in f.uci:
                if not u.blueprint:
                    continue     # written by a converter in code (tracker.py, compile/__init__.py)
                found = [t for name, t in tpls.items() if t.package == u.package
                         and ("-uplink" in name) == (u.router == "uplink")
                         for blk in t.blocks if fields.same_type(u.type, blk.type)
                         for line in blk.lines if line.name == u.option and line.var == u.placeholder]
                assert found, f"{b.path}.{f.key} -> {u.package} {u.type} {u.option} ({u.router})"


def test_the_profile_numbers_are_the_fields_documented_as_set_by_the_profile() -> None:
    from mwanctl.tracking import PROFILES
    by_profile = {f.key for f in fields.TRACKING.fields if f.shown_default == "profile"}
    assert all(set(numbers) == by_profile for numbers in PROFILES.values())


def test_tracker_options_come_from_the_table() -> None:
    topo, _ = diagnose_text(TOPO + "tracking: {profile: instant, window_ms: 900, probe_interval_ms: 300}\n")
    assert topo is not None
    sec = compile_site(topo, KEYS).routers["mother"].sections["mwanctl"][1]
    assert (sec.options["interval"], sec.options["window"], sec.options["stable"]) == ("0.3", "0.9", "1")


def test_a_blueprint_written_before_the_table_renders_the_same(tmp_path: Path) -> None:
    """An override directory copied from the explicit, option-by-option blueprints of earlier
    versions keeps working and gives exactly what the `fields` line gives."""
    topo, _ = diagnose_text(TOPO + "tracking: {check_quality: true, failure_loss: 20, flush_conntrack: [ifdown],"
                            " size: 100, max_ttl: 9, keep_failure_interval: true}\n")
    assert topo is not None
    new = compile_site(topo, KEYS).routers["mother"].sections["mwan3"]
    old = compile_site(topo, KEYS, Templates(HERE / "data" / "blueprints-before-table")).routers["mother"].sections["mwan3"]
    assert [(s.type, s.name, list(s.options.items())) for s in new] == \
        [(s.type, s.name, list(s.options.items())) for s in old]
    iface = new[0].options
    assert iface["failure_loss"] == "20" and iface["flush_conntrack"] == ("ifdown",) and iface["max_ttl"] == "9"


def test_fields_line_naming_no_block_is_refused_with_location(tmp_path: Path) -> None:
    d = tmp_path / "tpl"
    d.mkdir()
    (d / "mwan3-interface.uci").write_text("config interface ${iface}\n\toption enabled '1'\n\tfields trackin\n")
    with pytest.raises(TopologyError) as exc:
        Templates(d)
    assert "mwan3-interface.uci:3:1" in str(exc.value) and "no field block `trackin`" in str(exc.value)
