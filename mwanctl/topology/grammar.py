"""The grammar of every value mwanctl passes on to uci, a shell or WireGuard.

One place decides what a host, an address, a port list or a piece of free text may contain, so
the loader and the checks agree and nothing that reaches a router is looser than its reader.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Optional, Union

# RFC 1123 labels, at most 253 characters in all; \Z (not $) so a trailing newline never matches.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")
# An IPv6 zone (scope) id is an interface name or number: Linux IFNAMSIZ allows 15 characters.
SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z")

MAX_TEXT = 255        # free text (descriptions, paths, user names) on one line
MULTIPORT_MAX = 15    # iptables' multiport match: 15 ports, a range counting as two
PORT_MAX = 65535

AnyAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def text_problem(s: str, max_len: int = MAX_TEXT) -> Optional[str]:
    """Why ``s`` cannot be passed on as one line of text (None when it can).

    Control characters (NUL breaks `uci batch`, a newline adds a line to whatever a router
    generates from the value), line/paragraph separators and lone surrogates (not encodable
    as UTF-8) are refused, as is text longer than ``max_len``.
    """
    if len(s) > max_len:
        return f"is {len(s)} characters long; at most {max_len} are allowed"
    if s.isprintable():   # fast path: no control, separator or surrogate character in it
        return None
    for c in s:
        o = ord(c)
        if o < 32 or 0x7F <= o < 0xA0:
            return f"contains the control character U+{o:04X}; only printable text on one line is allowed"
        if o in (0x2028, 0x2029):
            return f"contains the line separator U+{o:04X}; keep it on one line"
        if 0xD800 <= o <= 0xDFFF:
            return f"contains a lone surrogate U+{o:04X}, which is not valid UTF-8"
    return None


@lru_cache(maxsize=4096)   # the same few tracking targets repeat on every uplink
def ip_address(s: str, scope: bool = False) -> Optional[AnyAddress]:
    """``s`` as an IP address, or None. Python accepts any zone id after ``%`` (even a newline);
    here a zone id is only allowed when ``scope`` is set, and only as an interface name."""
    addr_part, pct, zone = s.partition("%")
    if pct and (not scope or not SCOPE_ID.match(zone) or ":" not in addr_part):
        return None
    if s != s.strip():
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def is_ip(s: str, scope: bool = False) -> bool:
    return ip_address(s, scope) is not None


def is_host(s: str) -> bool:
    """An IP address (link-local IPv6 with a zone id allowed) or a DNS host name."""
    if is_ip(s, scope=True):
        return True
    return HOSTNAME.match(s) is not None and not s.replace(".", "").isdigit()


def network_text(s: str) -> str:
    """An address or network (``10.0.0.0/8``, ``2001:db8::1``) in canonical form; ValueError else.
    No zone ids: mwan3 hands these to iptables/ipset, which know none."""
    if "%" in s or s != s.strip():
        raise ValueError("no zone id or spaces allowed")
    return str(ipaddress.ip_network(s, strict=False)) if "/" in s else str(ipaddress.ip_address(s))


def port_list(s: str) -> tuple[Optional[str], str]:
    """(the value mwan3 gets, problem) for an iptables multiport list like ``80,443,1000:2000``.

    ``a-b`` is read as the range ``a:b`` (fw4 writes ranges with ``-``, iptables with ``:``) and
    converted, so both spellings mean what a user expects. Ports are 0..65535, a range must not
    run backwards, and multiport takes at most 15 ports with a range counting as two.
    """
    parts = s.split(",")
    out: list[str] = []
    used = 0
    for part in parts:
        m = re.fullmatch(r"([0-9]{1,5})(?:[:-]([0-9]{1,5}))?", part)
        if not m:
            return None, (f"{part!r} is not a port or a range; use a port, a range `1000:2000` "
                          "or a list `80,443` (iptables multiport)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else None
        for p in (lo, hi):
            if p is not None and p > PORT_MAX:
                return None, f"port {p} is out of range; ports are 0..{PORT_MAX}"
        if hi is not None and hi < lo:
            return None, f"the range {part} runs backwards; write {hi}:{lo}"
        out.append(str(lo) if hi is None else f"{lo}:{hi}")
        used += 1 if hi is None else 2
    if used > MULTIPORT_MAX:
        return None, (f"{used} ports (a range counts as two), but iptables' multiport match takes "
                      f"at most {MULTIPORT_MAX}; split it into several rules")
    return ",".join(out), ""


# Ranges a tunnel pool can never use: the address would be dropped or mean something else.
_UNUSABLE4 = [ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")]
_USABLE6 = [ipaddress.IPv6Network(n) for n in ("2000::/3", "fc00::/7")]


def pool4_problem(net: ipaddress.IPv4Network) -> Optional[str]:
    for bad in _UNUSABLE4:
        if net.overlaps(bad):
            what = {"0.0.0.0/8": "`this network`", "127.0.0.0/8": "loopback",
                    "169.254.0.0/16": "link-local", "224.0.0.0/4": "multicast",
                    "240.0.0.0/4": "reserved"}[str(bad)]
            return (f"lies in (or overlaps) {bad}, the {what} range, which cannot carry tunnels; "
                    "use a private range such as 10.254.0.0/16")
    if net.prefixlen > 30:
        return "is smaller than one tunnel (/30); use a /16 to /24"
    return None


def pool6_problem(net: ipaddress.IPv6Network) -> Optional[str]:
    if not any(net.subnet_of(ok) for ok in _USABLE6):
        return ("is not inside global unicast (2000::/3) or unique-local (fc00::/7) space; use a "
                "ULA prefix such as fd00:254::/48")
    if net.prefixlen > 64:
        return "is smaller than one tunnel (/64); use a /48 or /56"
    return None


def short(v: object, limit: int = 60) -> str:
    """repr() of a value, clipped so a 70,000-character input gives a readable message."""
    if isinstance(v, str):
        text = repr(v if len(v) <= limit else v[:limit])
        return text if len(v) <= limit else text[:-1] + "…" + text[-1]
    if isinstance(v, (int, float)):
        text = repr(v)
        return text if len(text) <= limit else text[:limit] + "…"
    return type(v).__name__     # never repr() a container: aliases can make it exponentially large
