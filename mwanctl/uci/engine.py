"""libuci's editing semantics on the shared model, so every consumer edits like a router does.

The parser, ``apply_ops`` and the ``uci`` stand-in all change packages through :class:`Store`;
each method mirrors one libuci function (``list.c``: ``uci_set``, ``uci_add_list``, ``uci_delete``,
...), including its quirks (an empty value deletes, ``reorder`` clamps, a retype to a type of another
length names an anonymous section), and records the libuci delta it would save.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from mwanctl.errors import UciError
from mwanctl.uci.model import UciPackage, UciSection, Value
from mwanctl.uci.quote import uci_quote, valid_name, valid_text, valid_type


class Code(enum.IntEnum):
    """libuci error numbers (``uci.h``); the CLI prints ``MESSAGES[code]``."""

    MEM = 1
    INVAL = 2
    NOTFOUND = 3
    IO = 4
    PARSE = 5
    DUPLICATE = 6
    UNKNOWN = 7


MESSAGES = {
    Code.MEM: "Out of memory",
    Code.INVAL: "Invalid argument",
    Code.NOTFOUND: "Entry not found",
    Code.IO: "I/O error",
    Code.PARSE: "Parse error",
    Code.DUPLICATE: "Duplicate entry",
    Code.UNKNOWN: "Unknown error",
}


class UciOpError(UciError):
    """An operation libuci would refuse; ``code`` says which libuci error it would raise."""

    def __init__(self, code: Code):
        self.code = code
        super().__init__(MESSAGES[code])


class Cmd(enum.Enum):
    """Delta commands with their delta-file prefix (``delta.c uci_command_char``)."""

    ADD = "+"
    REMOVE = "-"
    CHANGE = ""
    RENAME = "@"
    REORDER = "^"
    LIST_ADD = "|"
    LIST_DEL = "~"


@dataclass(frozen=True)
class Delta:
    """One staged change as libuci keeps it in ``/tmp/.uci/<package>``."""

    cmd: Cmd
    section: str
    option: str | None = None
    value: str | None = None

    def file_line(self, package: str) -> str:
        """The line ``uci_save`` appends to the delta file."""
        head = f"{self.cmd.value}{package}.{self.section}"
        if self.option is not None:
            head += f".{self.option}"
        if self.cmd is Cmd.REMOVE and self.value is None:
            return head + "\n"
        return head + "=" + uci_quote(self.value or "") + "\n"

    def changes_line(self, package: str) -> str:
        """The line ``uci changes`` prints (rename and reorder look like a set)."""
        prefix = "-" if self.cmd is Cmd.REMOVE else ""
        out = f"{prefix}{package}.{self.section}"
        if self.option is not None:
            out += f".{self.option}"
        if self.cmd is not Cmd.REMOVE:
            op = {Cmd.LIST_ADD: "+=", Cmd.LIST_DEL: "-="}.get(self.cmd, "=")
            out += op + uci_quote(self.value or "")
        return out + "\n"


def djb_hash(text: str) -> int:
    """libuci's ``djbhash`` over one string, from its initial value."""
    h = 5381
    for b in text.encode("utf-8", "surrogateescape"):
        if b >= 128:  # C ``char`` is signed on the x86 hosts the vectors were recorded on
            b -= 256
        h = (h * 33 + b) & 0xFFFFFFFF
    return h & 0x7FFFFFFF


def anon_id(counter: int, type_: str) -> str:
    """The ``cfgXXXXXX`` name libuci gives a new anonymous section (``uci_fixup_section``)."""
    return f"cfg{counter:02x}{djb_hash(type_) % (1 << 16):04x}"


_INT = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def c_scan_int(text: str) -> int | None:
    """``sscanf(text, "%d")``: the leading integer, or None when there is none."""
    m = _INT.match(text)
    return int(m.group(1)) if m else None


