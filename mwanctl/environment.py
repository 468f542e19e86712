"""What a command takes from the process around it: streams, terminals, environment variables and
the clock, in one object the CLI is handed instead of reaching for ``sys`` and ``os``.

``Environment.from_process()`` is the real thing (read when ``main`` starts, so pytest's capture
sees the output); a test builds one with StringIO streams, a fixed ``environ``, a fake clock and
scripted answers, and runs any command in-process, terminal questions included.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, TextIO


def _hidden_prompt(text: str) -> str:
    """A password from the terminal, not echoed (click's getpass-based prompt, on stderr)."""
    import click
    value: str = click.prompt(text, hide_input=True, err=True)
    return value


@dataclass
class Environment:
    """The surroundings of one run of mwanctl (learned from httpie's ``Environment``)."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    stdin_isatty: bool = False          # may mwanctl ask questions? (colour follows the streams)
    environ: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time           # epoch seconds: status ages, rotation age
    sleep: Callable[[float], None] = time.sleep      # `status --watch` between refreshes
    ask_password: Callable[[str], str] = _hidden_prompt   # only used when stdin is a terminal

    @classmethod
    def from_process(cls) -> Environment:
        """The real streams, terminals, environment and clock of this process."""
        return cls(sys.stdin, sys.stdout, sys.stderr, _isatty(sys.stdin), os.environ)

    def confirm(self, question: str, default: bool = False) -> bool:
        """Ask a yes/no question on stderr and read the answer from stdin (as click.confirm does:
        empty means ``default``, anything else unreadable is asked again; end of input aborts)."""
        import click
        hint = "[Y/n]" if default else "[y/N]"
        while True:
            self.stderr.write(f"{question} {hint}: ")
            self.stderr.flush()
            line = self.stdin.readline()
            if not line:
                raise click.Abort()
            answer = line.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            if answer == "":
                return default
            self.stderr.write("Error: invalid input\n")


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):   # closed or replaced by something without isatty
        return False


__all__ = ["Environment"]
