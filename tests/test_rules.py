"""Rule ids are real: each is defined once (topology/rules.py), documented once (the README's
"Validation rules" table) and carried by the diagnostics the code makes."""

from __future__ import annotations

import re
from pathlib import Path

from hostile_corpus import corpus

from mwanctl.topology import rules
from mwanctl.topology.load import diagnose_text

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mwanctl"


def _readme_rules() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Validation rules"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"^\| (MW\d{3}) \|", section, re.M)


def test_every_rule_is_documented_once_and_every_documented_rule_exists() -> None:
    documented = _readme_rules()
    assert len(documented) == len(set(documented)), "a rule documented twice"
    assert sorted(documented) == sorted(rules.ALL)


def test_rule_ids_are_spelled_only_in_the_rules_module() -> None:
    """Everything else imports the constant, so a rule's id cannot drift between two places."""
    literal = re.compile(r"[\"']MW\d{3}[\"']")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in PACKAGE.rglob("*.py") if p.name != "rules.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert offenders == []


def test_every_rule_is_reported_by_some_module() -> None:
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "rules.py"}
    for rule_id, name in rules.ALL.items():
        used = [p for p, text in sources.items()
                if re.search(rf"\b(rules\.)?{name}\b", text) and re.search(r"topology(\.rules| import rules)", text)]
        assert used, f"{rule_id} ({name}) is reported nowhere"


def test_every_diagnostic_of_the_corpus_carries_a_documented_rule() -> None:
    """The hostile corpus and tests/invalid: every message ends in a documented id, and every
    rule is seen at least once (each check prints its id)."""
    seen: set[str] = set()
    texts = [c.text for c in corpus() if isinstance(c.text, str)]
    texts += [p.read_text() for p in sorted((ROOT / "tests" / "invalid").glob("*.yaml"))]
    for text in texts:
        _, diags = diagnose_text(text)
        for d in diags:
            assert d.rule in rules.ALL and str(d).endswith(f"[{d.rule}]"), str(d)
            seen.add(d.rule)
    # MW200 is exercised by tests/test_templates.py, MW020-MW023 (uplinks' `wan:`) by tests/test_wan_*.py
    elsewhere = {rules.TEMPLATE, rules.WAN_FIELDS, rules.WAN_MTU, rules.WAN_HANDLER, rules.WAN_SECRET}
    assert set(rules.ALL) - seen <= elsewhere and seen >= set(rules.ALL) - elsewhere
