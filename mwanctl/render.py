"""Write compiled sections to disk in `uci export` format (and optionally as `uci batch`)."""

from __future__ import annotations

import os
from pathlib import Path

from mwanctl.compile import Compiled
from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage


def package_text(name: str, sections: list) -> str:
    from mwanctl.uci.render import export
    return export(UciPackage(name, list(sections)))


def creation_ops(package: str, sections: list) -> list[Op]:
    """The ops that create ``sections`` from nothing (what `render --batch` shows)."""
    ops: list[Op] = []
    for s in sections:
        ops.append(Op("add_section", package, s.name, None, s.type))
        for opt, val in s.options.items():
            if isinstance(val, tuple):
                ops.append(Op("set_list", package, s.name, opt, val))
            else:
                ops.append(Op("set", package, s.name, opt, val))
    return ops


def write_private(path: Path, text: str) -> None:
    """Rendered config holds private keys: write it 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_tree(compiled: Compiled, out: Path, batch: bool = False) -> list[Path]:
    from mwanctl.uci.batch import batch_script
    written = []
    for router, cfg in compiled.routers.items():
        ops: list[Op] = []
        for pkg, sections in cfg.sections.items():
            if not sections and pkg == "mwanctl":   # read for removal only; nothing to render
                continue
            path = out / router / "etc" / "config" / pkg
            write_private(path, package_text(pkg, sections))
            written.append(path)
            ops += creation_ops(pkg, sections)
        if batch:
            path = out / router / "uci-batch.txt"
            write_private(path, batch_script(ops))
            written.append(path)
    return written
