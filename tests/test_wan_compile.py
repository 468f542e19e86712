"""The uplink WAN section: every option it writes is one netifd's handler for the protocol reads
(tests/data/netifd_proto_handlers.json, copied from the upstream handlers), secrets stay out of
messages and plans, the MTU rules, and the router facts about installed handlers."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from mwanctl.compile import schema
from mwanctl.compile.templates import Templates
from mwanctl.compile.wan import (
    MISSING,
    PRESENT,
    UNKNOWN,
    check_tunnel_mtu,
    check_wan,
    derived_tunnel_mtu,
    handler_state,
    tunnel_mtu_limit,
    wan_sections,
)
from mwanctl.errors import Diagnostic, Location, TopologyError
from mwanctl.topology.model import SecretRef, Wan
from mwanctl.transports.base import mask_secrets
from mwanctl.uci.model import UciPackage
from mwanctl.uci.render import export
from mwanctl.wansecrets import resolve

FACTS = json.loads((Path(__file__).parent / "data" / "netifd_proto_handlers.json").read_text())
PW = SecretRef(env="WAN_PW", path="uplinks.dsl.wan.password_env")
PIN = SecretRef(env="WAN_PIN", path="uplinks.lte.wan.pin_env")

EXAMPLES = {
    "dhcp": Wan(proto="dhcp", device="wan", dns=("9.9.9.9",), peerdns=False, mtu=1500, metric=5),
    "static": Wan(proto="static", device="eth1", address=ipaddress.IPv4Interface("192.0.2.10/24"),
                  gateway=ipaddress.IPv4Address("192.0.2.1"), dns=("192.0.2.53",)),
    "pppoe": Wan(proto="pppoe", device="eth0.7", username="user@isp", password=PW, ac="AC1",
                 service="internet", mtu=1492),
    "qmi": Wan(proto="qmi", device="/dev/cdc-wdm0", apn="internet.example", pin=PIN, auth="chap",
               username="web", password=PW, ip_type="ipv4v6", mtu=1430),
    "modemmanager": Wan(proto="modemmanager", device="/sys/devices/platform/1e1c0000.xhci/usb1/1-1",
                        apn="internet", pin=PIN, auth="both", username="web", password=PW,
                        ip_type="ipv4"),
}
SECRETS = {"password": "s3cret pass", "pincode": "1234"}


def _defaults() -> set[str]:
    return set(FACTS["defaults"])


def test_the_option_table_is_the_upstream_handlers_declarations() -> None:
    for proto, opts in FACTS["handlers"].items():
        declared = set(opts) - {"defaults"} | (_defaults() if "defaults" in opts else set())
        assert schema.NETIFD_PROTO_OPTIONS[proto] == declared, proto
    for proto, opts in FACTS["list_options"].items():
        assert set(opts) <= schema.list_options("network", "interface"), proto


@pytest.mark.parametrize("proto", sorted(EXAMPLES))
def test_every_written_option_is_read_by_the_handler(proto: str) -> None:
    wan = EXAMPLES[proto]
    secrets = {k: v for k, v in SECRETS.items() if k in wan.secrets}
    secs = wan_sections(Templates(), wan, secrets if proto not in ("qmi", "modemmanager")
                        else {"password": "nospace", "pincode": "1234"})
    assert [s.name for s in secs] == ["wan"] and secs[0].type == "interface"
    opts = secs[0].options
    assert opts["proto"] == proto and opts["device"] == wan.device
    upstream = set(FACTS["handlers"][proto]) - {"defaults"}
    upstream |= _defaults() | set(FACTS["interface"]) | set(FACTS["device"])
    assert set(opts) <= upstream, set(opts) - upstream
    for opt, value in opts.items():
        is_list = opt in FACTS["list_options"].get(proto, []) or opt == "dns"
        assert isinstance(value, tuple) == is_list, opt


def test_the_protocol_words_are_the_handlers() -> None:
    qmi = wan_sections(Templates(), EXAMPLES["qmi"], {"password": "nospace", "pincode": "1234"})[0].options
    assert qmi["pdptype"] == "ipv4v6" and qmi["auth"] == "chap" and qmi["pincode"] == "1234"
    mm = wan_sections(Templates(), EXAMPLES["modemmanager"], {"password": "x", "pincode": "1234"})[0].options
    assert mm["allowedauth"] == ("pap", "chap") and mm["iptype"] == "ipv4" and "auth" not in mm
    st = wan_sections(Templates(), EXAMPLES["static"], {})[0].options
    assert (st["ipaddr"], st["netmask"], st["gateway"], st["dns"]) == \
        ("192.0.2.10", "255.255.255.0", "192.0.2.1", ("192.0.2.53",))
    dhcp = wan_sections(Templates(), EXAMPLES["dhcp"], {})[0].options
    assert dhcp["peerdns"] == "0" and dhcp["metric"] == "5"
    # PPPoE without `mtu`: nothing written, ppp.sh's own default (1492) applies
    bare = wan_sections(Templates(), Wan(proto="pppoe", device="wan"), {})[0].options
    assert bare == {"proto": "pppoe", "device": "wan"}


def test_secrets_are_masked_in_exports() -> None:
    secs = wan_sections(Templates(), EXAMPLES["pppoe"], SECRETS)
    text = export(UciPackage("network", secs))
    assert "s3cret pass" in text          # the router needs the value ...
    masked = mask_secrets(text)
    assert "s3cret" not in masked and "option password <hidden>" in masked   # ... messages never


def test_plan_shows_secrets_hidden() -> None:
    from mwanctl.plan import _fmt
    assert _fmt("password", "s3cret") == "<hidden>" and _fmt("pincode", "1234") == "<hidden>"


# --- validation ------------------------------------------------------------------------------------

def _rules(diags: list[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.field, d.rule) for d in diags]


def test_valid_examples_pass() -> None:
    for name, wan in EXAMPLES.items():
        assert check_wan("x", wan) == [], name


def test_fields_of_another_protocol_are_refused() -> None:
    loc = Location("t.yaml", 9, 7)
    diags = check_wan("dsl", Wan(proto="dhcp", device="wan", apn="internet", username="u"), {"apn": loc})
    assert _rules(diags) == [("uplinks.dsl.wan.apn", "MW020"), ("uplinks.dsl.wan.username", "MW020")]
    assert diags[0].location == loc and "only by modemmanager, qmi" in diags[0].message
    mm = check_wan("lte", Wan(proto="modemmanager", device="/sys/devices/x", mtu=1400))
    assert _rules(mm) == [("uplinks.lte.wan.mtu", "MW020")] and "bearer" in mm[0].message


@pytest.mark.parametrize("wan,field", [
    (Wan(proto="static", device="wan"), "address"),
    (Wan(proto="static", device="wan", address=ipaddress.IPv4Interface("192.0.2.10/24"),
         gateway=ipaddress.IPv4Address("198.51.100.1")), "gateway"),
    (Wan(proto="static", device="wan", address=ipaddress.IPv4Interface("192.0.2.10/24"),
         gateway=ipaddress.IPv4Address("192.0.2.10")), "gateway"),
    (Wan(proto="qmi", device="cdc-wdm0"), "device"),
    (Wan(proto="modemmanager", device="/dev/cdc-wdm0"), "device"),
    (Wan(proto="dhcp", device="/dev/eth0"), "device"),
    (Wan(proto="dhcp", device="averyveryverylongname"), "device"),
    (Wan(proto="dhcp", device="wan", interface="mw_x"), "interface"),
    (Wan(proto="dhcp", device="wan", interface="lan"), "interface"),
    (Wan(proto="pppoe", device="wan", password=PW), "password_env"),
    (Wan(proto="qmi", device="/dev/cdc-wdm0", apn="my apn"), "apn"),
    (Wan(proto="modemmanager", device="/sys/devices/x", apn="a,b"), "apn"),
    (Wan(proto="qmi", device="/dev/cdc-wdm0", username="a b"), "username"),
    (Wan(proto="modemmanager", device="/sys/devices/x", username="a,b"), "username"),
])
def test_bad_blocks_are_refused(wan: Wan, field: str) -> None:
    assert _rules(check_wan("u", wan)) == [(f"uplinks.u.wan.{field}", "MW020")]


def test_tunnel_mtu_from_the_wan() -> None:
    pppoe = Wan(proto="pppoe", device="wan")
    assert tunnel_mtu_limit(pppoe) == 1412            # 1492 - 80 (IPv6 outer header)
    assert derived_tunnel_mtu(pppoe, 1420) == 1412
    assert derived_tunnel_mtu(Wan(proto="dhcp", device="wan"), 1420) == 1420
    assert derived_tunnel_mtu(Wan(proto="qmi", device="/dev/cdc-wdm0", mtu=1430), 1420) == 1350
    assert derived_tunnel_mtu(None, 1420) == 1420
    assert derived_tunnel_mtu(Wan(proto="dhcp", device="wan", mtu=9000), 1420) == 1420   # never above the default
    loc = Location("t.yaml", 12, 14)
    [d] = check_tunnel_mtu("dsl", pppoe, 1420, "uplinks.dsl.tunnel.mtu", loc)
    assert (d.rule, d.location, d.severity) == ("MW021", loc, "error")
    assert "at most 1492 (pppoe default) - 80 = 1412" in d.message
    assert check_tunnel_mtu("dsl", pppoe, 1412, "uplinks.dsl.tunnel.mtu", loc) == []
    [small] = check_tunnel_mtu("lte", Wan(proto="qmi", device="/dev/cdc-wdm0", mtu=1300), None, "x", None)
    assert small.rule == "MW021" and "at least 1360" in small.message


# --- what the router has ---------------------------------------------------------------------------

GET_PROTO_HANDLERS = json.dumps({"dhcp": {"no_device": False}, "static": {}, "ppp": {}, "wireguard": {}})


def test_handler_state_from_get_proto_handlers() -> None:
    assert handler_state("pppoe", GET_PROTO_HANDLERS) == MISSING      # ppp.sh without its plugin
    assert handler_state("dhcp", GET_PROTO_HANDLERS) == PRESENT
    assert handler_state("static", None) == PRESENT                   # netifd's own
    assert handler_state("qmi", "ERROR: Access denied") == UNKNOWN
    assert handler_state("qmi", "not json") == UNKNOWN
    assert handler_state("qmi", "{}") == UNKNOWN
    assert handler_state("qmi", json.dumps({"qmi": {}, "dhcp": {}})) == PRESENT


# --- secrets ---------------------------------------------------------------------------------------

def test_secrets_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("1234\n")
    topo = tmp_path / "site.yaml"
    wans = {"dsl": Wan(proto="pppoe", device="wan", username="u", password=PW),
            "lte": Wan(proto="qmi", device="/dev/cdc-wdm0", pin=SecretRef(file="pin", path="f"))}
    got = resolve(wans, str(topo), {"WAN_PW": "pass word"})
    assert got == {"dsl": {"password": "pass word"}, "lte": {"pincode": "1234"}}


def test_missing_and_bad_secrets_name_the_source_never_the_value(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("12a4-zzvalue\n")
    loc = Location("site.yaml", 7, 9)
    wans = {"dsl": Wan(proto="pppoe", device="wan", username="u",
                       password=SecretRef(env="NOPE", path="uplinks.dsl.wan.password_env", loc=loc)),
            "lte": Wan(proto="qmi", device="/dev/cdc-wdm0", pin=SecretRef(file="pin", path="uplinks.lte.wan.pin_file"),
                       username="u", password=SecretRef(env="QPW", path="uplinks.lte.wan.password_env")),
            "mm": Wan(proto="modemmanager", device="/sys/devices/x",
                      pin=SecretRef(file="absent", path="uplinks.mm.wan.pin_file"))}
    with pytest.raises(TopologyError) as e:
        resolve(wans, str(tmp_path / "site.yaml"), {"QPW": "has space*"})
    diags = e.value.diagnostics
    assert [(d.field, d.rule) for d in diags] == [
        ("uplinks.dsl.wan.password_env", "MW023"), ("uplinks.lte.wan.password_env", "MW023"),
        ("uplinks.lte.wan.pin_file", "MW023"), ("uplinks.mm.wan.pin_file", "MW023")]
    assert diags[0].location == loc and "NOPE is not set" in diags[0].message
    assert "qmi.sh" in diags[1].message and "4 to 8 digits" in diags[2].message
    assert "cannot read file absent" in diags[3].message
    text = " ".join(str(d) for d in diags)
    assert "zzvalue" not in text and "has space" not in text


def test_wan_state_from_the_interface_dump() -> None:
    from mwanctl.wanverify import wan_state
    dump = json.dumps({"interface": [
        {"interface": "lan", "up": True},
        {"interface": "wan", "up": False, "pending": True, "errors": [{"subsystem": "pppoe", "code": "AUTH_FAILED"}]},
        {"interface": "fiber", "up": True}]})
    assert wan_state(dump, "fiber") == (True, "")
    assert wan_state(dump, "wan") == (False, "netifd reports wan down (still connecting): AUTH_FAILED")
    assert wan_state(dump, "lte") == (False, "netifd has no interface lte")
    assert wan_state("ERROR: Access denied", "wan")[0] is None
    assert wan_state("[]", "wan")[0] is None and wan_state(None, "wan")[0] is None