def c_strtoul_int(text: str) -> int:
    """``(int) strtoul(text, NULL, 10)``: what ``uci reorder`` passes on as a position."""
    n = c_scan_int(text) or 0
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= (1 << 31) else n


@dataclass
class Ptr:
    """A parsed ``pkg[.sec[.opt]][=value]`` tuple and what looking it up found (``uci_ptr``)."""

    package: str
    section: str | None = None
    option: str | None = None
    value: str | None = None
    extended: bool = False
    s: UciSection | None = None
    complete: bool = False

    def found(self) -> UciSection | None:
        """The section the lookup found (None: the tuple names the package); a tuple that names
        nothing is libuci's ``UCI_ERR_NOTFOUND``."""
        if not self.complete:
            raise UciOpError(Code.NOTFOUND)
        return self.s


def parse_ptr(text: str) -> Ptr:
    """``uci_parse_ptr``: split a tuple; raises ``Code.PARSE`` like libuci."""
    value: str | None = None
    if "=" in text:
        text, value = text.split("=", 1)
    parts = text.split(".")
    if len(parts) > 3 or not valid_type(parts[0]):  # libuci lets a package be any printable word
        raise UciOpError(Code.PARSE)
    ptr = Ptr(package=parts[0], value=value)
    if len(parts) > 1:
        ptr.section = parts[1]
        ptr.extended = not valid_name(parts[1])
    if len(parts) > 2:
        ptr.option = parts[2]
        if not valid_name(parts[2]):
            raise UciOpError(Code.PARSE)
    if value is not None and not valid_text(value):
        raise UciOpError(Code.PARSE)
    return ptr


def _list_change(ptr: Ptr) -> tuple[UciSection, str]:
    """The section and the value a list change needs: without either libuci says UCI_ERR_INVAL."""
    if ptr.s is None or ptr.value is None:
        raise UciOpError(Code.INVAL)
    return ptr.s, ptr.value


def _strtol_full(text: str) -> int | None:
    if text == "":
        return 0
    m = _INT.fullmatch(text)
    return int(m.group(1)) if m else None


