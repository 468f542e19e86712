"""The handover tracker's settings on the mother (package `mwanctl`, read by mwanctl-track).

One ``uplink`` section per uplink whose tracking profile is `instant`, named after its mwan3
interface, plus ``config tracker 'mw_tracker'`` carrying the digest of the router-side files:
a new mwanctl version whose tracker script changed then shows up in the plan like any other
change, and the apply that carries it installs the new files.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from mwanctl.compile.context import Context
from mwanctl.topology import fields
from mwanctl.topology.model import PREFIX, Topology
from mwanctl.uci.model import UciSection

PACKAGE = "mwanctl"
SCRIPT = "/etc/mwanctl/mwanctl-track"                 # flash: survives a reboot, like lib.sh
INIT = "/etc/init.d/mwanctl-track"
LINK = "/etc/rc.d/S99mwanctl-track"                   # what `enable` makes of START=99
SERVICE = "mwanctl-track"


def uses_tracker(t: Topology) -> bool:
    return any(u.tracking.tracker for u in t.uplinks)


def files() -> dict[str, str]:
    """Path on the router -> text, for the apply that installs the tracker."""
    base = resources.files("mwanctl") / "remote" / "tracker"
    script = (base / "mwanctl-track").read_text()
    init = (base / "mwanctl-track.init").read_text().replace("PROG=/usr/libexec/mwanctl-track", f"PROG={SCRIPT}")
    return {SCRIPT: script, INIT: init}


def digest() -> str:
    h = hashlib.sha256()
    for path, text in sorted(files().items()):
        h.update(f"{path}\0{text}\0".encode())
    return h.hexdigest()[:16]


class Tracker:
    package = PACKAGE

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        t = ctx.topology
        secs: list[UciSection] = []
        for u in t.uplinks:
            tr = u.tracking
            if not tr.tracker:
                continue
            v4 = tuple(x for x in tr.targets if ":" not in x)
            secs.append(UciSection("uplink", u.iface, {
                "device": u.iface,                  # netifd names a WireGuard device after its interface
                **fields.options(fields.TRACKING, tr, PACKAGE, "uplink"),   # interval, window, stable
                "target": v4,
            }))
        if secs:
            secs.insert(0, UciSection("tracker", PREFIX + "tracker", {"files": digest()}))
        return {t.mother.name: secs}
