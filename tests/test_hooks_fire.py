"""The up/down hook script under busybox sh, driven the way mwan3 and netifd drive it.

Each event goes through a copy of hotplug-call's loop (every script of the iface directory, in
name order, each sourced in its own subshell) over a directory holding a stand-in for mwan3's
15-mwan3 (only what matters here: it records the state mwan3 balances by, as the real one does,
and exits early for FIRSTCONNECT=1 and MWAN3_SHUTDOWN=1) and the generated hook script. The event
sequences are the ones mwan3 2.12's mwan3track, mwan3.sh and netifd send (see the comments).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mwanctl.compile import hooks
from mwanctl.compile.hooks import HookIface
from mwanctl.topology.model import Hooks, UplinkHooks

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox")

# hotplug-call (procd): `for script in $(ls /etc/hotplug.d/$1/*); do ( . $script ); done`
HOTPLUG_CALL = """\
for script in $(ls "$HOTPLUG_DIR"/* 2>&-); do (
	[ -f $script ] && . $script
); done
"""

# 15-mwan3, the part that decides what iface_state holds (mwan3 2.12.2): early exits for
# FIRSTCONNECT and MWAN3_SHUTDOWN; connected -> online, disconnected/ifdown -> offline,
# ifup -> online unless initial_state is offline (then what mwan3track last recorded).
MWAN3_15 = """\
[ "$ACTION" = ifup ] || [ "$ACTION" = ifdown ] || [ "$ACTION" = connected ] || [ "$ACTION" = disconnected ] || exit 1
[ "$FIRSTCONNECT" = 1 ] || [ "$MWAN3_SHUTDOWN" = 1 ] && exit 0
[ -d "$MW3_STATE" ] || exit 0
case "$ACTION" in
connected) echo online > "$MW3_STATE/$INTERFACE" ;;
ifup) if [ "$(cat "$MW3_INITIAL/$INTERFACE" 2>/dev/null)" = offline ]; then
		echo offline > "$MW3_STATE/$INTERFACE"; else echo online > "$MW3_STATE/$INTERFACE"; fi ;;
*) echo offline > "$MW3_STATE/$INTERFACE" ;;
esac
"""

# A hook that records its whole environment and one line per call
RECORD = ('printf "%s|%s|%s|%s|%s|%s|%s\\n" "$ACTION" "$INTERFACE" "$DEVICE" "$MWANCTL_SITE" '
          '"$MWANCTL_UPLINK" "$MWANCTL_STATE" "$MWANCTL_FAMILY" >> "$LOG_DIR_PLACEHOLDER/fired"')
# User code with every shell metacharacter: it must reach the shell exactly as written
HOSTILE = """echo 'it'"'"'s $(x) `y` ; & | > "q"' >> "$LOG_DIR_PLACEHOLDER/hostile" """


class Lab:
    def __init__(self, tmp: Path, table: list[HookIface], mode: str) -> None:
        self.tmp = tmp
        self.dir = tmp / "hotplug.d"
        self.dir.mkdir()
        self.state = tmp / "mwan3" / "iface_state"
        self.state.mkdir(parents=True)
        self.initial = tmp / "initial"
        self.initial.mkdir()
        self.log = tmp / "log"
        self.log.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for tool in ("sh", "env", "cat", "ls", "mkdir", "rm", "sleep", "printf", "logger", "sort"):
            (self.bin / tool).symlink_to(BUSYBOX)  # type: ignore[arg-type]
        if mode == "mwan3":
            (self.dir / "15-mwan3").write_text(MWAN3_15)
        text = hooks.script("lab", table, mode, run_dir=str(tmp / "run"), mwan3_state=str(self.state))
        (self.dir / "17-mwanctl-hooks").write_text(text.replace("$LOG_DIR_PLACEHOLDER", str(self.log)))
        (tmp / "hotplug-call").write_text(HOTPLUG_CALL)

    def event(self, action: str, iface: str, device: str = "", **extra: str) -> None:
        """One hotplug-call, with the environment its caller gives it (env -i, as mwan3track)."""
        env = {"PATH": str(self.bin), "ACTION": action, "INTERFACE": iface, "HOTPLUG_DIR": str(self.dir),
               "MW3_STATE": str(self.state), "MW3_INITIAL": str(self.initial), **extra}
        if device:
            env["DEVICE"] = device
        subprocess.run([BUSYBOX, "sh", str(self.tmp / "hotplug-call")], env=env, check=True,  # type: ignore[list-item]
                       timeout=30)

    def fired(self) -> list[str]:
        p = self.log / "fired"
        return p.read_text().splitlines() if p.exists() else []


def _mother_lab(tmp_path: Path) -> Lab:
    site = Hooks(online=(RECORD,), offline=(RECORD,))
    table = hooks.mother_table(site, [("mw_dsl", "dsl", "ipv4", Hooks(online=(HOSTILE,))),
                                      ("mw_lte", "lte", "ipv4", Hooks()),
                                      ("mw_dsl6", "dsl", "ipv6", Hooks())])
    return Lab(tmp_path, table, "mwan3")


def test_boot_outage_recovery_fire_once_each(tmp_path: Path) -> None:
    lab = _mother_lab(tmp_path)
    # boot: netifd's ifup, then mwan3track's firstconnect sends connected with FIRSTCONNECT=1
    lab.event("ifup", "mw_dsl", "mw_dsl")
    lab.event("connected", "mw_dsl", "mw_dsl", FIRSTCONNECT="1")
    assert lab.fired() == ["ifup|mw_dsl|mw_dsl|lab|dsl|online|ipv4"]
    # outage: disconnecting (score falling) then disconnected at score == up
    lab.event("disconnecting", "mw_dsl", "mw_dsl")
    lab.event("disconnecting", "mw_dsl", "mw_dsl")
    lab.event("disconnected", "mw_dsl", "mw_dsl")
    # recovery: connecting rounds, then connected
    lab.event("connecting", "mw_dsl", "mw_dsl")
    lab.event("connected", "mw_dsl", "mw_dsl")
    assert lab.fired()[1:] == ["disconnected|mw_dsl|mw_dsl|lab|dsl|offline|ipv4",
                               "connected|mw_dsl|mw_dsl|lab|dsl|online|ipv4"]
    # the uplink's own command ran after the site's, byte for byte as written
    assert (lab.log / "hostile").read_text() == "it's $(x) `y` ; & | > \"q\"\n" * 2


def test_ifdown_then_disconnected_is_one_change(tmp_path: Path) -> None:
    lab = _mother_lab(tmp_path)
    lab.event("ifup", "mw_lte", "mw_lte")
    # `ifdown mw_lte`: netifd's ifdown (no DEVICE), then mwan3track's USR1 path -> disconnected
    lab.event("ifdown", "mw_lte")
    lab.event("disconnected", "mw_lte", "mw_lte")
    # `ifup mw_lte`: ifup, then firstconnect's connected (FIRSTCONNECT=1)
    lab.event("ifup", "mw_lte", "mw_lte")
    lab.event("connected", "mw_lte", "mw_lte", FIRSTCONNECT="1")
    assert lab.fired() == ["ifup|mw_lte|mw_lte|lab|lte|online|ipv4",
                           "ifdown|mw_lte||lab|lte|offline|ipv4",
                           "ifup|mw_lte|mw_lte|lab|lte|online|ipv4"]


def test_mwan3_restart_is_not_a_change(tmp_path: Path) -> None:
    lab = _mother_lab(tmp_path)
    lab.event("ifup", "mw_dsl", "mw_dsl")
    # /etc/init.d/mwan3 restart: mwan3_interface_hotplug_shutdown sends disconnected with
    # MWAN3_SHUTDOWN=1 through hotplug-call, stop removes /var/run/mwan3, start records the state
    # through 15-mwan3 directly (MWAN3_STARTUP=init, not hotplug-call), then the new mwan3track's
    # firstconnect sends connected with FIRSTCONNECT=1
    lab.event("disconnected", "mw_dsl", "mw_dsl", MWAN3_SHUTDOWN="1")
    shutil.rmtree(lab.state)
    lab.state.mkdir()
    (lab.state / "mw_dsl").write_text("online\n")
    lab.event("connected", "mw_dsl", "mw_dsl", FIRSTCONNECT="1")
    assert lab.fired() == ["ifup|mw_dsl|mw_dsl|lab|dsl|online|ipv4"]
    # an uplink that died while mwan3 restarted is reported once, by the first event after it
    lab.event("disconnected", "mw_dsl", "mw_dsl", MWAN3_SHUTDOWN="1")
    shutil.rmtree(lab.state)
    lab.state.mkdir()
    (lab.state / "mw_dsl").write_text("offline\n")
    (lab.initial / "mw_dsl").write_text("offline\n")
    lab.event("ifup", "mw_dsl", "mw_dsl")
    assert lab.fired()[1:] == ["ifup|mw_dsl|mw_dsl|lab|dsl|offline|ipv4"]


def test_initial_offline_waits_for_tracking(tmp_path: Path) -> None:
    """initial_state offline: ifup leaves it offline in mwan3, the hook fires on connected; a
    state never online before (since boot) does not fire `offline`."""
    lab = _mother_lab(tmp_path)
    (lab.initial / "mw_dsl").write_text("offline\n")
    lab.event("ifup", "mw_dsl", "mw_dsl")
    assert lab.fired() == []
    lab.event("connected", "mw_dsl", "mw_dsl")
    assert lab.fired() == ["connected|mw_dsl|mw_dsl|lab|dsl|online|ipv4"]


def test_other_interfaces_and_actions_are_ignored(tmp_path: Path) -> None:
    lab = _mother_lab(tmp_path)
    lab.event("ifup", "lan", "br-lan")
    lab.event("ifup", "wan", "eth1")
    lab.event("ifupdate", "mw_dsl", "mw_dsl")
    lab.event("ifup-failed", "mw_dsl")
    assert lab.fired() == []
    lab.event("ifup", "mw_dsl6", "mw_dsl6")
    assert lab.fired() == ["ifup|mw_dsl6|mw_dsl6|lab|dsl|online|ipv6"]


def test_environment_is_clean(tmp_path: Path) -> None:
    """Like /etc/mwan3.user: nothing of the caller's environment but what is documented."""
    dump = 'env | sort > "$LOG_DIR_PLACEHOLDER/env"'
    lab = Lab(tmp_path, hooks.mother_table(Hooks(online=(dump,)), [("mw_dsl", "dsl", "ipv4", Hooks())]), "mwan3")
    lab.event("connected", "mw_dsl", "mw_dsl", SECRET="x", FIRSTCONNECT="")
    names = {line.split("=", 1)[0] for line in (lab.log / "env").read_text().splitlines()}
    assert names - {"PWD", "SHLVL", "_"} == {"PATH", "ACTION", "INTERFACE", "DEVICE", "MWANCTL_SITE",
                                             "MWANCTL_UPLINK", "MWANCTL_STATE", "MWANCTL_FAMILY"}


def test_simultaneous_events_fire_once(tmp_path: Path) -> None:
    """netifd's hotplug and mwan3track call hotplug-call independently: the lock keeps two
    events handled at the same moment from both seeing the old state."""
    lab = _mother_lab(tmp_path)
    rounds = 15
    for i in range(rounds):
        action = "connected" if i % 2 == 0 else "disconnected"
        procs = [subprocess.Popen([BUSYBOX, "sh", str(lab.tmp / "hotplug-call")],  # type: ignore[list-item]
                                  env={"PATH": str(lab.bin), "ACTION": action, "INTERFACE": "mw_lte",
                                       "DEVICE": "mw_lte", "HOTPLUG_DIR": str(lab.dir),
                                       "MW3_STATE": str(lab.state), "MW3_INITIAL": str(lab.initial)})
                 for _ in range(3)]
        for p in procs:
            assert p.wait(timeout=30) == 0
    states = [line.split("|")[5] for line in lab.fired()]
    assert states == ["online", "offline"] * (rounds // 2) + ["online"]


def test_uplink_router_wan_hooks(tmp_path: Path) -> None:
    """On an uplink router: netifd's ifup/ifdown of its WAN interface (no mwan3 there)."""
    h = UplinkHooks(wan_online=(RECORD,), wan_offline=(RECORD,), wan_interface="wwan")
    lab = Lab(tmp_path, hooks.uplink_table("lte", h), "netifd")
    lab.event("ifup", "wwan", "wwan0")
    lab.event("ifupdate", "wwan", "wwan0")      # a new address: not a state change
    lab.event("ifup", "wwan", "wwan0")          # a repeated ifup (renew): not a change either
    lab.event("ifdown", "wwan")
    lab.event("ifup", "wan", "eth1")            # another interface
    assert lab.fired() == ["ifup|wwan|wwan0|lab|lte|online|", "ifdown|wwan||lab|lte|offline|"]


def test_a_failing_hook_does_not_stop_the_next(tmp_path: Path) -> None:
    table = hooks.mother_table(Hooks(online=("exit 3", "false; " + RECORD)),
                               [("mw_dsl", "dsl", "ipv4", Hooks(online=(RECORD,)))])
    lab = Lab(tmp_path, table, "mwan3")
    lab.event("connected", "mw_dsl", "mw_dsl")
    assert len(lab.fired()) == 2


def test_script_has_no_table_entries_for_hookless_interfaces() -> None:
    table = hooks.mother_table(Hooks(), [("mw_dsl", "dsl", "ipv4", Hooks()),
                                         ("mw_lte", "lte", "ipv4", Hooks(offline=("true",)))])
    assert [h.iface for h in table] == ["mw_lte"]
    text = hooks.script("s", table, "mwan3")
    assert "mw_dsl" not in text and "mw_lte) MW_HOOK_UPLINK=lte" in text
    # hotplug-call runs the directory in `ls` order: after mwan3's 15-mwan3 and 16-mwan3-user
    assert max(os.path.basename(hooks.HOOK_FILE), "16-mwan3-user", "15-mwan3") == os.path.basename(hooks.HOOK_FILE)
