"""UCI: the data model, a libuci-faithful parser and writer, and the planner of change ops."""

from __future__ import annotations

from mwanctl.uci.batch import batch_script
from mwanctl.uci.changes import Op, OpKind
from mwanctl.uci.diff import apply_ops, diff
from mwanctl.uci.engine import Code, UciOpError
from mwanctl.uci.model import UciPackage, UciSection, Value
from mwanctl.uci.parse import parse
from mwanctl.uci.quote import (
    uci_quote,
    valid_name,
    valid_package,
    valid_type,
    valid_value,
)
from mwanctl.uci.render import export, file_text, get_text, show

__all__ = [
    "Code",
    "Op",
    "OpKind",
    "UciOpError",
    "UciPackage",
    "UciSection",
    "Value",
    "apply_ops",
    "batch_script",
    "diff",
    "export",
    "file_text",
    "get_text",
    "parse",
    "show",
    "uci_quote",
    "valid_name",
    "valid_package",
    "valid_type",
    "valid_value",
]
