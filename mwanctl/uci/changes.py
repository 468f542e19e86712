"""Transport-independent change operations on UCI packages.

A deploy is a list of ``Op`` per package. Transports turn them into what the router speaks:
``uci batch`` lines over SSH, rpcd ``uci add/set/delete/order`` calls over ubus, pyuci calls
locally. Ownership rules guarantee that mwanctl only ever emits ops on *named* sections, so
every op can address its section by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mwanctl.uci.model import Value

OpKind = Literal["add_section", "set", "set_list", "delete_option", "delete_section", "reorder"]


@dataclass(frozen=True)
class Op:
    """One change.

    kind            section  option  value
    add_section     name     None    section type (str)        -> `set pkg.sec=type`
    set             name     opt     str                       -> `set pkg.sec.opt='v'`
    set_list        name     opt     tuple[str, ...] (>=1)     -> `delete pkg.sec.opt` + `add_list` each
    delete_option   name     opt     None                      -> `delete pkg.sec.opt`
    delete_section  name     None    None                      -> `delete pkg.sec`
    reorder         name     None    str(position, 0-based)    -> `reorder pkg.sec=N`
    """

    kind: OpKind
    package: str
    section: str
    option: str | None = None
    value: Value | None = None
