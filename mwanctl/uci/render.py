"""Write packages exactly as the ``uci`` CLI prints them (``file.c`` export, ``cli.c`` show/get).

Byte-exact output lets a deploy compare the router's staged state with the plan as plain text.
"""

from __future__ import annotations

from mwanctl.uci.engine import Code, Ptr, Store, UciOpError, option_values
from mwanctl.uci.model import UciPackage, UciSection, Value
from mwanctl.uci.quote import uci_escape, uci_quote, valid_name


def _section_block(s: UciSection, anon_names: bool) -> list[str]:
    head = f"\nconfig {uci_escape(s.type)}"  # libuci escapes the type but does not quote it
    if s.name is not None or anon_names:
        head += f" {uci_quote(s.ref)}"
    out = [head + "\n"]
    for opt, value in s.options.items():
        if isinstance(value, str):
            out.append(f"\toption {opt} {uci_quote(value)}\n")
        else:
            out.extend(f"\tlist {opt} {uci_quote(v)}\n" for v in value)
    return out


def file_text(pkg: UciPackage, anon_names: bool = False) -> str:
    """What ``uci commit`` writes to ``/etc/config/<pkg>``."""
    parts: list[str] = []
    for s in pkg.sections:
        parts.extend(_section_block(s, anon_names))
    parts.append("\n")
    return "".join(parts)


def export(pkg: UciPackage, anon_names: bool = False) -> str:
    """What ``uci export <pkg>`` prints (``anon_names`` is ``uci -n``)."""
    return f"package {pkg.name}\n" + file_text(pkg, anon_names)


def show_value(value: Value, delimiter: str = " ") -> str:
    """A value as ``uci show`` prints it after ``=``: every element single-quoted."""
    return delimiter.join(uci_quote(v) for v in option_values(value))


def get_value(value: Value, delimiter: str = " ") -> str:
    """A value as ``uci get`` prints it: raw; list elements with whitespace are quoted."""
    if isinstance(value, str):
        return value
    return delimiter.join(uci_quote(v) if any(c in v for c in " \t\r\n") else v for v in value)


def _show_section(pkg: str, ref: str, s: UciSection, delimiter: str) -> list[str]:
    out = [f"{pkg}.{ref}={s.type}\n"]
    out.extend(f"{pkg}.{ref}.{o}={show_value(v, delimiter)}\n" for o, v in s.options.items())
    return out


def _section_refs(pkg: UciPackage, anon_ids: bool) -> list[str]:
    """How ``uci show`` names each section: ``@type[N]`` for anonymous ones unless ``-X``."""
    seen: dict[str, int] = {}
    refs = []
    for s in pkg.sections:
        idx = seen.get(s.type, 0)
        seen[s.type] = idx + 1
        refs.append(s.ref if (anon_ids or s.name is not None) else f"@{s.type}[{idx}]")
    return refs


def resolve(pkg: UciPackage, path: str | None) -> Ptr:
    """Look ``sec[.opt]`` (relative to the package; ``@type[N]`` allowed) up like ``uci`` does."""
    ptr = Ptr(pkg.name)
    if path:
        parts = path.split(".")
        if len(parts) > 2:
            raise UciOpError(Code.PARSE)
        ptr.section = parts[0]
        ptr.extended = not valid_name(parts[0])
        ptr.option = parts[1] if len(parts) > 1 else None
    return Store(pkg).lookup(ptr)


def show(pkg: UciPackage, anon_ids: bool = False, delimiter: str = " ", path: str | None = None) -> str:
    """What ``uci show <pkg>[.<path>]`` prints (``anon_ids`` is ``uci -X``).

    Raises ``UciOpError(Code.NOTFOUND)`` when ``path`` names nothing.
    """
    ptr = resolve(pkg, path)
    s = ptr.found()
    if s is None:
        out: list[str] = []
        for ref, sec in zip(_section_refs(pkg, anon_ids), pkg.sections):
            out.extend(_show_section(pkg.name, ref, sec, delimiter))
        return "".join(out)
    option = ptr.option
    if option is None:
        return "".join(_show_section(pkg.name, s.ref, s, delimiter))
    return f"{pkg.name}.{s.ref}.{option}={show_value(s.options[option], delimiter)}\n"


def get_text(pkg: UciPackage, path: str, delimiter: str = " ") -> str:
    """What ``uci get <pkg>.<path>`` prints: an option's raw value or a section's type (and
    ``UciOpError(Code.NOTFOUND)`` when ``path`` names nothing, or names only the package)."""
    ptr = resolve(pkg, path)
    if (s := ptr.found()) is None:
        raise UciOpError(Code.NOTFOUND)
    if ptr.option is None:
        return s.type + "\n"
    return get_value(s.options[ptr.option], delimiter) + "\n"
