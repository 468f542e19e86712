"""Turn change ops into ``uci batch`` input: the text the SSH transport pipes into ``uci batch``."""

from __future__ import annotations

from mwanctl.uci.changes import Op
from mwanctl.uci.engine import option_values
from mwanctl.uci.quote import uci_quote


def op_lines(op: Op) -> list[str]:
    """The batch lines for one op (at most 2 tokens each; values always single-quoted)."""
    key = f"{op.package}.{op.section}"
    if op.kind == "add_section":
        return [f"set {key}={op.value}"]
    if op.kind == "delete_section":
        return [f"delete {key}"]
    if op.kind == "reorder":
        return [f"reorder {key}={op.value}"]
    key += f".{op.option}"
    if op.kind == "set":
        if not isinstance(op.value, str):
            raise ValueError(f"op set {key}: the value must be one string, not {type(op.value).__name__}")
        return [f"set {key}={uci_quote(op.value)}"]
    if op.kind == "set_list":
        if op.value is None:
            raise ValueError(f"op set_list {key}: no values")
        # `set` first so the `delete` always finds something: `uci batch` then prints no
        # "Entry not found" for a list that does not exist yet, and any stderr line is a real error
        values = option_values(op.value)
        return ([f"set {key}={uci_quote(values[0] or '-')}", f"delete {key}"]
                + [f"add_list {key}={uci_quote(v)}" for v in values])
    if op.kind == "delete_option":
        return [f"delete {key}"]
    raise ValueError(f"unknown op kind {op.kind!r}")


def batch_script(ops: list[Op]) -> str:
    """The ``uci batch`` text for ``ops``, one command per line, without a ``commit``."""
    return "".join(line + "\n" for op in ops for line in op_lines(op))
