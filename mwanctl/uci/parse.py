"""Read UCI config text exactly as libuci does (``file.c``), including its error positions.

The tokenizer is a port of libuci's in-place line-buffer parser: a statement may span lines
(quotes, backslash continuation), ``;`` separates statements, ``#`` starts a comment, and an
error reports the buffer offset ("byte") and the number of lines read so far ("line"), which is
what ``uci`` prints. The same tokenizer reads ``uci batch`` input and delta files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mwanctl.errors import UciParseError
from mwanctl.uci.engine import Cmd, Code, Delta, Ptr, Store, UciOpError, parse_ptr
from mwanctl.uci.model import UciPackage
from mwanctl.uci.quote import valid_name, valid_package, valid_type

_SPACE = b" \t\n\v\f\r"
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def _to_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _to_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class LineSource:
    """A byte stream read line by line, with C's ``feof`` notion of the end."""

    def __init__(self, data: str | bytes):
        self._lines: Iterator[bytes] = iter(_LINE.findall(_to_bytes(data)))
        self.eof = False

    def readline(self) -> bytes:
        """``fgets``: the next line with its newline; at the end ``b""`` (and ``eof`` is set)."""
        raw = b"" if self.eof else next(self._lines, b"")
        if not raw.endswith(b"\n"):
            self.eof = True
        return raw


class Reader:
    """libuci's parse context: a growing line buffer over a byte stream (``uci_getln`` & co)."""

    def __init__(self, data: str | bytes | LineSource):
        self.src = data if isinstance(data, LineSource) else LineSource(data)
        self.buf = bytearray()
        self.pos = 0
        self.line = 0
        self.filled = 0
        self.reason: str | None = None
        self.byte = 0

    @property
    def eof(self) -> bool:
        return self.src.eof

    # -- buffer primitives ----------------------------------------------------------------------

    def getln(self, offset: int) -> None:
        """Read the next line into the buffer at ``offset`` (``uci_getln``)."""
        del self.buf[offset:]
        raw = self.src.readline().split(b"\0", 1)[0]
        if not raw:
            return
        self.buf += raw
        self.filled = offset + len(raw)
        if raw.endswith(b"\n"):
            self.line += 1

    def char(self, i: int) -> int:
        return self.buf[i] if i < len(self.buf) else 0

    def cur(self) -> int:
        return self.char(self.pos)

    def put(self, i: int, c: int) -> None:
        if i < len(self.buf):
            self.buf[i] = c

    def cstr(self, i: int) -> bytes:
        """The NUL-terminated string starting at ``i``."""
        end = self.buf.find(0, i)
        return bytes(self.buf[i:end if end >= 0 else len(self.buf)])

    def error(self, reason: str) -> UciParseError:
        """``uci_parse_error``: remember where, and build the exception to raise."""
        self.reason, self.byte = reason, self.pos
        return UciParseError(reason, self.line, self.pos)

    # -- tokens -----------------------------------------------------------------------------------

    def skip_ws(self) -> None:
        while self.cur() and self.cur() in _SPACE:
            self.pos += 1

    def _backslash(self) -> bool:
        """Skip a backslash; at end of line fetch the next one and return False (continuation)."""
        self.pos += 1
        c = self.cur()
        if not c or c == 10 or (c == 13 and self.char(self.pos + 1) == 10 and not self.char(self.pos + 2)):
            self.getln(self.pos)
            return False
        return True

    def _addc(self, target: list[int]) -> None:
        self.put(target[0], self.cur())
        target[0] += 1
        self.pos += 1

    def _quoted(self, target: list[int], quote: int) -> None:
        self.pos += 1
        while True:
            c = self.cur()
            if c == quote:
                self.pos += 1
                return
            if c == 0:
                self.getln(self.pos)
                if not self.cur():
                    raise self.error("EOF with unterminated " + chr(quote))
            elif c == 92 and quote == 34:
                if self._backslash():
                    self._addc(target)
            else:
                self._addc(target)

    def _parse_str(self, target: list[int]) -> None:
        go_on = True
        while True:
            c = self.cur()
            if c in (39, 34):
                self._quoted(target, c)
            elif c == 35:  # '#'
                self.put(self.pos, 0)
                break
            elif c == 0:
                break
            elif c == 59:  # ';'
                go_on = False
                break
            elif c == 92 and not self._backslash():
                pass
            else:
                self._addc(target)
            if not self.cur() or self.cur() in _SPACE:
                break
        if self.cur() and go_on:
            self.pos += 1
        self.put(target[0], 0)

    def next_arg(self, required: bool = False, name: bool = False, package: bool = False) -> bytes:
        """``next_arg``: the next token (empty at end of statement)."""
        self.skip_ws()
        val = self.pos
        if self.cur() == 59:
            self.put(self.pos, 0)
            self.pos += 1
        else:
            self._parse_str([val])
        tok = self.cstr(val)
        if not tok:
            if required:
                raise self.error("insufficient arguments")
            return tok
        if name:
            ok = valid_package(_to_str(tok)) if package else valid_name(_to_str(tok))
            if not ok:
                raise self.error("invalid character in name field")
        return tok

    def argument(self, first: bool) -> str:
        """``uci_parse_argument``: one token of a batch or delta line (``first`` reads a line)."""
        if first:
            self.pos = 0
            self.getln(0)
        return _to_str(self.next_arg())

    def rest(self) -> bytes:
        return self.cstr(self.pos)


