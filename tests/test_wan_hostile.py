"""Hostile values in an uplink's `wan:` block: each is refused by `validate` with file:line:col and
a rule id (never written to a router), and a hostile secret by `render` (MW023) without showing it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mwanctl.cli import main

HEAD = "site: s\nmother: {host: 192.168.1.1}\nuplinks:\n  - name: a\n    host: 192.168.1.2\n    wan:\n"
# field -> the rest of a block it is valid in (the field itself is added with the hostile value)
FIELDS = {
    "device": "      proto: dhcp\n",
    "interface": "      proto: dhcp\n      device: wan\n",
    "username": "      proto: pppoe\n      device: wan\n",
    "ac": "      proto: pppoe\n      device: wan\n",
    "service": "      proto: pppoe\n      device: wan\n",
    "apn": "      proto: qmi\n      device: /dev/cdc-wdm0\n",
    "password_env": "      proto: pppoe\n      device: wan\n      username: u\n",
    "password_file": "      proto: pppoe\n      device: wan\n      username: u\n",
    "pin_env": "      proto: qmi\n      device: /dev/cdc-wdm0\n",
    "pin_file": "      proto: qmi\n      device: /dev/cdc-wdm0\n",
    "address": "      proto: static\n      device: wan\n",
    "gateway": "      proto: static\n      device: wan\n      address: 192.0.2.2/24\n",
    "dns": "      proto: dhcp\n      device: wan\n",
}
BAD_TEXT = {"newline": "a\\nb", "nul": "a\\x00b", "tab": "a\\tb", "del": "a\\x7fb", "nel": "a\\x85b",
            "line-separator": "a\\u2028b", "cr": "a\\rb"}
META = {"subshell": "$(reboot)", "backtick": "`halt`", "quote": "a'b", "semicolon": "a; reboot"}
FREE = {"password_file", "pin_file"}      # paths: any printable text is a file name
# one word (no spaces, quotes or backslashes): `$(…)` and backticks are plain characters there, as
# ppp.sh quotes them and an unquoted expansion in qmi.sh does not run them
WORDS = {"username", "ac", "service"}
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): .* \[(?P<rule>MW\d{3})\]$")


def _cases() -> list[tuple[str, str]]:
    out = []
    for field, rest in FIELDS.items():
        meta = {} if field in FREE else {k: v for k, v in META.items() if field not in WORDS or k in ("quote", "semicolon")}
        values = dict(BAD_TEXT) | meta
        for what, v in values.items():
            out.append((f"{field}-{what}", HEAD + rest + f'      {field}: "{v}"\n'))
        out.append((f"{field}-70000", HEAD + rest + f"      {field}: {'x' * 70000}\n"))
    return out


@pytest.mark.parametrize("case,text", _cases(), ids=[c for c, _ in _cases()])
def test_hostile_wan_value_is_refused_with_a_location(case: str, text: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    lines = [ln for ln in err.splitlines()[:-1] if ": warning: " not in ln]
    assert lines, err
    field = case.rsplit("-", 1)[0].removesuffix("-line")
    for ln in lines:
        m = LINE.match(ln)
        assert m and m["file"] == str(path) and len(ln) < 1000, ln
    assert any(f"uplinks.a.wan.{field}" in ln for ln in lines), err


def test_hostile_secret_values_are_refused_at_render_without_being_shown(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(HEAD + "      proto: pppoe\n      device: wan\n      username: u\n      password_env: PW\n")
    for value in ("line1\nLEAKED", "LEAKED\x7f", "x" * 256 + "LEAKED", "", "LEAKED\u2028"):
        monkeypatch.setenv("PW", value)
        assert main(["--state-dir", str(tmp_path / "st"), "render", str(topo), "-o", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert "uplinks.a.wan.password_env: the value from environment variable PW" in err and "[MW023]" in err
        assert "LEAKED" not in err
        assert not (tmp_path / "o").exists()
    # shell and UCI metacharacters are fine in a PPPoE password: ppp.sh quotes it, uci_quote writes it
    monkeypatch.setenv("PW", "a'b $(reboot) `x` ;\"")
    assert main(["--state-dir", str(tmp_path / "st"), "render", str(topo), "-o", str(tmp_path / "o")]) == 0
    text = (tmp_path / "o" / "a" / "etc" / "config" / "network").read_text()
    assert "option password 'a'\\''b $(reboot) `x` ;\"'" in text
    assert (tmp_path / "o" / "a" / "etc" / "config" / "network").stat().st_mode & 0o077 == 0
