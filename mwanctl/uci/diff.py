"""Plan the smallest set of ops that turns a router's package into the wanted one, and predict
exactly what ``uci`` will hold after running them.

Only sections ``owns`` claims are touched. ``apply_ops`` runs the ops' own ``uci batch`` lines
through the libuci-faithful engine, so the prediction includes libuci's quirks (a re-created list
moves to the end of its section, ``reorder`` counts positions after removing the moved section).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from mwanctl.errors import UciParseError
from mwanctl.uci.batch import batch_script
from mwanctl.uci.changes import Op
from mwanctl.uci.engine import Store, UciOpError, parse_ptr
from mwanctl.uci.model import UciPackage, UciSection, Value
from mwanctl.uci.parse import Reader

_SECTION_CMDS = {"set", "add_list", "del_list", "delete", "del", "rename", "reorder"}


def _stored(value: Value) -> bool:
    """Whether libuci keeps this value at all (an empty option or list is never written)."""
    return value != "" and value != ()


def _option_ops(package: str, cur: UciSection, want: UciSection) -> list[Op]:
    """Per-option ops so that ``cur`` ends up with exactly ``want``'s options, in order."""
    name = want.ref
    wanted = {k: v for k, v in want.options.items() if _stored(v)}
    ops = [Op("delete_option", package, name, k) for k in cur.options if k not in wanted]
    kept = [k for k in cur.options if k in wanted]
    # keep the longest prefix of ``wanted`` that already sits in order and can be updated in
    # place (a plain ``set`` keeps its position; a re-created list moves to the end)
    prefix = 0
    for k, v in wanted.items():
        if prefix >= len(kept) or kept[prefix] != k:
            break
        if isinstance(v, tuple) and cur.options[k] != v:
            break
        prefix += 1
    for i, (k, v) in enumerate(wanted.items()):
        old = cur.options.get(k)
        if i < prefix:
            if old != v:
                ops.append(Op("set", package, name, k, v))
            continue
        if isinstance(v, tuple):
            ops.append(Op("set_list", package, name, k, v))
            continue
        if old is not None:
            ops.append(Op("delete_option", package, name, k))
        ops.append(Op("set", package, name, k, v))
    return ops


def _add_ops(package: str, want: UciSection) -> list[Op]:
    ops = [Op("add_section", package, want.ref, None, want.type)]
    for k, v in want.options.items():
        if _stored(v):
            ops.append(Op("set_list" if isinstance(v, tuple) else "set", package, want.ref, k, v))
    return ops


def _section_ops(cur: UciPackage, desired: list[UciSection], package: str,
                 owns: Callable[[UciSection], bool]) -> list[Op]:
    names = {d.name for d in desired}
    ops = [Op("delete_section", package, s.ref) for s in cur.sections
           if owns(s) and (s.name is None or s.name not in names)]
    for want in desired:
        have = cur.get(want.name or "")
        if have is None:
            ops += _add_ops(package, want)
        elif have.type != want.type:
            ops += [Op("delete_section", package, have.ref)] + _add_ops(package, want)
        else:
            ops += _option_ops(package, have, want)
    return ops


def _order_ok(pkg: UciPackage, desired: list[UciSection]) -> bool:
    """Owned sections in the wanted order, each before every foreign section of its type."""
    names = [d.name for d in desired]
    at = {s.name: i for i, s in enumerate(pkg.sections) if s.name in names}
    positions = [at.get(n, -1) for n in names]
    if positions != sorted(positions):
        return False
    for i, s in enumerate(pkg.sections):
        if s.name in names:
            continue
        if any(at.get(d.name, -1) > i for d in desired if d.type == s.type):
            return False
    return True


def _reorder_ops(pkg: UciPackage, desired: list[UciSection], package: str) -> list[Op]:
    """Move the owned sections into one block, in order, before their foreign same-type peers."""
    if _order_ok(pkg, desired):
        return []
    names = {d.name for d in desired}
    types = {d.type for d in desired}
    secs = list(pkg.sections)
    start = next((i for i, s in enumerate(secs) if s.name in names or s.type in types), len(secs))
    ops = []
    for i, want in enumerate(desired):
        s = next((x for x in secs if x.name == want.name), None)
        if s is not None and secs.index(s) != start + i:
            secs.remove(s)
            secs.insert(start + i, s)
            ops.append(Op("reorder", package, want.ref, None, str(start + i)))
    return ops


def diff(current: UciPackage | None, desired: list[UciSection], package: str,
         owns: Callable[[UciSection], bool], keep_order: bool = False) -> list[Op]:
    """Ops that make the owned part of ``current`` equal ``desired`` (named sections only).

    With ``keep_order`` the owned sections also end up in ``desired`` order and ahead of every
    foreign section of the same type (mwan3 evaluates interfaces and rules by file position).
    Diffing a package against its own desired state gives ``[]``.
    """
    cur = current if current is not None else UciPackage(package)
    if any(d.name is None for d in desired):
        raise ValueError("desired sections must be named")
    ops = _section_ops(cur, desired, package, owns)
    if keep_order and desired:
        ops += _reorder_ops(apply_ops(cur, package, ops), desired, package)
    return ops


def run_batch(store: Store, text: str) -> list[Exception]:
    """Run ``uci batch`` lines for ``store``'s package in memory; returns the failures.

    Like ``uci batch``, a failing line changes nothing and does not stop the rest.
    """
    errors: list[Exception] = []
    r = Reader(text)
    while not r.eof:
        argv: list[str] = []
        tok = r.argument(first=True)
        while tok and len(argv) < 4:
            argv.append(tok)
            tok = r.argument(first=False)
        if not argv:
            continue
        try:
            _run_line(store, argv)
        except (UciOpError, UciParseError, ValueError) as exc:
            errors.append(exc)
    return errors


def _run_line(store: Store, argv: list[str]) -> None:
    cmd = argv[0].lower()
    if cmd not in _SECTION_CMDS or len(argv) != 2:
        raise ValueError(f"unsupported batch line: {' '.join(argv)}")
    ptr = parse_ptr(argv[1])
    if ptr.package != store.pkg.name:
        raise ValueError(f"op for another package: {argv[1]}")
    store.lookup(ptr)
    store.command("delete" if cmd == "del" else cmd, ptr)


def apply_ops(pkg: UciPackage | None, package: str, ops: list[Op]) -> UciPackage:
    """What ``uci`` holds after running ``batch_script(ops)`` on ``pkg`` (``pkg`` is not changed)."""
    base = copy.deepcopy(pkg) if pkg is not None else UciPackage(package)
    store = Store(base, counter=len(base.sections))
    run_batch(store, batch_script(ops))
    return store.pkg
