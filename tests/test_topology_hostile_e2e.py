"""Hostile text that validation accepts (descriptions are free text) goes through the real path:
compile -> SSH (dropbear) -> busybox sh on the router -> `uci batch` (the stand-in) -> the config
file. It must be stored byte for byte, read back the same by `uci get`, leave nothing to do on the
next plan, and run nothing: the canary files the strings try to create must not exist.

What validation refuses (newlines, NUL, control characters) is covered by the hostile corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.shellquote import sh_quote
from mwanctl.uci.parse import parse

try:
    from tests.e2e import start_site
except ImportError:  # pragma: no cover
    from e2e import start_site  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh

CANARIES = [f"/tmp/h1canary{i}" for i in range(1, 8)]
HOSTILE = {
    "dsl": "it's $(touch /tmp/h1canary1) and `touch /tmp/h1canary2` ; touch /tmp/h1canary3 | & > <",
    "lte": "'\\''; touch /tmp/h1canary4; echo '\" \"; touch /tmp/h1canary5; \" \\ \\n \\0 $HOME ${PATH} %s %n * ? [a] ~root",
    "sat": "Ünïcödé ✓ 🙂 עברית \u202ertl\u202c \u200bzero-width $(touch /tmp/h1canary6) -n -e "
           "`touch /tmp/h1canary7` '' \"\"",
}


def _yaml_single(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def test_hostile_descriptions_reach_uci_byte_exact_and_run_nothing(router_factory, tmp_path, capsys) -> None:
    site = start_site(router_factory, tmp_path, list(HOSTILE),
                      uplink_extra={n: f"description: {_yaml_single(v)}" for n, v in HOSTILE.items()})
    code = main(site.argv("deploy", str(site.path), "--yes"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    mother = site.routers["mother"]
    stored = parse(mother.config_text("network"), "network")
    raw = mother.config_bytes("network") or b""
    for name, text in HOSTILE.items():
        assert stored.get(f"mw_{name}_peer").options["description"] == text
        # the file itself holds exactly the UTF-8 bytes, single-quoted the way uci writes them
        assert ("option description '" + text.replace("'", "'\\''") + "'").encode() in raw
        got = mother.run(f"uci get network.mw_{name}_peer.description")
        assert got.returncode == 0 and got.stdout == text + "\n", (got.stdout, got.stderr)
        # and a shell round trip of the stored value (what a router-side script would do) is exact
        echoed = mother.run(f"v=$(uci get network.mw_{name}_peer.description); printf '%s' \"$v\"")
        assert echoed.stdout == text
    for r in site.routers.values():
        for canary in CANARIES:
            assert not r.exists(canary), f"{canary} exists on {r.name}: a string ran as a command"
    for canary in CANARIES:
        assert not Path(canary).exists(), f"{canary} exists on the workstation"
    # what is stored is what was planned: nothing left to do
    assert main(site.argv("plan", str(site.path))) == 0, capsys.readouterr().err


def test_sh_quote_round_trips_every_hostile_string_through_busybox(tmp_path) -> None:
    """The one shell-quoting function, fed each string (and the tricky bytes validation lets through)
    and run by busybox sh: the argument arrives unchanged and nothing runs."""
    import subprocess
    busybox = Path("/usr/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox is not installed")
    canary = tmp_path / "ran"
    values = list(HOSTILE.values()) + [f"$(touch {canary})", f"`touch {canary}`", f"';touch {canary};'",
                                       "-n", "-e", "--", "", " ", "*", "~", "$IFS", "\\", "'", '"', "!"]
    for v in values:
        r = subprocess.run([str(busybox), "sh", "-c", "printf '%s' " + sh_quote(v)], capture_output=True)
        assert r.stdout == v.encode(), (v, r.stdout)
    assert not canary.exists()