@dataclass
class Store:
    """A package being edited the libuci way.

    ``counter`` is libuci's ``n_section`` (sections ever allocated: it names anonymous sections);
    ``deltas`` collects the changes made with ``record=True`` (what ``uci_save`` would write);
    ``saved`` the changes replayed from delta files (what ``uci changes`` shows).
    """

    pkg: UciPackage
    counter: int = 0
    deltas: list[Delta] = field(default_factory=list)
    saved: list[Delta] = field(default_factory=list)

    @classmethod
    def empty(cls, name: str) -> Store:
        return cls(UciPackage(name))

    # -- lookup -------------------------------------------------------------------------------

    def find(self, ref: str) -> UciSection | None:
        """First section whose libuci name (name or cfg id) is ``ref``."""
        for s in self.pkg.sections:
            if s.ref == ref:
                return s
        return None

    def find_ext(self, ref: str) -> UciSection | None:
        """``uci_lookup_ext_section``: ``@type[idx]`` / ``@[idx]``; bad syntax is ``INVAL``."""
        if not ref.startswith("@") or "[" not in ref or not ref.endswith("]"):
            raise UciOpError(Code.INVAL)
        name, _, rest = ref[1:].partition("[")
        idx = _strtol_full(rest[:-1])
        if idx is None or "]" in rest[:-1] or (name and not valid_type(name)):
            raise UciOpError(Code.INVAL)
        cands = [s for s in self.pkg.sections if not name or s.type == name]
        if idx < 0:
            idx += len(cands)
        return cands[idx] if 0 <= idx < len(cands) else None

    def lookup(self, ptr: Ptr, extended: bool = True) -> Ptr:
        """``uci_lookup_ptr`` after the package is loaded: fill ``s`` and ``complete``."""
        ptr.s, ptr.complete = None, False
        if ptr.section is None:
            ptr.complete = True
            return ptr
        if ptr.extended:
            if not extended:
                raise UciOpError(Code.INVAL)
            s = self.find_ext(ptr.section)
            if s is not None:
                ptr.section = s.ref
        else:
            s = self.find(ptr.section)
        if s is None:
            return ptr
        ptr.s = s
        if ptr.option is not None and ptr.option not in s.options:
            return ptr
        ptr.complete = True
        return ptr

    # -- edits (each mirrors one libuci function) ---------------------------------------------

    def _record(self, record: bool, cmd: Cmd, section: str, option: str | None, value: str | None) -> None:
        if record:
            self.deltas.append(Delta(cmd, section, option, value))

    def add_section(self, type_: str, record: bool = True) -> UciSection:
        """``uci_add_section``: a new anonymous section at the end."""
        self.counter += 1
        s = UciSection(type_, None, {}, anon_id(self.counter, type_))
        self.pkg.sections.append(s)
        self._record(record, Cmd.ADD, s.ref, None, type_)
        return s

    def new_named(self, name: str, type_: str, after: UciSection | None = None) -> UciSection:
        """``uci_alloc_section`` with a name (counts towards the anonymous-id counter)."""
        self.counter += 1
        s = UciSection(type_, name or None, {}, None if name else anon_id(self.counter, type_))
        if after is None:
            self.pkg.sections.append(s)
        else:
            self.pkg.sections.insert(self.pkg.sections.index(after) + 1, s)
        return s

    def set(self, ptr: Ptr, record: bool = True) -> None:
        """``uci_set``: create/update an option or a section; an empty value deletes."""
        value = ptr.value
        if value is None or not (ptr.s is not None or (ptr.option is None and ptr.section is not None)):
            raise UciOpError(Code.INVAL)
        if ptr.option is None and value and not valid_type(value):
            raise UciOpError(Code.INVAL)
        s = ptr.s
        if value == "":
            if ptr.complete:
                self.delete(ptr, record)
            return
        if ptr.option is not None:
            if s is None:  # an option of a section that is not there (refused above already)
                raise UciOpError(Code.INVAL)
            old = s.options.get(ptr.option)
            if old == value:
                return
            s.options[ptr.option] = value  # new options append, existing keep their place
        elif s is None:
            ptr.s = self.new_named(ptr.section or "", value)
        else:
            if s.type == value:
                return
            if len(s.type) != len(value) and s.name is None:
                s.name, s.anon_id = s.anon_id, None  # libuci re-allocates it as a named section
            s.type = value
        self._record(record, Cmd.CHANGE, ptr.section or "", ptr.option, value)

    def delete(self, ptr: Ptr, record: bool = True) -> None:
        """``uci_delete``: a section, an option, or (``=N``) one list element."""
        s = ptr.found()
        if s is None:
            raise UciOpError(Code.INVAL)
        cur = s.options.get(ptr.option) if ptr.option is not None else None
        if isinstance(cur, tuple) and ptr.value:
            index = c_scan_int(ptr.value)
            if index is None:
                return
            if 0 <= index < len(cur):
                self._record(record, Cmd.REMOVE, ptr.section or "", ptr.option, ptr.value)
                s.options[ptr.option or ""] = cur[:index] + cur[index + 1:]
            return
        self._record(record, Cmd.REMOVE, ptr.section or "", ptr.option, None)
        if ptr.option is not None:
            del s.options[ptr.option]
        else:
            self.pkg.sections.remove(s)
            ptr.s = None

    def add_list(self, ptr: Ptr, record: bool = True) -> None:
        """``uci_add_list``: append; a plain option becomes a list holding its old value first."""
        s, value = _list_change(ptr)
        if ptr.option is None:  # libuci adds a nameless list nobody can see; only the delta stays
            self._record(record, Cmd.LIST_ADD, ptr.section or "", None, value)
            return
        cur = s.options.get(ptr.option)
        if cur is None:
            s.options[ptr.option] = (value,)
        elif isinstance(cur, str):
            s.options[ptr.option] = (cur, value)
        else:
            s.options[ptr.option] = cur + (value,)
        self._record(record, Cmd.LIST_ADD, ptr.section or "", ptr.option, value)

    def del_list(self, ptr: Ptr, record: bool = True) -> None:
        """``uci_del_list``: drop every element equal to the value (the option may become empty)."""
        s, value = _list_change(ptr)
        cur = s.options.get(ptr.option) if ptr.option is not None else None
        if not isinstance(cur, tuple):
            return
        self._record(record, Cmd.LIST_DEL, ptr.section or "", ptr.option, value)
        s.options[ptr.option or ""] = tuple(v for v in cur if v != value)

    def rename(self, ptr: Ptr, record: bool = True) -> None:
        """``uci_rename``: rename a section (it stops being anonymous) or an option in place."""
        s = ptr.found()
        if s is None or ptr.value is None:
            raise UciOpError(Code.INVAL)
        self._record(record, Cmd.RENAME, ptr.section or "", ptr.option, ptr.value)
        if ptr.option is None:
            s.name, s.anon_id = ptr.value, None
            return
        items = [(ptr.value if k == ptr.option else k, v) for k, v in s.options.items()
                 if k != ptr.value or k == ptr.option]
        s.options = dict(items)

    def reorder(self, s: UciSection, pos: int, record: bool = True) -> None:
        """``uci_reorder_section``: move to index ``pos`` (clamped); no delta if nothing moved."""
        secs = self.pkg.sections
        old = secs.index(s)
        secs.pop(old)
        new = min(max(pos, 0), len(secs))
        secs.insert(new, s)
        if new != old:
            self._record(record, Cmd.REORDER, s.ref, None, str(pos))

    # -- delta replay ---------------------------------------------------------------------------

    def replay(self, d: Delta) -> None:
        """Apply one delta-file entry without recording it (``uci_parse_delta_line``)."""
        ptr = Ptr(self.pkg.name, d.section, d.option, d.value)
        self.lookup(ptr)
        if d.cmd is Cmd.REORDER:
            if ptr.s is None or not ptr.complete:
                raise UciOpError(Code.NOTFOUND)
            self.reorder(ptr.s, c_strtoul_int(d.value or ""), record=False)
            return
        self._edit(_REPLAYED_AS.get(d.cmd, "set"), ptr, record=False)
        if d.cmd is Cmd.ADD and d.option is None and ptr.s is not None and ptr.s.name is not None:
            ptr.s.anon_id, ptr.s.name = ptr.s.name, None

    def command(self, cmd: str, ptr: Ptr) -> None:
        """Run one section command of the CLI (``set``, ``delete``, ...) on a looked-up ``ptr``."""
        if cmd == "reorder":
            if ptr.s is None or ptr.value is None:
                raise UciOpError(Code.NOTFOUND)
            self.reorder(ptr.s, c_strtoul_int(ptr.value))
            return
        self._edit(cmd, ptr, record=True)

    def _edit(self, name: str, ptr: Ptr, record: bool) -> None:
        """The edit named as the CLI names it, on a looked-up ``ptr``; another name is a ValueError."""
        edits = {"set": self.set, "add_list": self.add_list, "del_list": self.del_list,
                 "rename": self.rename, "delete": self.delete}
        if name not in edits:
            raise ValueError(name)
        edits[name](ptr, record)


# what a delta-file command replays as (every other command is a ``set``)
_REPLAYED_AS = {Cmd.RENAME: "rename", Cmd.REMOVE: "delete", Cmd.LIST_ADD: "add_list", Cmd.LIST_DEL: "del_list"}


def option_values(v: Value) -> tuple[str, ...]:
    """A value as a tuple of elements (a plain option is one element)."""
    return (v,) if isinstance(v, str) else v
