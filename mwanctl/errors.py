"""Exception tree, diagnostics and exit codes.

The library raises; only ``mwanctl.cli`` prints or exits.

    MwanctlError
     ├── TopologyError        (carries a list of Diagnostic)
     ├── UciError
     │    └── UciParseError   (line, byte, reason: exactly what `uci` prints)
     ├── KeyStoreError
     ├── TransportError
     │    ├── ConnectError    (unreachable, timeout, refused)
     │    ├── AuthError       (wrong password/key, rpcd permission)
     │    ├── HostKeyError    (changed or unknown host key)
     │    └── CommandError    (a remote command failed or printed nonsense)
     ├── ApplyError           (router stayed on, or returned to, its old config)
     ├── ApplyInterrupted     (the apply was sent but its answer never came: the router is on its
     │                         old config, or on the new one until its rollback timer restores it)
     └── ConfirmError         (router could not be reached to confirm; it rolls back by itself)
          └── RolledBack      (the router had already restored its old config when the confirm
                               arrived: deadline passed, or another deploy took over)
"""

from __future__ import annotations

from dataclasses import dataclass

from mwanctl.exits import DeployExit

# The codes errors carry are the deploy family's (mwanctl.exits); the name stays for the modules
# and tests that import it from here.
ExitStatus = DeployExit


@dataclass(frozen=True)
class Location:
    """Where a value came from in a topology file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a topology: where, which field, what is wrong and how to fix it.

    ``rule`` is the MWnnn id the README's rule table documents; it is printed so a user can
    look the problem up and a test can name it.
    """

    location: Location | None
    field: str
    message: str
    severity: str = "error"  # or "warning"
    rule: str = ""

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        tag = "" if self.severity == "error" else "warning: "
        rule = f" [{self.rule}]" if self.rule else ""
        return one_line(f"{where}{tag}{self.field}: {self.message}{rule}")


def one_line(text: str) -> str:
    """Escape what would break a one-line message: control characters, line separators and lone
    surrogates (a hostile key or value must not forge extra output lines or crash the print)."""
    out = []
    for c in text:
        o = ord(c)
        if o < 32 or 0x7F <= o < 0xA0 or o in (0x2028, 0x2029) or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)


class MwanctlError(Exception):
    """Root of every error mwanctl raises on purpose; the CLI prints ``str(exc)`` as one line."""

    exit_status: ExitStatus = ExitStatus.ERROR


class TopologyError(MwanctlError):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        if len(errors) == 1:
            super().__init__(str(errors[0]))
        else:
            super().__init__(f"{len(errors)} errors in topology")


class UciError(MwanctlError):
    pass


class UciParseError(UciError):
    """A config file that libuci would refuse, reported the way `uci` reports it."""

    def __init__(self, reason: str, line: int, byte: int, package: str | None = None):
        self.reason, self.line, self.byte, self.package = reason, line, byte, package
        super().__init__(f"Parse error ({reason}) at line {line}, byte {byte}")


class KeyStoreError(MwanctlError):
    pass


class TransportError(MwanctlError):
    exit_status = ExitStatus.CONNECT


class ConnectError(TransportError):
    pass


class AuthError(TransportError):
    pass


class HostKeyError(TransportError):
    pass


class CommandError(TransportError):
    exit_status = ExitStatus.ERROR


class ApplyError(MwanctlError):
    exit_status = ExitStatus.APPLY_FAILED


class ConfirmError(MwanctlError):
    exit_status = ExitStatus.NOT_CONFIRMED


class ApplyInterrupted(MwanctlError):
    """The apply request reached the router but its answer did not come back (connection lost,
    timeout). The router either never committed, or committed and armed its rollback timer: in
    both cases it is on its old config by the end of the confirm timeout. mwanctl never confirms
    an apply whose outcome it did not see."""

    exit_status = ExitStatus.NOT_CONFIRMED


class RolledBack(ConfirmError):
    """The router answered the confirm, and what it said is that this apply is no longer pending:
    its rollback timer (or a rollback) already restored the old config."""

    exit_status = ExitStatus.ROLLED_BACK
