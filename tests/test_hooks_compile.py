"""`hooks:`: what validate refuses, what compile writes, what a plan does with the hook script."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mwanctl.compile import hooks, tracker
from mwanctl.plan import plan_router
from mwanctl.site import prepare
from mwanctl.topology import parse_topology
from mwanctl.topology.load import diagnose_text
from mwanctl.transports.base import RouterState
from mwanctl.uci.model import UciPackage
from mwanctl.uci.parse import parse
from mwanctl.uci.render import export

BASE = """site: x
mother: {host: 192.0.2.1}
uplinks:
  - {name: dsl, host: 192.0.2.2}
  - {name: lte, host: 192.0.2.3}
"""
HOOKED = BASE.replace("{name: dsl, host: 192.0.2.2}",
                      "{name: dsl, host: 192.0.2.2, hooks: {wan_online: [\"logger dsl up\"]}}") + \
    "hooks: {online: [\"logger $MWANCTL_UPLINK up\"]}\n"


def _compiled(text: str, tmp_path: Path):
    compiled, _ = prepare(parse_topology(text), tmp_path / "state")
    return compiled


def _empty_state(cfg) -> RouterState:
    return RouterState(packages={p: parse("", p) if p != "mwanctl" else None for p in cfg.packages})


def test_read_from_yaml() -> None:
    t = parse_topology(HOOKED)
    assert t.hooks.online == ("logger $MWANCTL_UPLINK up",) and t.hooks.offline == ()
    assert t.uplinks[0].hooks.wan_online == ("logger dsl up",) and t.uplinks[0].hooks.wan_interface == "wan"
    one = parse_topology(BASE + "hooks: {offline: 'logger down'}\n")      # one string is a list of one
    assert one.hooks.offline == ("logger down",)


@pytest.mark.parametrize("body,field,rule", [
    ("hooks: {onlin: [x]}", "hooks.onlin", "MW101"),
    ("hooks: {online: [\"a\\nb\"]}", "hooks.online[0]", "MW107"),
    ("hooks: {online: {a: 1}}", "hooks.online", "MW103"),
    ("hooks: {online: [x]}\naccess:\n  mother: {transport: ubus}", "access.mother.transport", "MW009"),
])
def test_refused(body: str, field: str, rule: str) -> None:
    _, diags = diagnose_text(BASE + body + "\n")
    errs = [(d.field, d.rule) for d in diags if d.severity == "error"]
    assert (field, rule) in errs, errs


def test_uplink_hooks_refused_over_ubus_and_bad_interface() -> None:
    text = HOOKED + "access:\n  dsl: {transport: ubus}\n"
    _, diags = diagnose_text(text)
    assert [(d.field, d.rule) for d in diags if d.severity == "error"] == [("access.dsl.transport", "MW009")]
    _, diags = diagnose_text(BASE.replace("{name: lte, host: 192.0.2.3}",
                                          "{name: lte, host: 192.0.2.3, hooks: {wan_interface: 'w an'}}"))
    assert any(d.field == "uplinks.lte.hooks.wan_interface" and d.rule == "MW105" for d in diags)


def test_long_commands_are_fine() -> None:
    cmd = "curl -d '" + "x" * 3000 + "' https://example.invalid/"
    assert parse_topology(BASE + f"hooks: {{online: [\"{cmd}\"]}}\n").hooks.online == (cmd,)


def test_compiled_files_and_sections(tmp_path: Path) -> None:
    c = _compiled(HOOKED, tmp_path)
    m, dsl, lte = c.routers["mother"], c.routers["dsl"], c.routers["lte"]
    assert set(m.files) == {hooks.HOOK_FILE} and set(dsl.files) == {hooks.HOOK_FILE} and not lte.files
    assert "mw_hook_exec 'logger $MWANCTL_UPLINK up'" in m.files[hooks.HOOK_FILE]
    assert "MW_HOOK_MODE=mwan3" in m.files[hooks.HOOK_FILE]
    assert "MW_HOOK_MODE=netifd" in dsl.files[hooks.HOOK_FILE]
    assert [s.name for s in m.sections["mwanctl"]] == ["mw_hooks"]
    assert m.sections["mwanctl"][0].options == {"files": hooks.digest(m.files[hooks.HOOK_FILE])}
    assert lte.sections["mwanctl"] == [] and "mwanctl" in lte.packages   # read, so a removal is seen
    for cfg in (m, dsl):
        r = subprocess.run(["busybox", "sh", "-n"], input=cfg.files[hooks.HOOK_FILE], capture_output=True, text=True,
                           check=False)
        assert r.returncode == 0, r.stderr


def test_plan_installs_then_removes(tmp_path: Path) -> None:
    c = _compiled(HOOKED, tmp_path)
    m = c.routers["mother"]
    plan = plan_router(m, _empty_state(m))
    assert plan.apply is not None
    assert plan.apply.files == m.files and plan.apply.links == {}
    assert "mwanctl-track" not in plan.apply.reload           # no tracker: nothing to reload for it
    # a changed command: a changed digest, the new script
    c2 = _compiled(HOOKED.replace("up\"]}\n", "up\", \"logger again\"]}\n"), tmp_path)
    m2 = c2.routers["mother"]
    had = RouterState(packages={**{p: parse("", p) for p in m.packages},
                                "mwanctl": parse(export(UciPackage("mwanctl", m.sections["mwanctl"])), "mwanctl")})
    plan2 = plan_router(m2, had, packages_=("mwanctl",))
    assert plan2.apply is not None and plan2.apply.files[hooks.HOOK_FILE] == m2.files[hooks.HOOK_FILE]
    assert "logger again" in plan2.apply.files[hooks.HOOK_FILE]
    # the same hooks again: nothing to do
    assert plan_router(m, had, packages_=("mwanctl",)).apply is None
    # hooks gone: the section and the script go
    m3 = _compiled(BASE, tmp_path).routers["mother"]
    plan3 = plan_router(m3, had, packages_=("mwanctl",))
    assert plan3.apply is not None and hooks.HOOK_FILE in plan3.apply.remove and not plan3.apply.files


def test_hooks_change_does_not_restart_the_tracker(tmp_path: Path) -> None:
    instant = "tracking: {profile: instant, targets: [198.51.100.1]}\n"
    before = _compiled(BASE + instant, tmp_path).routers["mother"]
    after = _compiled(BASE + instant + "hooks: {offline: [\"logger gone\"]}\n", tmp_path).routers["mother"]
    state = RouterState(packages={**{p: parse("", p) for p in before.packages},
                                  "mwanctl": parse(export(UciPackage("mwanctl", before.sections["mwanctl"])), "mwanctl")})
    plan = plan_router(after, state, packages_=("mwanctl",))
    assert plan.apply is not None
    assert [op.section for op in plan.packages["mwanctl"].ops] == ["mw_hooks"] * len(plan.packages["mwanctl"].ops)
    assert "mwanctl-track" not in plan.apply.reload
    assert hooks.HOOK_FILE in plan.apply.files and tracker.SCRIPT in plan.apply.files   # still installed
    assert tracker.LINK in plan.apply.links