class Importer:
    """``uci_import``: statements of a config stream applied to :class:`Store` objects."""

    def __init__(self, reader: Reader, name: str | None, strict: bool = True,
                 into: Store | None = None, record: bool = False,
                 on_error: Callable[[UciParseError], None] | None = None):
        self.r = reader
        self.name = name
        self.strict = strict
        self.record = record
        self.on_error = on_error
        self.store: Store | None = into
        self.section: Ptr | None = None
        self.done: list[Store] = []

    def run(self, single: bool = True) -> list[Store]:
        """Parse everything; returns the packages read, in order."""
        r = self.r
        while not r.eof:
            r.pos = 0
            r.getln(0)
            if not r.char(0):
                continue
            try:
                self._line(single)
            except UciParseError as exc:
                if self.on_error is not None:
                    self.on_error(exc)
                if self.strict:
                    raise
        if self.store is None and self.name:
            self._switch(self.name)
        if self.store is not None:
            self.done.append(self.store)
        return self.done

    def _switch(self, name: str) -> Store:
        """Start package ``name`` (the one before it is done); returns its new store."""
        if self.store is not None:
            self.done.append(self.store)
        if any(s.pkg.name == name for s in self.done):
            raise UciOpError(Code.DUPLICATE)
        self.store, self.section = Store.empty(name), None
        return self.store

    def _word(self) -> bytes | None:
        """``strtok(cur, " \\t")``: the statement keyword, NUL-terminated in place."""
        r = self.r
        i = r.pos
        while r.char(i) in (32, 9):
            i += 1
        if not r.char(i):
            return None
        j = i
        while r.char(j) and r.char(j) not in (32, 9):
            j += 1
        r.put(j, 0)
        return bytes(r.buf[i:j])

    def _skip_word(self, what: str) -> None:
        r = self.r
        add = len(r.cstr(r.pos)) + 1
        if r.pos + add > r.filled:
            raise r.error(what + " without name")
        r.pos += add

    def _line(self, single: bool) -> None:
        r = self.r
        r.skip_ws()
        while True:
            word = self._word()
            if word is None or word[:1] == b"#":
                return
            kind, tail = word[:1], word[1:]
            full = {b"p": b"ackage", b"c": b"onfig", b"o": b"ption", b"l": b"ist"}.get(kind)
            if full is None or tail not in (b"", full):
                raise r.error("invalid command")
            if kind == b"p":
                self._package(single)
            elif kind == b"c":
                self._config()
            else:
                self._option(kind == b"l")

    def _assert_eol(self) -> None:
        self.r.skip_ws()
        if self.r.next_arg() and self.strict:
            raise self.r.error("too many arguments")

    def _package(self, single: bool) -> None:
        self._skip_word("package")
        name = _to_str(self.r.next_arg(True, True, True))
        self._assert_eol()
        if not single:
            self._switch(name)

    def _config(self) -> None:
        r = self.r
        st = self.store
        if st is None:
            if not self.name:
                raise r.error("attempting to import a file without a package name")
            st = self._switch(self.name)
        self._skip_word("config")
        type_ = _to_str(r.next_arg(True))
        if not valid_type(type_):
            raise r.error("invalid character in type field")
        name = _to_str(r.next_arg(False, True))
        self._assert_eol()
        if not name:
            s = st.add_section(type_, record=self.record)
            self.section = Ptr(st.pkg.name, s.ref, s=s)
            return
        found = st.find(name)
        if found is not None and self.strict and found.type != type_:
            raise r.error("section of different type overwrites prior section with same name")
        ptr = Ptr(st.pkg.name, name, value=type_, s=found)
        st.set(ptr, record=self.record)
        self.section = Ptr(st.pkg.name, name, s=ptr.s)

    def _option(self, is_list: bool) -> None:
        r = self.r
        if self.section is None or self.store is None:
            raise r.error("option/list command found before the first section")
        self._skip_word("option")
        name = _to_str(r.next_arg(True, True))
        value = _to_str(r.next_arg())
        self._assert_eol()
        ptr = Ptr(self.store.pkg.name, self.section.section, name, value, s=self.section.s)
        if is_list:
            self.store.add_list(ptr, record=self.record)
        else:
            self.store.set(ptr, record=self.record)


