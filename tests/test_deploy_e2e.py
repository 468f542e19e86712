"""`mwanctl deploy` end to end: the CLI, the SSH transport and dropbear test routers.

Each router is dropbear on 127.0.0.1 in its own mount namespace, running the remote scripts under
busybox sh with the `uci` stand-in (which replays every recorded `uci` behaviour) and init-script,
ubus and wg stand-ins that record what was reloaded and emulate netifd.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mwanctl.compile import owns
from mwanctl.uci.parse import parse

try:
    from tests.e2e import run_cli as run
    from tests.e2e import start_site, write_site
except ImportError:  # pragma: no cover
    from e2e import run_cli as run  # type: ignore[no-redef]
    from e2e import start_site, write_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
STOCK = Path(__file__).parent / "data" / "stock"


def foreign(text: str, pkg: str) -> list[tuple[str, str | None, dict]]:
    """The sections of a config file mwanctl does not own, as comparable data."""
    return [(s.type, s.name, dict(s.options)) for s in parse(text, pkg).sections if not owns(pkg, s)]


def test_first_deploy_onto_stock_routers_then_nothing_to_do(router_factory, tmp_path, capsys):
    site = start_site(router_factory, tmp_path, ["dsl", "lte"])
    mother = site.routers["mother"]
    before = {p: mother.config_text(p) for p in ("network", "firewall", "mwan3")}
    before_up = {p: site.routers["dsl"].config_text(p) for p in ("network", "firewall")}

    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 2, err
    assert "private_key <hidden>" in out and "+ mw_dsl (interface)" in out
    assert "- https (rule)" in out and "manages all of /etc/config/mwan3" in out
    assert mother.config_text("network") == before["network"]  # plan changes nothing

    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, err
    assert "mother: applied and confirmed" in out and "dsl: applied and confirmed" in out

    net = parse(mother.config_text("network"), "network")
    assert net.get("mw_dsl").options["proto"] == "wireguard"
    assert net.get("mw_lte_peer").options["allowed_ips"] == ("0.0.0.0/0",)
    mwan3 = parse(mother.config_text("mwan3"), "mwan3")
    assert [s.name for s in mwan3.sections if s.type == "rule"] == ["mw_default_v4"]
    assert mwan3.get("globals").options == {"mmx_mask": "0x3F00"}
    # the user's own sections are exactly as they were
    for pkg in ("network", "firewall"):
        assert foreign(mother.config_text(pkg), pkg) == foreign(before[pkg], pkg)
        assert foreign(site.routers["dsl"].config_text(pkg), pkg) == foreign(before_up[pkg], pkg)
    # the network file (canonical already) is byte for byte the old one plus mwanctl's sections
    assert mother.config_text("network").startswith(before["network"].rstrip("\n"))
    # what was reloaded: only the packages that changed, the firewall never stopped
    calls = "\n".join(mother.calls())
    assert "network reload" in calls and "firewall reload" in calls and "mwan3" in calls
    assert "firewall stop" not in calls
    up_calls = "\n".join(site.routers["dsl"].calls())
    assert "mwan3" not in up_calls                          # uplinks run no mwan3
    # the apply's peer check read the live WireGuard state on the mother
    assert "wg show all dump" in calls

    for r in site.routers.values():
        r.calls_before = len(r.calls())
    files = {n: {p: r.config_text(p) for p in ("network", "firewall")} for n, r in site.routers.items()}
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, err
    assert "nothing to do" in out
    for n, r in site.routers.items():
        assert len(r.calls()) == r.calls_before, f"{n} was touched: {r.calls()[r.calls_before:]}"
        assert {p: r.config_text(p) for p in ("network", "firewall")} == files[n]
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 0 and "up to date" in out


def test_user_sections_untouched_and_removed_uplink_cleaned(router_factory, tmp_path, capsys):
    stock = {p: (STOCK / p).read_text() for p in ("network", "firewall", "mwan3")}
    stock["network"] += "\nconfig interface 'guest'\n\toption proto 'static'\n\toption ipaddr '10.9.9.1'\n"
    stock["firewall"] += ("\nconfig rule\n\toption name 'Allow-SSH-guest'\n\toption src 'guest'\n"
                          "\toption target 'ACCEPT'\n")
    site = start_site(router_factory, tmp_path, ["dsl", "lte"], files={"mother": stock})
    assert run(site, capsys, "deploy", str(site.path), "--yes")[0] == 0
    mother = site.routers["mother"]
    assert "config interface 'guest'" in mother.config_text("network")
    assert "Allow-SSH-guest" in mother.config_text("firewall")
    keys_before = (site.state_dir / "lab" / "state.json").read_text()

    # drop the lte uplink from the topology
    site2 = write_site(tmp_path, {k: v for k, v in site.routers.items() if k != "lte"}, ["dsl"])
    code, out, err = run(site2, capsys, "deploy", str(site2.path), "--yes")
    assert code == 0, err
    net = parse(mother.config_text("network"), "network")
    assert net.get("mw_lte") is None and net.get("mw_lte_peer") is None and net.get("mw_dsl") is not None
    fw = parse(mother.config_text("firewall"), "firewall")
    assert fw.get("mw_tun").options["network"] == ("mw_dsl",)
    assert "config interface 'guest'" in mother.config_text("network")
    # the remaining tunnel keeps its slot and keys: nothing renumbered
    assert net.get("mw_dsl").options["addresses"] == ("10.254.0.2/30",)
    assert '"dsl"' in keys_before


def test_hostile_strings_are_stored_literally_and_nothing_runs(router_factory, tmp_path, capsys):
    hostile = "it's $(touch /tmp/pwned) `touch /tmp/pwned2`; touch /tmp/pwned3 \"q\" | & >"
    site = start_site(router_factory, tmp_path, ["dsl"],
                      uplink_extra={"dsl": "description: '" + hostile.replace("'", "''") + "'"})
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 0, err
    mother = site.routers["mother"]
    assert parse(mother.config_text("network"), "network").get("mw_dsl_peer").options["description"] == hostile
    for r in site.routers.values():
        for f in ("pwned", "pwned2", "pwned3"):
            assert not r.exists(f"/tmp/{f}"), f"{f} exists on {r.name}: a command ran"
            assert not (Path("/tmp") / f).exists()


WINDOW = 40   # s: the mother's rollback timer in the lost-router test


def test_lost_router_before_confirm_restores_itself(router_factory, tmp_path, capsys, monkeypatch):
    """The mother stops answering right after it applied: mwanctl says so and exits 6; the
    router's own timer puts the old files back byte for byte."""
    site = start_site(router_factory, tmp_path, ["dsl"], confirm_timeout=30)
    mother = site.routers["mother"]
    before = {p: mother.config_text(p) for p in ("network", "firewall", "mwan3")}
    from mwanctl.transports import ssh

    real_apply = ssh.SshTransport.apply

    def apply_then_vanish(self, plan, confirm_timeout):
        if self.router != "mother":
            return real_apply(self, plan, confirm_timeout)
        # a router-side window longer than the deploy's tunnel check (up to 25 s waiting for a
        # handshake), so the check never reads a mother that already restored itself (that
        # deploy is a truthful exit 5, "rolled back", and loaded machines made it one)
        real_apply(self, plan, WINDOW)
        if self.router == "mother":
            mother.proc.kill()               # the SSH server goes away: no fresh connection
            mother.proc.wait()
    monkeypatch.setattr(ssh.SshTransport, "apply", apply_then_vanish)
    t0 = time.monotonic()
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 6, (out, err)
    # the mother is confirmed first; it cannot be, so it rolls back by itself and dsl, whose
    # new side of the tunnel needs the mother's, is rolled back explicitly
    lines = {ln.split(":")[2].strip(): ln for ln in err.splitlines() if ln.startswith("mwanctl: error:")}
    assert set(lines) == {"dsl", "mother"}, err
    assert "applied but could not confirm" in lines["mother"]
    assert "restores its previous config by itself" in lines["mother"]
    assert "not confirmed because mother failed; rolled back to its old config" in lines["dsl"], lines["dsl"]
    assert time.monotonic() - t0 < WINDOW   # includes waiting (25 s) for a handshake that never comes
    deadline = t0 + WINDOW + 30
    while time.monotonic() < deadline and mother.config_text("network") != before["network"]:
        time.sleep(0.5)
    for p in before:
        assert mother.config_text(p) == before[p], p
    assert sum("init network reload" in c for c in mother.calls()) >= 2   # the apply and the restore


