"""Seeded mutation fuzzing of topology files: what bench/fuzz.py and the CI test share.

Each mutant of an example is validated the way `mwanctl validate` does it. The outcomes:
  refused   errors reported, every one with file:line:col and a rule id;
  accepted  the topology validates; it is then compiled with placeholder keys, rendered as
            `uci export` text and as a `uci batch` script, and the export is parsed back with
            the UCI parser: every value must survive byte for byte (nothing injected, nothing
            lost) and be valid for libuci;
  internal  anything else: an exception, an error without location or rule id, a value that
            does not survive. The fuzz must find none.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mwanctl.compile import compile_site
from mwanctl.errors import TopologyError
from mwanctl.keys import KeyPair, TunnelKeys
from mwanctl.render import creation_ops, package_text
from mwanctl.topology.load import diagnose_text
from mwanctl.uci.batch import batch_script
from mwanctl.uci.parse import parse
from mwanctl.uci.quote import valid_value

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "topologies").glob("*.yaml"))
LOCATED = re.compile(r"^[^:]+:\d+:\d+: .* \[MW\d{3}\]$")

HOSTILE = ["$(reboot)", "`halt`", "'", '"', "\\", "\n", "\0", "\x01", "\x7f", "\u2028", "\ud800", "é", "🙂",
           "; reboot", "|", "&", "%eth0", "::", "0x10", "007", "-1", "99999", "80-443", "2000:1000",
           "1.1.1.1", "fe80::1%eth0", "::/0", "0.0.0.0/0", "127.0.0.0/8", "mw_x", "default", "globals",
           "a_peer", "x6", "a_m1_w1", "default_v4", "", " ", "yes", "~", "null", "true", "1e3", ".inf"]
YAML_BITS = ["{", "}", "[", "]", ":", ",", "- ", "#", "&a ", "*a", "!!int ", "!!set ", "? ", "<<: ", "|", ">",
             "'", '"', "\t", "\n", "  ", "%", "@", "`", "!"]
KEY = KeyPair("mother-private", "mother-public", "2024-01-01T00:00:00Z")


@dataclass
class Tally:
    refused: int = 0
    accepted: int = 0
    internal: int = 0
    examples: list[str] = field(default_factory=list)   # the first few internal errors, for the report

    @property
    def total(self) -> int:
        return self.refused + self.accepted + self.internal


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _value(rng: random.Random) -> Any:
    pick = rng.randrange(10)
    if pick == 0:
        return rng.choice([0, -1, 1, 2 ** 31, 2 ** 64, 65536, 99999, 10 ** 30])
    if pick == 1:
        return rng.choice([True, False, None, 1.5, float("inf")])
    if pick == 2:
        return rng.choice([[], {}, [1, 2], {"a": 1}, ["x"] * 3, [[[]]]])
    if pick == 3:
        return "x" * rng.choice([64, 256, 70000])
    return rng.choice(HOSTILE) if pick < 8 else "".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 4)))


def _dump(tree: Any, flow: bool) -> str:
    from io import StringIO

    from ruamel.yaml import YAML
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = flow
    buf = StringIO()
    y.dump(tree, buf)
    return buf.getvalue()


def tree_mutant(text: str, rng: random.Random) -> str:
    """Change, delete or add one value somewhere in the document, then write it as YAML again."""
    from mwanctl.topology.source import read_source
    src, _ = read_source(text, "x.yaml")
    assert src is not None
    tree = _plain(src.data)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(tree)
        path = rng.choice(paths)
        if not path:
            continue
        parent = tree
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        op = rng.randrange(5)
        if op == 0 and isinstance(parent, dict):
            del parent[last]
        elif op == 1 and isinstance(parent, list):
            parent.insert(last, parent[last])         # duplicate an item (a name twice, ...)
        elif op == 2 and isinstance(parent, dict):
            parent[rng.choice(["name", "x", "host", "ipv6", "tracking", "targets6", "metric", str(last) + "_"])] \
                = _value(rng)
        else:
            parent[last] = _value(rng)
    try:
        return _dump(tree, rng.random() < 0.5)
    except Exception:   # noqa: BLE001 - a value the dumper cannot write (a lone surrogate): text instead
        return text_mutant(text, rng)


def text_mutant(text: str, rng: random.Random) -> str:
    """Damage the YAML text itself: insert, delete or replace characters, lines or tokens."""
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        pos = rng.randrange(len(text) + 1)
        lines = text.split("\n")
        if op == 0:
            text = text[:pos] + rng.choice(YAML_BITS) + text[pos:]
        elif op == 1 and text:
            text = text[:pos] + text[pos + rng.randint(1, 8):]
        elif op == 2:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == 3:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == 4:
            tokens = list(re.finditer(r"[A-Za-z0-9_.:/-]+", text))
            if tokens:
                m = rng.choice(tokens)
                v = rng.choice(HOSTILE)
                text = text[:m.start()] + (repr(v)[1:-1] if rng.random() < 0.5 else v) + text[m.end():]
        else:
            i = rng.randrange(len(lines))
            lines[i] = " " * rng.randint(0, 6) + lines[i].lstrip()
            text = "\n".join(lines)
    return text


def check(text: str) -> str:
    """'refused', 'accepted' or an internal-error description for one mutant."""
    try:
        topo, diags = diagnose_text(text, "m.yaml")
    except Exception as exc:   # noqa: BLE001 - exactly what the fuzz looks for
        return f"validate raised {type(exc).__name__}: {exc}"
    errors = [d for d in diags if d.severity == "error"]
    for d in diags:
        if not LOCATED.match(str(d)):
            return f"diagnostic without location or rule id: {str(d)[:200]}"
    if topo is None:
        return "refused" if errors else "no topology but no error either"
    keys = {u.name: TunnelKeys(i, KEY, KeyPair("up-private", "up-public", KEY.created))
            for i, u in enumerate(topo.uplinks)}
    try:
        compiled = compile_site(topo, keys, _templates())
    except TopologyError as exc:
        if any(not LOCATED.match(str(d)) for d in exc.diagnostics):
            return f"compile refused without location: {exc}"
        return "refused"       # slot-dependent clash found only at compile time, located
    except Exception as exc:   # noqa: BLE001
        return f"compile raised {type(exc).__name__}: {exc}"
    try:
        for cfg in compiled.routers.values():
            for pkg, sections in cfg.sections.items():
                text_out = package_text(pkg, sections)
                batch_script(creation_ops(pkg, sections)).encode("utf-8")
                back = {s.name: s.options for s in parse(text_out, pkg).sections}
                for s in sections:
                    if back.get(s.name) != s.options:
                        return f"{pkg}.{s.name} does not survive export and parse"
                    for v in s.options.values():
                        for item in (v if isinstance(v, tuple) else (v,)):
                            if not valid_value(item) or "\n" in item:
                                return f"{pkg}.{s.name}: value {item!r} is not a safe UCI value"
    except Exception as exc:   # noqa: BLE001
        return f"render raised {type(exc).__name__}: {exc}"
    return "accepted"


_TEMPLATES: list[Any] = []


def _templates() -> Any:
    from mwanctl.compile.templates import Templates
    if not _TEMPLATES:
        _TEMPLATES.append(Templates())
    return _TEMPLATES[0]


def fuzz(per_example: int, seed: int) -> Tally:
    tally = Tally()
    for n, path in enumerate(EXAMPLES):
        base = path.read_text()
        rng = random.Random(f"{seed}:{n}:{path.name}")
        for i in range(per_example):
            mutant = tree_mutant(base, rng) if i % 2 else text_mutant(base, rng)
            outcome = check(mutant)
            if outcome == "refused":
                tally.refused += 1
            elif outcome == "accepted":
                tally.accepted += 1
            else:
                tally.internal += 1
                if len(tally.examples) < 5:
                    tally.examples.append(f"{path.name} #{i}: {outcome}\n---\n{mutant[:2000]}")
    return tally
