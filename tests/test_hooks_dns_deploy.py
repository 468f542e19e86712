"""Deploy installs, updates and removes the hook scripts and sets the mother's DNS, like every
other change, on dropbear test routers (tests/routers.py: the real remote scripts under busybox sh).
The installed hook script is then run on the router the way hotplug-call would run it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mwanctl.compile import hooks
from mwanctl.uci.parse import parse

try:
    from tests.e2e import run_cli as run
    from tests.e2e import start_site
except ImportError:  # pragma: no cover
    from e2e import run_cli as run  # type: ignore[no-redef]
    from e2e import start_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
HERE = Path(__file__).parent
STOCK = HERE / "data" / "stock"
SITE_HOOKS = 'hooks:\n  online: ["echo \\"$ACTION $INTERFACE $MWANCTL_UPLINK\\" >> /tmp/fired"]'
DSL_HOOKS = 'hooks: {wan_online: ["echo \\"$ACTION $INTERFACE\\" >> /tmp/wan-fired"]}'


def _hotplug(router, action: str, iface: str, device: str = "") -> None:
    """What hotplug-call does with the file: source it in a subshell with the event's variables."""
    r = router.run(f"ACTION={action} INTERFACE={iface} DEVICE={device} sh -c '. {hooks.HOOK_FILE}'")
    assert r.returncode == 0, r.stderr


def test_hooks_install_fire_and_remove(router_factory, tmp_path, capsys):
    site = start_site(router_factory, tmp_path, ["dsl", "lte"], extra=SITE_HOOKS,
                      uplink_extra={"dsl": DSL_HOOKS})
    m, dsl, lte = (site.routers[n] for n in ("mother", "dsl", "lte"))
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2 and "+ mw_hooks (hooks)" in out, (out, err)
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    script = m.read(hooks.HOOK_FILE)
    assert script is not None and b"MW_HOOK_MODE=mwan3" in script
    assert dsl.read(hooks.HOOK_FILE) is not None and lte.read(hooks.HOOK_FILE) is None
    assert m.run(f"test -x {hooks.HOOK_FILE}").returncode == 0
    # mwan3's events for one come-up: once; the router keeps its state in /var/run
    m.run("mkdir -p /var/run/mwan3/iface_state && echo online > /var/run/mwan3/iface_state/mw_dsl")
    _hotplug(m, "ifup", "mw_dsl", "mw_dsl")
    _hotplug(m, "connected", "mw_dsl", "mw_dsl")
    assert m.read("/tmp/fired") == b"ifup mw_dsl dsl\n"
    _hotplug(dsl, "ifup", "wan", "eth1")
    _hotplug(dsl, "ifup", "wan", "eth1")
    assert dsl.read("/tmp/wan-fired") == b"ifup wan\n"

    # again: nothing to do
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0 and "nothing to do" in out, (out, err)

    # hooks gone: the scripts go (and with them the section)
    site.path.write_text(site.path.read_text().replace(SITE_HOOKS, "").replace("    " + DSL_HOOKS + "\n", ""))
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    assert m.read(hooks.HOOK_FILE) is None and dsl.read(hooks.HOOK_FILE) is None
    assert parse(m.config_text("mwanctl"), "mwanctl").sections == []
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 0, (out, err)


def test_unconfirmed_hooks_are_rolled_back(router_factory, tmp_path, capsys, monkeypatch):
    """A confirmed script, then a changed one that is never confirmed: the router's timer puts
    the confirmed script back, byte for byte (apply.sh snapshots the file like the config)."""
    site = start_site(router_factory, tmp_path, ["dsl", "lte"], extra=SITE_HOOKS)
    m = site.routers["mother"]
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    confirmed = m.read(hooks.HOOK_FILE)
    assert confirmed is not None
    from mwanctl.transports import ssh

    real_apply = ssh.SshTransport.apply

    def apply_short(self, plan, confirm_timeout):
        real_apply(self, plan, 3)
        if self.router == "mother":
            assert b"v2" in (m.read(hooks.HOOK_FILE) or b"")      # the new script was live
            m.proc.kill()
            m.proc.wait()
    monkeypatch.setattr(ssh.SshTransport, "apply", apply_short)
    site.path.write_text(site.path.read_text().replace(">> /tmp/fired", ">> /tmp/fired-v2"))
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    # 6 (applied, not confirmed) or 5 (the tunnel check failed first, as the mother is gone):
    # either way only the mother's own timer can put it back
    assert code in (5, 6), (out, err)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and m.read(hooks.HOOK_FILE) != confirmed:
        time.sleep(0.5)
    assert m.read(hooks.HOOK_FILE) == confirmed
    assert m.run(f"test -x {hooks.HOOK_FILE}").returncode == 0


def test_dns_deploy_sets_dnsmasq(router_factory, tmp_path, capsys):
    mother_files = {p.name: p.read_text() for p in STOCK.iterdir()}
    mother_files["dhcp"] = (HERE / "data" / "dhcp" / "stocklike").read_text()
    site = start_site(router_factory, tmp_path, ["dsl", "lte"], files={"mother": mother_files},
                      extra="dns: {servers: [9.9.9.9, 1.1.1.1]}")
    m = site.routers["mother"]
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2 and "noresolv" in out, (out, err)
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    sec = parse(m.config_text("dhcp"), "dhcp").of_type("dnsmasq")[0]
    assert sec.options["server"] == ("/mycompany.lan/192.168.1.53", "9.9.9.9", "1.1.1.1")
    assert (sec.options["noresolv"], sec.options["localuse"], sec.options["allservers"]) == ("1", "1", "1")
    assert "init dnsmasq reload" in m.calls()
    mwan3 = parse(m.config_text("mwan3"), "mwan3")
    assert [s.name for s in mwan3.of_type("rule")][:2] == ["mw_dns1", "mw_dns2"]
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0 and "nothing to do" in out, (out, err)
