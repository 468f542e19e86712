"""The text reports of mwan3's own CLI (`mwan3 interfaces`, `mwan3 policies`), parsed: an oracle
for the tests, not used by mwanctl (which reads ``ubus call mwan3 status``). The recorded vectors
hold the CLI's text and the ubus JSON of the same moment, so what mwanctl reads from the JSON can
be checked against what mwan3 itself printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mwanctl.facts import PolicyMember, _check_probe, _fail  # the same one-line errors as mwanctl's parsers

MWAN3_TEXT_CMD = "mwan3 interfaces"


@dataclass(frozen=True, slots=True)
class Mwan3IfaceLine:
    """One line of ``mwan3 interfaces``. ``errors`` is the sum of error bits (reference §2.4)."""

    name: str
    status: str
    tracking: str
    errors: int = 0
    online_for: int | None = None   # seconds, when online
    uptime: int | None = None       # netifd uptime, when online
    hotplug_state: str | None = None  # "online"/"offline" as used for the policies

    @property
    def error_reasons(self) -> tuple[str, ...]:
        return tuple(why for bit, why in MWAN3_ERROR_BITS.items() if self.errors & bit)


MWAN3_ERROR_BITS = {
    1: "ip rule pref id+1000 missing",
    2: "ip rule pref id+2000 missing",
    4: "ip rule pref id+3000 missing",
    8: "iptables chain mwan3_iface_in_<name> missing",
    16: "no default route in the interface's table",
}


_IFACE_LINE = re.compile(r"^ interface (\S+) is (\S+) and tracking is (\S+)(?: \((.*)\))?\s*$")
_HMS = r"(\d+)h:(\d+)m:(\d+)s"
_ONLINE_DETAIL = re.compile(rf"^(online|offline) {_HMS}, uptime {_HMS}$")


def _hms(h: str, m: str, s: str) -> int:
    return int(h) * 3600 + int(m) * 60 + int(s)


def _iface_line(match: re.Match[str]) -> Mwan3IfaceLine:
    name, status, tracking, detail = match.groups()
    detail = (detail or "").strip()
    timed = _ONLINE_DETAIL.match(detail)
    if timed:
        g = timed.groups()
        return Mwan3IfaceLine(name, status, tracking, 0, _hms(*g[1:4]), _hms(*g[4:7]), g[0])
    errors = int(detail) if detail.isdigit() else 0
    return Mwan3IfaceLine(name, status, tracking, errors)


def parse_mwan3_interfaces_text(text: str, router: str = "router") -> dict[str, Mwan3IfaceLine]:
    """Parse ``mwan3 interfaces`` (or the interface part of ``mwan3 status``)."""
    text = _check_probe(text, router, MWAN3_TEXT_CMD)
    lines = text.splitlines()
    if "Interface status:" not in (line.strip() for line in lines):
        raise _fail(router, MWAN3_TEXT_CMD, "printed no 'Interface status:' header")
    out: dict[str, Mwan3IfaceLine] = {}
    for line in lines:
        match = _IFACE_LINE.match(line)
        if match:
            parsed = _iface_line(match)
            out[parsed.name] = parsed
    return out


_POLICY_HEADER = re.compile(r"^Current (ipv4|ipv6) policies:$")
_POLICY_MEMBER = re.compile(r"^ (\S+) \((\d+)%\)$")


def parse_mwan3_policies_text(text: str, router: str = "router") -> dict[str, dict[str, tuple[PolicyMember, ...]]]:
    """Parse the policy part of ``mwan3 status``/``mwan3 policies``: family -> policy -> members.

    A policy whose only line is its last resort (``unreachable``...) has no members.
    """
    text = _check_probe(text, router, "mwan3 policies")
    out: dict[str, dict[str, tuple[PolicyMember, ...]]] = {}
    family: str | None = None
    policy: str | None = None
    for line in text.splitlines():
        header = _POLICY_HEADER.match(line)
        if header:
            family, policy = header.group(1), None
            out[family] = {}
        elif family is None:
            continue
        elif not line.strip():
            family = None
        elif line.startswith(" "):
            member = _POLICY_MEMBER.match(line)
            if member and policy is not None:
                out[family][policy] += (PolicyMember(member.group(1), int(member.group(2))),)
        elif line.endswith(":"):
            policy = line[:-1]
            out[family][policy] = ()
        else:
            family = None
    if not out:
        raise _fail(router, "mwan3 policies", "printed no 'Current ipv4/ipv6 policies:' header")
    return out
