"""PURE: is an uplink's WAN interface up, from ``ubus call network.interface dump``?

Why: a WAN section mwanctl wrote can be well-formed and still not connect (a wrong PPPoE
password, an APN the carrier refuses). The tunnel check would not notice: the tunnel runs over the
LAN and handshakes anyway, and mwan3 takes its `down` rounds to see the lost internet. So after
an uplink whose WAN changed is applied, the deploy waits for netifd to report the interface up,
and rolls back if a WAN that was up before does not come up again (one that was already down is
reported, not blamed).
"""

from __future__ import annotations

import json
from typing import Any

# how long netifd gets to bring a changed WAN up: PPPoE and DHCP take seconds, a cellular modem
# registering can take tens of seconds (qmi.sh waits up to 10 s per stage)
WAN_UP_TIMEOUT = 45


UNREADABLE_DUMP = "unreadable answer to `ubus call network.interface dump`"


def dump_entry(dump: str, iface: str) -> dict[str, Any] | None:
    """``iface``'s entry in netifd's interface dump (what `ubus call network.interface.<iface>
    status` prints for it), None when netifd lists no such interface; ValueError when ``dump`` is
    not a dump (the deploy's WAN check and the status poll read it the same way)."""
    try:
        data: Any = json.loads(dump)
    except ValueError:
        raise ValueError(UNREADABLE_DUMP) from None
    items = data.get("interface") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(UNREADABLE_DUMP)
    return next((it for it in items if isinstance(it, dict) and it.get("interface") == iface), None)


def wan_state(dump: str | None, iface: str) -> tuple[bool | None, str]:
    """(True, "") when ``iface`` is up; (False, why) when netifd reports it down (with its errors,
    e.g. ``AUTH_FAILED``, ``INVALID_PROTO``); (None, why) when the answer cannot be read."""
    if dump is None or dump.startswith("ERROR"):
        return None, (dump or "no answer")[:160]
    try:
        it = dump_entry(dump, iface)
    except ValueError as exc:
        return None, str(exc)
    if it is None:
        return False, f"netifd has no interface {iface}"
    if it.get("up") is True:
        return True, ""
    errors = [str(e.get("code")) for e in it.get("errors") or [] if isinstance(e, dict) and e.get("code")]
    pending = " (still connecting)" if it.get("pending") else ""
    return False, f"netifd reports {iface} down{pending}" + (f": {', '.join(errors)}" if errors else "")
