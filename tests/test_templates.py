"""UCI blueprints: a user's override directory changes the option sets without touching code,
and an option OpenWrt would silently ignore is refused with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mwanctl.cli import main
from mwanctl.compile import compile_site
from mwanctl.compile.templates import Templates
from mwanctl.errors import TopologyError
from mwanctl.keys import KeyPair, TunnelKeys
from mwanctl.render import package_text
from mwanctl.topology.load import parse_topology
from mwanctl.uci.parse import parse
from mwanctl.uci.quote import valid_value

ROOT = Path(__file__).resolve().parents[1]
TOPO = "site: t\nmother: {host: 192.168.1.1}\nuplinks:\n  - {name: dsl, host: 192.168.1.2}\n"
KEYS = {"dsl": TunnelKeys(0, KeyPair("cHJpdmF0ZS1tb3RoZXItMDAwMDAwMDAwMDAwMDAwMDA=", "pub-mother", "2026-01-01T00:00:00Z"),
                          KeyPair("cHJpdmF0ZS11cGxpbmstMDAwMDAwMDAwMDAwMDAwMDA=", "pub-uplink", "2026-01-01T00:00:00Z"))}


def override(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "tpl"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


def test_override_adds_an_option_and_keeps_other_blueprints(tmp_path: Path) -> None:
    base = (ROOT / "uci_templates" / "network-uplink-tunnel.uci").read_text()
    d = override(tmp_path, "network-uplink-tunnel.uci", base.replace("\toption mtu ${mtu}\n",
                                                                      "\toption mtu ${mtu}\n\toption nohostroute '1'\n"))
    compiled = compile_site(parse_topology(TOPO), KEYS, Templates(d))
    up = compiled.routers["dsl"].sections["network"][0]
    assert up.options["nohostroute"] == "1"
    mother_fw = compiled.routers["mother"].sections["firewall"]
    assert mother_fw[0].options["masq"] == "1"          # not overridden: built-in blueprint


def test_misspelt_option_in_override_is_refused_with_location(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    base = (ROOT / "uci_templates" / "mwan3-interface.uci").read_text()
    d = override(tmp_path, "mwan3-interface.uci", base.replace("list track_ip", "list trackip"))
    with pytest.raises(TopologyError) as exc:
        Templates(d)
    msg = str(exc.value)
    assert "mwan3-interface.uci:5:1" in msg and "`trackip` is not an option" in msg and "track_ip" in msg
    assert main(["--templates", str(d), "validate", str(ROOT / "examples" / "home.yaml")]) == 1
    assert "trackip" in capsys.readouterr().err


def test_list_written_as_option_is_refused(tmp_path: Path) -> None:
    base = (ROOT / "uci_templates" / "mwan3-policy.uci").read_text()
    d = override(tmp_path, "mwan3-policy.uci", base.replace("list use_member", "option use_member"))
    with pytest.raises(TopologyError, match="is a list on OpenWrt"):
        Templates(d)


def test_values_never_pass_through_text_substitution(tmp_path: Path) -> None:
    """A value that looks like template syntax stays one literal value."""
    t = parse_topology(TOPO.replace("host: 192.168.1.2}", "host: 192.168.1.2, description: 'a ${iface} b'}"))
    sec = compile_site(t, KEYS).routers["mother"].sections["network"][1]
    assert sec.options["description"] == "a ${iface} b"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
               min_size=1, max_size=60))
def test_any_accepted_description_survives_render_and_parse(desc: str) -> None:
    """Property: whatever description validation accepts comes back unchanged from the router's
    parser, quotes, `$()`, backslashes and all."""
    assume(desc == desc.strip() and valid_value(desc))
    yaml_value = json.dumps(desc)        # a JSON string is a YAML double-quoted scalar: exact
    try:
        t = parse_topology(TOPO.replace("host: 192.168.1.2}", f"host: 192.168.1.2, description: {yaml_value}}}"))
    except TopologyError:
        assume(False)                                      # rejected with a message: fine
    net = compile_site(t, KEYS).routers["mother"].sections["network"]
    back = parse(package_text("network", net), "network")
    assert back.get("mw_dsl_peer").options["description"] == desc
