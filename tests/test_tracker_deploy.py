"""Deploy installs, updates and removes the handover tracker like every other change.

Dropbear test routers (tests/routers.py) run the real remote scripts under busybox sh; the
tracker's init script runs under the rc.common stand-in (tests/standins/rc.common), which records
the procd instances it would start.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.compile import tracker
from mwanctl.uci.parse import parse

try:
    from tests.e2e import run_cli as run
    from tests.e2e import start_site
except ImportError:  # pragma: no cover
    from e2e import run_cli as run  # type: ignore[no-redef]
    from e2e import start_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
STANDINS = Path(__file__).parent / "standins"
INSTANT = "tracking:\n  profile: instant\n  targets: [198.51.100.1, 198.51.100.2]"


def _site(router_factory, tmp_path, extra: str):
    site = start_site(router_factory, tmp_path, ["dsl", "lte"], extra=extra)
    site.routers["mother"].write("/etc/rc.common", (STANDINS / "rc.common").read_text())
    site.routers["mother"].run("chmod 755 /etc/rc.common")
    return site


def _installed(m) -> dict[str, bytes | None]:
    return {p: m.read(p) for p in (tracker.SCRIPT, tracker.INIT)}


def _link(m) -> str:
    return m.run(f"readlink {tracker.LINK}").stdout.strip()


def test_install_update_remove(router_factory, tmp_path, capsys):
    site = _site(router_factory, tmp_path, INSTANT)
    m = site.routers["mother"]
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2, err
    assert "+ mw_tracker (tracker)" in out and "+ mw_dsl (uplink)" in out
    assert "handover tracker: outage noticed within 0.5 s-1.2 s" in out
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    conf = parse(m.config_text("mwanctl"), "mwanctl")
    assert [s.name for s in conf.of_type("uplink")] == ["mw_dsl", "mw_lte"]
    assert conf.get("mw_dsl").options["target"] == ("198.51.100.1", "198.51.100.2")
    want = tracker.files()
    for path, text in want.items():
        assert m.read(path) == text.encode(), path
    assert _link(m) == "../init.d/mwanctl-track"
    assert "init mwanctl-track reload" in m.calls()
    procd = m.read("/tmp/mwtest-procd.log").decode()
    assert f"mwanctl-track track {tracker.SCRIPT} run" in procd
    assert f"mwanctl-track guard {tracker.SCRIPT} guard" in procd

    # the same topology again: nothing to do, nothing touched
    before = len(m.calls())
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0 and "nothing to do" in out, (out, err)
    assert len(m.calls()) == before

    # a changed window: the config changes, the tracker reloads
    site.path.write_text(site.path.read_text().replace("profile: instant", "profile: instant\n  window_ms: 900"))
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    assert parse(m.config_text("mwanctl"), "mwanctl").get("mw_lte").options["window"] == "0.9"
    assert m.calls()[-1] == "init mwanctl-track reload" or "init mwanctl-track reload" in m.calls()[before:]

    # the setting goes: every trace goes (sections, script, init script, rc.d link)
    site.path.write_text(site.path.read_text().replace("profile: instant\n  window_ms: 900", "profile: fast"))
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2 and "removes mwanctl's handover tracker" in out, (out, err)
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, (out, err)
    assert parse(m.config_text("mwanctl"), "mwanctl").sections == []
    assert _installed(m) == {tracker.SCRIPT: None, tracker.INIT: None}
    assert _link(m) == ""
    assert "init mwanctl-track stop" in m.calls()
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 0, (out, err)


def test_unconfirmed_install_is_rolled_back_with_its_files(router_factory, tmp_path, capsys, monkeypatch):
    """The router's timer restores the config and removes the files the apply installed."""
    site = _site(router_factory, tmp_path, INSTANT)
    m = site.routers["mother"]
    from mwanctl.transports import ssh

    real_apply = ssh.SshTransport.apply

    def apply_short(self, plan, confirm_timeout):
        # longer than the deploy's tunnel check, which must not read a mother that already
        # restored itself (a truthful exit 5 that loaded machines made of a 3 s window)
        real_apply(self, plan, 40)
        if self.router == "mother":
            m.proc.kill()
            m.proc.wait()
    monkeypatch.setattr(ssh.SshTransport, "apply", apply_short)
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 6, (out, err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and m.read(tracker.INIT) is not None:
        time.sleep(0.5)
    assert _installed(m) == {tracker.SCRIPT: None, tracker.INIT: None}
    assert _link(m) == ""
    assert not parse(m.config_text("mwanctl") if m.read("/etc/config/mwanctl") else "", "mwanctl").sections
    assert "init mwanctl-track stop" in m.calls()        # stopped before its files went


def test_tracker_needs_ssh(tmp_path, capsys):
    topo = tmp_path / "t.yaml"
    topo.write_text("site: x\nmother: {host: 192.0.2.1}\nuplinks: [{name: a, host: 192.0.2.2}]\n"
                    f"{INSTANT}\naccess:\n  mother: {{transport: ubus}}\n")
    code = main(["--state-dir", str(tmp_path / "s"), "render", str(topo), "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1 and "needs the ssh transport" in err, (out, err)