def parse_store(text: str | bytes, package: str, strict: bool = True,
                on_error: Callable[[UciParseError], None] | None = None) -> Store:
    """Parse one config file into a :class:`Store` (keeps libuci's section counter)."""
    stores = Importer(Reader(text), package, strict, on_error=on_error).run(single=True)
    return stores[0] if stores else Store.empty(package)


def parse(text: str, package: str, strict: bool = True) -> UciPackage:
    """Parse the text of ``/etc/config/<package>`` like libuci; raises ``UciParseError``.

    With ``strict=False`` a bad line is skipped (as ``uci -S`` does) instead of raising.
    """
    try:
        return parse_store(text, package, strict).pkg
    except UciParseError as exc:
        exc.package = package
        raise


def parse_delta_line(r: Reader, package: str | None) -> Delta | None:
    """One delta-file entry (``uci_parse_delta_tuple``); None for a line libuci would ignore."""
    arg = r.argument(first=True)
    if not arg:
        return None
    if r.rest():
        raise UciOpError(Code.INVAL)
    cmd = next((c for c in Cmd if c.value and arg.startswith(c.value)), Cmd.CHANGE)
    if cmd is not Cmd.CHANGE:
        arg = arg[1:]
    ptr = parse_ptr(arg)
    if ptr.section is None or ptr.extended:
        raise UciOpError(Code.INVAL)
    if cmd is not Cmd.REMOVE and ptr.value is None:
        raise UciOpError(Code.INVAL)
    if cmd is Cmd.REORDER and ptr.option is not None:
        raise UciOpError(Code.INVAL)
    if cmd is Cmd.RENAME and not valid_name(ptr.value or ""):
        raise UciOpError(Code.INVAL)
    if cmd in (Cmd.LIST_ADD, Cmd.LIST_DEL) and ptr.option is None:
        raise UciOpError(Code.INVAL)
    if package is not None and ptr.package != package:
        raise UciOpError(Code.PARSE)
    return Delta(cmd, ptr.section, ptr.option, ptr.value)


def iter_deltas(text: str | bytes, package: str) -> Iterator[Delta | None]:
    """Every line of a delta file: a Delta, or None where libuci would skip the line."""
    r = Reader(text)
    while not r.eof:
        try:
            d = parse_delta_line(r, package)
        except (UciOpError, UciParseError):
            yield None
            continue
        if d is not None:
            yield d


def replay_deltas(store: Store, text: str | bytes) -> int:
    """``uci_parse_delta``: apply a delta file to ``store``; returns how many entries applied."""
    applied = 0
    for d in iter_deltas(text, store.pkg.name):
        if d is None:
            continue
        store.saved.append(d)
        try:
            store.replay(d)
        except UciOpError:
            continue
        applied += 1
    return applied
