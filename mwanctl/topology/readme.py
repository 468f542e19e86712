"""The README's field tables, generated from the field declarations (topology/model.py, built
into blocks by topology/fields.py).

``python -m mwanctl.topology.readme README.md`` rewrites every table between
``<!-- fields <block> -->`` and ``<!-- /fields -->`` (``<block>:<sub-table>`` for a block's
second table); ``--check`` only says whether they are current. tests/test_fields.py fails when
the README's tables differ from what the declarations generate.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

from mwanctl.topology.fields import Block, Field, block
from mwanctl.topology.reader import REQUIRED

MARK = re.compile(r"^<!-- fields (\S+) -->\n.*?^<!-- /fields -->\n", re.M | re.S)


def _default_text(f: Field) -> str:
    if f.shown_default:
        return f.shown_default
    d = f.default
    if d is REQUIRED:
        return "required"
    if d is None:
        return ""
    if d == ():
        return "none"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, float):
        return f"`{d:g}`"                 # `connect_timeout: float = 10.0` reads and shows as 10
    if isinstance(d, tuple):
        return "`[" + ", ".join(d) + "]`"
    return f"`{d}`"


def _uci_text(f: Field) -> str:
    where: dict[tuple[str, str, str, bool], list[str]] = {}
    for u in f.uci:
        where.setdefault((u.package, u.type, u.option, u.is_list), []).append(u.router)
    parts = []
    for (package, type_, option, is_list), routers in where.items():
        who = "both" if len(set(routers)) > 1 else routers[0]
        parts.append(f"{who}: {package} {type_} `{option}`" + (" (list)" if is_list else ""))
    return "; ".join(parts) or "—"


def table(block_path: str) -> str:
    """The README table named ``path`` or ``path:sub-table``."""
    path, _, sub = block_path.partition(":")
    return block_table(block(path), sub)


def block_table(b: Block, sub: str = "") -> str:
    """One row per field of ``b`` in the sub-table ``sub``, neighbouring fields that read the
    same merged into one row."""
    rows: list[tuple[list[str], tuple[str, str, str, str]]] = []
    for f in b.fields:
        if f.table != sub:
            continue
        cells = (f.what or f.kind.describe(), _default_text(f), _uci_text(f), f.doc)
        if rows and rows[-1][1] == cells:
            rows[-1][0].append(f.key)
        else:
            rows.append(([f.key], cells))
    out = ["| field | type | default | on the router | meaning |", "| --- | --- | --- | --- | --- |"]
    for keys, cells in rows:
        out.append("| " + ", ".join(f"`{k}`" for k in keys) + " | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def render_readme(text: str) -> str:
    """``text`` with every marked field table regenerated from the declarations."""
    return MARK.sub(lambda m: f"<!-- fields {m.group(1)} -->\n{table(m.group(1))}<!-- /fields -->\n", text)


def main(argv: Sequence[str]) -> int:
    """``python -m mwanctl.topology.readme README.md``: rewrite the field tables in place
    (``--check``: only report whether they are current, exit 1 if not)."""
    args = [a for a in argv if a != "--check"]
    path = Path(args[0] if args else "README.md")
    old = path.read_text()
    new = render_readme(old)
    if "--check" in argv:
        if new != old:
            print(f"{path}: field tables are out of date; run python -m mwanctl.topology.readme {path}")
            return 1
        return 0
    if new != old:
        path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
