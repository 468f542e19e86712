"""The UCI data model: packages of typed sections holding options and lists.

This is the one representation every part of mwanctl speaks: the compiler produces it,
the parser reads router files into it, the serializer writes it, the diff compares two of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

# An option value is a string; a list is a tuple of strings (order matters, duplicates allowed).
Value = Union[str, tuple[str, ...]]


@dataclass
class UciSection:
    """One ``config <type> ['<name>']`` block.

    ``name`` is None for an anonymous section; ``anon_id`` then holds the ``cfgXXXXXX``
    id libuci would give it (set by the parser; see reference §5.3).
    """

    type: str
    name: str | None = None
    options: dict[str, Value] = field(default_factory=dict)
    anon_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.name is None

    @property
    def ref(self) -> str:
        """The name to address this section with (its name, or its cfg id)."""
        return self.name if self.name is not None else (self.anon_id or "")


@dataclass
class UciPackage:
    """One config file (``/etc/config/<name>``): ordered sections."""

    name: str
    sections: list[UciSection] = field(default_factory=list)

    def __iter__(self) -> Iterator[UciSection]:
        return iter(self.sections)

    def get(self, name: str) -> UciSection | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def of_type(self, type_: str) -> list[UciSection]:
        return [s for s in self.sections if s.type == type_]
