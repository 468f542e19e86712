"""Up/down hooks: the user's commands, run on the mother when an uplink becomes online or offline
in mwan3, and on an uplink router when its own WAN interface goes up or down.

mwan3's user hook is /etc/mwan3.user, a file the user owns: mwanctl never writes it. It writes
its own hotplug script instead, /etc/hotplug.d/iface/17-mwanctl-hooks, which hotplug-call runs
for the same events right after mwan3's 15-mwan3 and 16-mwan3-user, with the same ACTION,
INTERFACE and DEVICE. The script is generated: a table of the site's interfaces and their
commands (every value mwanctl puts there goes through ``sh_quote``; the commands themselves are
the user's code, each passed whole as one ``sh -c`` argument) in front of the static dispatcher
``remote/hooks/dispatch.sh``, which fires each state's commands once per change. The file is
installed and removed by the apply path like the tracker's (``mw_files``); the digest of its text
in ``config hooks 'mw_hooks'`` of package ``mwanctl`` makes a changed command a visible change
in the plan, and its removal (no hooks left) removes the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from mwanctl.compile.context import Context
from mwanctl.shellquote import sh_quote
from mwanctl.topology.model import Hooks, Topology, UplinkHooks
from mwanctl.uci.model import UciSection

PACKAGE = "mwanctl"
SECTION = "mw_hooks"
HOOK_FILE = "/etc/hotplug.d/iface/17-mwanctl-hooks"   # after 15-mwan3 and 16-mwan3-user
RUN_DIR = "/var/run/mwanctl/hooks"                    # tmpfs: a reboot starts from "unknown"
MWAN3_STATE = "/var/run/mwan3/iface_state"            # written by 15-mwan3 (mwan3.sh)


@dataclass(frozen=True)
class HookIface:
    """One interface the script watches: who it belongs to and what runs on each state."""

    iface: str            # netifd/mwan3 interface name (INTERFACE of the event)
    uplink: str           # MWANCTL_UPLINK: the topology's name for it
    family: str           # MWANCTL_FAMILY: ipv4 | ipv6 ("" on an uplink router)
    hooks: Hooks


def mother_table(site_hooks: Hooks, ifaces: list[tuple[str, str, str, Hooks]]) -> list[HookIface]:
    """(iface, owner name, family, own hooks) in mwan3 order -> what the mother's script runs:
    the site's commands first, then the interface's own."""
    out = []
    for iface, owner, family, own in ifaces:
        h = Hooks(site_hooks.online + own.online, site_hooks.offline + own.offline)
        if h:
            out.append(HookIface(iface, owner, family, h))
    return out


def uplink_table(uplink: str, hooks: UplinkHooks) -> list[HookIface]:
    return [HookIface(hooks.wan_interface, uplink, "", hooks.router)] if hooks.router else []


def script(site: str, table: list[HookIface], mode: str, run_dir: str = RUN_DIR,
           mwan3_state: str = MWAN3_STATE) -> str:
    """The whole hotplug script. ``mode`` is ``mwan3`` (the mother: the state is what mwan3
    recorded) or ``netifd`` (an uplink router: ifup/ifdown). ``run_dir``/``mwan3_state`` are
    only moved by tests, which run the script outside a router."""
    q = sh_quote
    lines = [
        "#!/bin/sh",
        f"# {HOOK_FILE}: the up/down hooks of site {site}, written by mwanctl.",
        "# Every deploy replaces this file and removing `hooks:` from the topology removes it: put",
        "# your commands in the topology (or in /etc/mwan3.user, which mwanctl never touches).",
        f"MW_HOOK_MODE={q(mode)}",
        f"MW_HOOK_SITE={q(site)}",
        f"MW_HOOK_RUN={q(run_dir)}",
        f"MW_HOOK_MWAN3={q(mwan3_state)}",
        "",
        "# interface -> MW_HOOK_UPLINK, MW_HOOK_FAMILY; any other interface is not ours",
        "mw_hook_iface() {",
        '\tcase "$1" in',
    ]
    for h in table:
        lines.append(f"\t{q(h.iface)}) MW_HOOK_UPLINK={q(h.uplink)} MW_HOOK_FAMILY={q(h.family)} ;;")
    lines += ["\t*) return 1 ;;", "\tesac", "}", "",
              "# the commands of interface $1 entering state $2, in topology order",
              "mw_hook_commands() {", '\tcase "$1 $2" in']
    for h in table:
        for state, cmds in (("online", h.hooks.online), ("offline", h.hooks.offline)):
            if not cmds:
                continue
            lines.append(f"\t{q(h.iface + ' ' + state)})")
            lines += [f"\t\tmw_hook_exec {q(c)}" for c in cmds]
            lines.append("\t\t;;")
    lines += ["\tesac", "}", ""]
    return "\n".join(lines) + "\n" + _dispatcher()


def _dispatcher() -> str:
    return (resources.files("mwanctl") / "remote" / "hooks" / "dispatch.sh").read_text(encoding="utf-8")


def digest(text: str) -> str:
    return hashlib.sha256(f"{HOOK_FILE}\0{text}".encode()).hexdigest()[:16]


def section(text: str) -> UciSection:
    """``config hooks 'mw_hooks'`` in package mwanctl: the file's digest, so the plan sees it."""
    return UciSection("hooks", SECTION, {"files": digest(text)})


def _mother_ifaces(t: Topology) -> list[tuple[str, str, str, Hooks]]:
    """Every mwan3 interface of the site, in mwan3 order, with its owner and its own hooks."""
    out = [(w.iface, w.name, w.family, Hooks()) for w in t.mother.wans]
    for u in t.uplinks:
        out.append((u.iface, u.name, "ipv4", u.hooks.mother))
        if u.ipv6:
            out.append((u.iface6, u.name, "ipv6", u.hooks.mother))
    return out


def router_files(t: Topology) -> dict[str, dict[str, str]]:
    """router -> {HOOK_FILE: script} for every router that has hooks."""
    out: dict[str, dict[str, str]] = {}
    table = mother_table(t.hooks, _mother_ifaces(t))
    if table:
        out[t.mother.name] = {HOOK_FILE: script(t.site, table, "mwan3")}
    for u in t.uplinks:
        up = uplink_table(u.name, u.hooks)
        if up:
            out[u.name] = {HOOK_FILE: script(t.site, up, "netifd")}
    return out


class HookSections:
    """``config hooks 'mw_hooks'`` (package mwanctl) on every router that has hooks."""

    package = PACKAGE

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        return {router: [section(files[HOOK_FILE])] for router, files in router_files(ctx.topology).items()}
