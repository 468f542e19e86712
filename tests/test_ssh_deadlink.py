"""A management link cut in the middle of a deploy (no FIN, no RST: packets just vanish) is
noticed within seconds, and afterwards mwanctl says what the router itself recorded: still
pending with N s left, or rolled back at a time (its `last-rollback` file), never a guess.

The cut is an nft table in this machine's root namespace that drops TCP to and from one test
router's port on 127.0.0.1 (nothing else matches it); it is removed in every case."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from mwanctl.cli import main

try:
    from tests.e2e import start_site
except ImportError:  # pragma: no cover
    from e2e import start_site  # type: ignore[no-redef]

pytestmark = [pytest.mark.ssh]


@contextmanager
def cut_link(port: int) -> Iterator[Any]:
    table = f"mwtest_cut_{os.getpid()}_{port}"
    state = {"on": False}

    def on() -> None:
        subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
            f"table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n"
            f"  ip daddr 127.0.0.1 tcp dport {port} drop\n  ip saddr 127.0.0.1 tcp sport {port} drop\n }}\n}}\n"))
        state["on"] = True

    def off() -> None:
        if state["on"]:
            subprocess.run(["nft", "delete", "table", "inet", table], check=False, capture_output=True)
            state["on"] = False
    try:
        yield on, off
    finally:
        off()


def test_cut_link_is_detected_in_seconds_and_the_router_says_what_happened(router_factory, tmp_path,
                                                                          capsys, monkeypatch):
    if subprocess.run(["nft", "list", "tables"], capture_output=True).returncode != 0:
        pytest.skip("nft not usable here")
    site = start_site(router_factory, tmp_path, ["dsl"], confirm_timeout=30)
    mother = site.routers["mother"]
    before = mother.config_text("network")
    from mwanctl.transports import ssh
    real_apply = ssh.SshTransport.apply
    with cut_link(mother.port) as (on, off):
        def apply(self: Any, plan: Any, timeout: int) -> None:
            if self.router == "mother":
                # the cut lands while the router is still applying (a slow mwan3 reload)
                mother.write("/etc/mwtest/slow_mwan3", "3")
                threading.Timer(1.0, on).start()
            real_apply(self, plan, timeout)
        monkeypatch.setattr(ssh.SshTransport, "apply", apply)
        t0 = time.monotonic()
        code = main(site.argv("deploy", str(site.path), "--yes"))
        took = time.monotonic() - t0
        out, err = capsys.readouterr()
        print(err, f"deploy returned after {took:.1f} s")
        assert code == 6, err
        line = next(ln for ln in err.splitlines() if ln.startswith("mwanctl: error: mother:"))
        assert "connection lost during apply" in line, line
        assert "cannot read mother now" in line and "by itself" in line
        assert took < 40          # keepalive: seconds, not the 120 s command timeout
        off()
        monkeypatch.setattr(ssh.SshTransport, "apply", real_apply)
        # the link is back: the router says it is still pending, and for how long
        code = main(site.argv("plan", str(site.path)))
        out, err = capsys.readouterr()
        m = re.search(r"rolls it back in (\d+) s", out + err)
        # the window: confirm 30 s + the tunnel check's 25 s, from when the apply finished
        assert m and 0 < int(m.group(1)) <= 55, out + err
        deadline = time.monotonic() + int(m.group(1)) + 15
        # the restore copies the files back first, then reloads, records and unlocks
        while time.monotonic() < deadline and (mother.config_text("network") != before
                                               or mother.exists("/etc/mwanctl/pending")):
            time.sleep(1)
        assert mother.config_text("network") == before
        code = main(site.argv("plan", str(site.path)))
        out, err = capsys.readouterr()
        assert "note: mother rolled back an unconfirmed deploy at" in err, err
