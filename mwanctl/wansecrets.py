"""Read the WAN secrets (PPPoE/cellular password, SIM PIN) a topology names, just before compiling.

Why apart from the compiler: compiling is pure, and the topology only says where a secret lives
(``password_env``/``password_file``, ``pin_env``/``pin_file``). The values are read here, checked
to what the protocol handler can carry, and handed to the compiler as data, the way tunnel keys
are. No message ever contains a value: errors name the uplink, the field and the source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mwanctl.compile.wan import check_secret_value
from mwanctl.errors import Diagnostic, TopologyError
from mwanctl.topology.model import SecretRef, Wan
from mwanctl.topology.rules import WAN_SECRET

# uplink -> UCI option ("password", "pincode") -> value
WanSecrets = dict[str, dict[str, str]]


def read_secret(ref: SecretRef, base: Path, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """(value, "") or (None, why not). A file's one trailing newline is not part of the secret;
    a relative path is taken from the topology file's directory."""
    if ref.env is not None:
        value = environ.get(ref.env)
        return (value, "") if value is not None else (None, f"environment variable {ref.env} is not set")
    if ref.file is None:
        return None, "no source given"
    path = Path(os.path.expanduser(ref.file))
    if not path.is_absolute():
        path = base / path
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, f"file {ref.file} is not UTF-8 text"
    except OSError as exc:
        return None, f"cannot read file {ref.file}: {exc.strerror}"
    return (text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")), ""


def resolve(wans: Mapping[str, Wan], topology_file: str = "",
            environ: Mapping[str, str] | None = None) -> WanSecrets:
    """Every secret of every ``wan:`` block (uplink -> block), or one TopologyError listing all
    that are missing or unusable (MW023), each at its field's line."""
    env = os.environ if environ is None else environ
    base = Path(topology_file).resolve().parent if topology_file else Path.cwd()
    out: WanSecrets = {}
    diags: list[Diagnostic] = []
    for uplink, wan in wans.items():
        for option, ref in wan.secrets.items():
            value, why = read_secret(ref, base, env)
            if value is not None:
                bad = check_secret_value(wan.proto, option, value)
                if bad is not None:
                    value, why = None, f"the value from {ref.source} {bad}"
            if value is None:
                diags.append(Diagnostic(ref.loc, ref.path or f"uplinks.{uplink}.wan", why, rule=WAN_SECRET))
                continue
            out.setdefault(uplink, {})[option] = value
    if diags:
        raise TopologyError(diags)
    return out
