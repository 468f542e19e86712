"""Test doubles of the OpenWrt Python bindings (pyuci 0.10.3's ``uci``, python-ubus 0.1.3's
``ubus``), which exist only on a router. They do what the real ones do INCLUDING WHAT THEY
REFUSE (facts: pyuci's pyuci.c; the vectors' README, "Python bindings on a router"):

* ``Uci.reorder`` always raises ``UciException("Internal uci error")`` (pyuci looks the section
  up without a value, then refuses because the value is missing);
* ``Uci.add`` raises ``NotImplementedError`` (not implemented in pyuci 0.10.3);
* ``Uci.set`` takes only ``str`` or a tuple/list of ``str`` ("Unsupported value passed to
  uci.set()" otherwise) and fails for an option of a missing section ("Invalid argument");
  ``Uci.delete`` never fails, ``Uci.get`` raises ``UciExceptionNotFound``;
* libuci layers ``/tmp/.uci/<pkg>`` (here ``FakeUci.user_delta``) over every package it loads,
  whatever confdir/savedir the caller set;
* ``ubus.connect()`` twice raises ``RuntimeError("You are already connected to ubus.")``.

Package contents are handled with the project's UCI engine (parse/render).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mwanctl.uci.model import UciSection
from mwanctl.uci.parse import parse
from mwanctl.uci.render import file_text

VECTORS = Path(__file__).parent / "vectors"
MWAN3_STATUS = json.loads((VECTORS / "mwan3" / "mwan3-status-both-online.json").read_text())


class FakeUci:
    """Stands for the module ``uci``."""

    user_delta = Path("/nonexistent/.uci")   # tests point it at a temp dir: libuci's /tmp/.uci

    class UciException(Exception):
        pass

    class UciExceptionNotFound(UciException):
        pass

    class Uci:
        def __init__(self, savedir: str | None = None, confdir: str | None = None):
            self.confdir, self.pkgs = Path(confdir or "/etc/config"), {}  # type: dict[str, Any]

        def _p(self, config: str) -> Any:
            if config not in self.pkgs:
                pkg = parse((self.confdir / config).read_text(), config)
                self._layer_user_delta(pkg, config)
                self.pkgs[config] = pkg
            return self.pkgs[config]

        @staticmethod
        def _layer_user_delta(pkg: Any, config: str) -> None:
            """`pkg.section.option='value'` lines of /tmp/.uci/<pkg> (what `uci set` leaves)."""
            f = FakeUci.user_delta / config
            if not f.is_file():
                return
            for line in f.read_text().splitlines():
                path, _, value = line.partition("=")
                parts = path.split(".")
                if len(parts) == 3 and parts[0] == config:
                    s = next((x for x in pkg.sections if x.ref == parts[1]), None)
                    if s is not None:
                        s.options[parts[2]] = value.strip("'")

        def _s(self, config: str, section: str) -> Any:
            s = next((x for x in self._p(config).sections if x.ref == section), None)
            if s is None:
                raise FakeUci.UciExceptionNotFound()
            return s

        def get(self, config: str, section: str, option: str | None = None) -> Any:
            s = self._s(config, section)
            if option is None:
                return s.type
            if option not in s.options:
                raise FakeUci.UciExceptionNotFound()
            return s.options[option]

        def set(self, config: str, section: str, *rest: Any) -> None:
            if len(rest) not in (1, 2):
                raise FakeUci.UciException("Invalid number of arguments passed to Uci.set()")
            value = rest[-1]
            if not isinstance(value, (str, tuple, list)) or (
                    not isinstance(value, str) and not all(isinstance(v, str) for v in value)):
                raise FakeUci.UciException("Unsupported value passed to uci.set()")
            sec = next((x for x in self._p(config).sections if x.ref == section), None)
            if len(rest) == 1:  # create or retype a named section
                if sec is None:
                    self._p(config).sections.append(UciSection(value, section))
                else:
                    sec.type = value
                return
            if sec is None:
                raise FakeUci.UciException("Invalid argument")
            if isinstance(value, str):
                sec.options[rest[0]] = value
            else:  # libuci: delete, then add_list each value
                sec.options.pop(rest[0], None)
                if value:
                    sec.options[rest[0]] = tuple(value)

        def delete(self, config: str, section: str, option: str | None = None) -> None:
            sec = next((x for x in self._p(config).sections if x.ref == section), None)
            if sec is None:
                return  # pyuci ignores uci_delete's result
            if option is None:
                self._p(config).sections.remove(sec)
            else:
                sec.options.pop(option, None)

        def add(self, config: str, type_: str) -> str:
            raise NotImplementedError

        def reorder(self, config: str, section: str, index: int) -> None:
            self._s(config, section)
            raise FakeUci.UciException("Internal uci error")

        def commit(self, config: str) -> None:
            (self.confdir / config).write_text(file_text(self._p(config)))


class FakeUbus:
    """Stands for the module ``ubus``: one connection per process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.connected = False
        self.connects = 0

    def connect(self, socket: str | None = None) -> None:
        if self.connected:
            raise RuntimeError("You are already connected to ubus.")
        self.connected = True
        self.connects += 1

    def disconnect(self) -> None:
        if not self.connected:
            raise RuntimeError("You are not connected to ubus.")
        self.connected = False

    def call(self, obj: str, method: str, args: dict[str, Any]) -> list[Any]:
        if not self.connected:
            raise RuntimeError("You are not connected to ubus.")
        self.calls.append((obj, method, args))
        return [MWAN3_STATUS] if (obj, method) == ("mwan3", "status") else []
