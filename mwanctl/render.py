"""Write compiled sections to disk in `uci export` format (and optionally as `uci batch`)."""

from __future__ import annotations

from pathlib import Path

from mwanctl.compile import Compiled
from mwanctl.privfile import write_private
from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage, UciSection


def package_text(name: str, sections: list[UciSection]) -> str:
    from mwanctl.uci.render import export
    return export(UciPackage(name, list(sections)))


def creation_ops(package: str, sections: list[UciSection]) -> list[Op]:
    """The ops that create ``sections`` from nothing (what `render --batch` shows)."""
    ops: list[Op] = []
    for s in sections:
        ops.append(Op("add_section", package, s.ref, None, s.type))   # compiled sections are named: ref is the name
        for opt, val in s.options.items():
            if isinstance(val, tuple):
                ops.append(Op("set_list", package, s.ref, opt, val))
            else:
                ops.append(Op("set", package, s.ref, opt, val))
    return ops


def write_tree(compiled: Compiled, out: Path, batch: bool = False) -> list[Path]:
    """Every file may hold private keys (network, uci-batch.txt): all go through write_private."""
    from mwanctl.uci.batch import batch_script
    written = []
    for router, cfg in compiled.routers.items():
        ops: list[Op] = []
        for pkg, sections in cfg.sections.items():
            if not sections and pkg in ("mwanctl", "dhcp"):   # read for removal / owned options only
                continue
            path = out / router / "etc" / "config" / pkg
            write_private(path, package_text(pkg, sections))
            written.append(path)
            ops += creation_ops(pkg, sections)
        for file_path, text in cfg.files.items():       # the up/down hook script
            path = out / router / file_path.lstrip("/")
            write_private(path, text)
            written.append(path)
        if batch:
            path = out / router / "uci-batch.txt"
            write_private(path, batch_script(ops))
            written.append(path)
    return written