def test_second_deploy_refused_while_one_awaits_confirmation(router_factory, tmp_path, capsys, monkeypatch):
    site = start_site(router_factory, tmp_path, ["dsl"])
    from mwanctl.transports import ssh
    monkeypatch.setattr(ssh.SshTransport, "confirm", lambda self, receipt=None: (_ for _ in ()).throw(
        ssh.ConfirmError("simulated: connection lost")))
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes", "--confirm-timeout", "60")
    assert code == 6
    monkeypatch.undo()
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 1, (out, err)
    assert "waiting for confirmation" in err
    # the user can finish it by hand
    code, out, err = run(site, capsys, "confirm", str(site.path))
    assert code == 0, err
    code, out, err = run(site, capsys, "plan", str(site.path))
    # every router was armed and verified, then the mother's confirm failed: dsl was rolled back
    # with it (and says so), the mother waited for the manual confirm
    assert code == 2, err
    assert "mother: up to date" in out and "dsl (uplink):" in out
    assert "note: dsl rolled back an unconfirmed deploy at" in err


def test_unreachable_router_is_one_clear_line(router_factory, tmp_path, capsys):
    site = start_site(router_factory, tmp_path, ["dsl"])
    site.routers["dsl"].stop()
    t0 = time.monotonic()
    code, out, err = run(site, capsys, "deploy", str(site.path), "--yes")
    assert code == 4
    assert time.monotonic() - t0 < 15
    lines = [line for line in err.splitlines() if line.startswith("mwanctl: error:")]
    assert len(lines) == 1 and lines[0].startswith("mwanctl: error: dsl:"), err
    assert "nothing" in out or site.routers["mother"].config_text("mwan3").count("mw_") == 0


def test_unknown_host_key_refused_then_accepted_on_request(router_factory, tmp_path, capsys):
    site = start_site(router_factory, tmp_path, ["dsl"])
    site.known_hosts.write_text("")
    code, out, err = run(site, capsys, "plan", str(site.path))
    assert code == 4 and "unknown host key" in err
    code, out, err = run(site, capsys, "plan", str(site.path), "--accept-new-host-key")
    assert code == 2, err
    assert site.known_hosts.read_text().count("ssh-") + site.known_hosts.read_text().count("ecdsa") >= 1
