"""The proven mother/up1/up2 ``network`` files, brought up the way netifd does, pass traffic.

Why: this is the ground truth the netlab emulation is checked against. The files are the ones real
netifd ran (tests/data/proven); if the lab reads them as netifd does, both tunnels work, and a
single wrong key or port breaks exactly one tunnel. Topology as in the proven setup: the mother
reaches uplink N at 172.16.N.1 over link ``ulN`` (mother side 172.16.N.2/30, uplink side ``lan``).
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mwanctl.uci.model import UciPackage, UciSection, Value

try:
    from tests import netlab
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import netlab  # type: ignore[no-redef]

pytestmark = pytest.mark.netns

PROVEN = Path(__file__).resolve().parent / "data" / "proven"
HOSTS = ("mother", "up1", "up2")


def _load_local(text: str, package: str) -> UciPackage:
    """Just enough of the UCI file syntax for the proven files (stand-in until uci.parse exists)."""
    pkg = UciPackage(package)
    cur: UciSection | None = None
    for raw in text.splitlines():
        words = shlex.split(raw, comments=True)
        if not words:
            continue
        kw, args = words[0], words[1:]
        if kw == "config":
            cur = UciSection(args[0], args[1] if len(args) > 1 else None)
            pkg.sections.append(cur)
        elif kw in ("option", "list") and cur is not None:
            key, val = args[0], args[1] if len(args) > 1 else ""
            if kw == "option":
                cur.options[key] = val
            else:
                old: Value = cur.options.get(key, ())
                cur.options[key] = (*(old if isinstance(old, tuple) else (old,)), val)
        else:
            raise ValueError(f"unexpected UCI line: {raw!r}")
    return pkg


def load_network(text: str) -> UciPackage:
    """The project's parser once it exists, else the local stand-in."""
    try:
        from mwanctl.uci.parse import parse  # type: ignore[import-not-found]
    except ImportError:
        return _load_local(text, "network")
    return parse(text, "network")


def proven_texts(keys: dict[str, netlab.KeyPair]) -> dict[str, str]:
    """The three proven ``network`` files with every ``@..._KEY@``/``@..._PUB@`` filled in."""
    subst = {}
    for who, kp in keys.items():  # who: M1, M2, UP1, UP2
        subst[f"@{who}_KEY@"] = kp.private
        subst[f"@{who}_PUB@"] = kp.public
    texts = {}
    for host in HOSTS:
        text = (PROVEN / host / "network").read_text()
        text = re.sub(r"@[A-Z0-9]+_(?:KEY|PUB)@", lambda m: subst[m.group(0)], text)
        if "@" in text:  # not an assert: pytest would show the text, private keys included
            raise AssertionError(f"unfilled placeholder in {host}/network")
        texts[host] = text
    return texts


@pytest.fixture
def keys() -> dict[str, netlab.KeyPair]:
    return {who: netlab.gen_keypair() for who in ("M1", "M2", "UP1", "UP2")}


@pytest.fixture
def lab(lab: netlab.Lab) -> netlab.Lab:
    """conftest's lab, wired as in tests/data/proven: the mother reaches uplink N over link ulN."""
    lab.wire_two_uplinks()
    return lab


def bring_up(lab: netlab.Lab, texts: dict[str, str]) -> dict[str, list[str]]:
    """Uplinks (listeners) first, then the mother, as the routers would normally boot."""
    return {h: lab.bring_up_wireguard(h, load_network(texts[h])) for h in ("up1", "up2", "mother")}


def tunnel_pings(lab: netlab.Lab, n: int, timeout: float = 8.0) -> tuple[bool, bool]:
    """(mother -> uplink N, uplink N -> mother) over tunnel N, both pinging at once."""
    with ThreadPoolExecutor(2) as pool:  # why: a failing ping waits its full timeout
        there = pool.submit(lab.ping, "mother", f"10.10{n}.0.1", timeout=timeout)
        back = pool.submit(lab.ping, f"up{n}", f"10.10{n}.0.2", timeout=timeout)
        return there.result(), back.result()


def test_proven_files_bring_up_two_working_tunnels(lab: netlab.Lab, keys: dict) -> None:
    up = bring_up(lab, proven_texts(keys))
    assert up == {"mother": ["wg1", "wg2"], "up1": ["wg0"], "up2": ["wg0"]}

    for n in (1, 2):
        assert tunnel_pings(lab, n) == (True, True), f"tunnel {n}"

    # what netifd made of route_allowed_ips + metric on the mother (README: metric 10 / 20)
    mother = lab.routes("mother")
    assert "default dev wg1 proto static scope link metric 10" in mother
    assert "default dev wg2 proto static scope link metric 20" in mother
    assert "10.101.0.0/30 dev wg1 proto kernel scope link metric 10" in mother
    assert "172.16.1.1 dev ul1 proto static scope link" in mother  # endpoint host route
    up1 = lab.routes("up1")
    assert "10.101.0.2 dev wg0 proto static scope link" in up1
    assert not [r for r in up1 if r.startswith("default")]

    # the peer sections reached wireguard as written; `description` was ignored
    dump = lab.wg_dump("mother").splitlines()
    peers = {c[0]: c for c in (line.split("\t") for line in dump) if len(c) == 9}
    assert peers["wg1"][1] == keys["UP1"].public
    assert peers["wg1"][3] == "172.16.1.1:51820"
    assert peers["wg1"][4] == "0.0.0.0/0"
    assert peers["wg1"][8] == "25"
    assert peers["wg2"][1] == keys["UP2"].public
    ifaces = {c[0]: c for c in (line.split("\t") for line in dump) if len(c) == 5}
    assert ifaces["wg1"][2] == keys["M1"].public and ifaces["wg1"][3] == "51821"
    assert ifaces["wg2"][2] == keys["M2"].public and ifaces["wg2"][3] == "51822"
    assert lab.warnings == []


BREAKAGES = {
    # uplink 1 expects a different mother key: the mother's handshake is dropped
    "wrong mother public key on up1": ("up1", "@M1_PUB@", None),
    # the mother addresses the handshake to a key uplink 1 does not have
    "wrong up1 public key on mother": ("mother", "@UP1_PUB@", None),
    # uplink 1 listens where the mother's endpoint_port does not point
    "wrong listen port on up1": ("up1", "option listen_port '51820'", "option listen_port '51829'"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_a_single_breakage_stops_exactly_that_tunnel(lab: netlab.Lab, keys: dict, case: str) -> None:
    """The lab can fail: one wrong value kills tunnel 1 while tunnel 2 (the control) still works."""
    host, old, new = BREAKAGES[case]
    texts = proven_texts(keys)
    if new is None:  # a key placeholder: put some other valid key there
        placeholder_owner = old.strip("@").split("_")[0]
        new = netlab.gen_keypair().public
        old = keys[placeholder_owner].public
    occurrences = texts[host].count(old)  # a plain int: the text holds private keys
    assert occurrences == 1
    texts[host] = texts[host].replace(old, new)
    bring_up(lab, texts)

    # control first: same lab, same timeout, so a "no ping" below is not a slow lab
    assert tunnel_pings(lab, 2, timeout=4) == (True, True)
    assert tunnel_pings(lab, 1, timeout=4) == (False, False)
    dump = [line.split("\t") for line in lab.wg_dump("mother").splitlines()]
    wg1_peer = next(c for c in dump if c[0] == "wg1" and len(c) == 9)
    assert wg1_peer[5] == "0", "no handshake may have completed on the broken tunnel"


def _section(pkg: UciPackage, name: str) -> UciSection:
    sec = pkg.get(name)
    assert sec is not None, name
    return sec


def test_netifd_reading_rules_on_a_varied_proven_config(lab: netlab.Lab, keys: dict) -> None:
    """The proven files with the options netifd reads in their other spellings and cases.

    Covers: ``addresses`` as a whitespace-separated option, IPv6, ``mtu``, ``fwmark``,
    ``preshared_key``, ``defaultroute '0'`` (suppresses only the /0 routes), a disabled peer, a peer
    without ``public_key`` (skipped), ``endpoint_port`` defaulting to 51820 only with a host.
    """
    texts = proven_texts(keys)
    nets = {h: load_network(texts[h]) for h in HOSTS}
    psk = base64.b64encode(os.urandom(32)).decode()

    wg1 = _section(nets["mother"], "wg1")
    wg1.options.update(addresses="10.101.0.2/30  fd01::2/64", mtu="1380", fwmark="0x20000",
                       defaultroute="0")
    up1_peer = _section(nets["mother"], "up1")
    up1_peer.options.update(preshared_key=psk, allowed_ips=("0.0.0.0/0", "::/0", "fd99::/64"))
    nets["mother"].sections += [
        UciSection("wireguard_wg1", "off", {"public_key": netlab.gen_keypair().public,
                                             "disabled": "1", "allowed_ips": ("10.9.9.9/32",)}),
        UciSection("wireguard_wg1", None, {"allowed_ips": ("10.9.9.8/32",)}, anon_id="cfg0a1b2c"),
        UciSection("wireguard_wg1", "portonly", {"public_key": netlab.gen_keypair().public,
                                                  "endpoint_port": "51999",
                                                  "allowed_ips": ("10.9.9.7/32",)}),
    ]
    del _section(nets["mother"], "up2").options["endpoint_port"]  # default 51820 = up2's port

    up1_wg0 = _section(nets["up1"], "wg0")
    up1_wg0.options["addresses"] = ("10.101.0.1/30", "fd01::1/64")
    mother_peer = _section(nets["up1"], "mother")
    mother_peer.options.update(preshared_key=psk, allowed_ips=("10.101.0.2/32", "fd01::2"))

    for h in ("up1", "up2", "mother"):
        lab.bring_up_wireguard(h, nets[h])

    assert tunnel_pings(lab, 1) == (True, True)
    assert lab.ping("mother", "fd01::1") and lab.ping("up1", "fd01::2")
    assert tunnel_pings(lab, 2) == (True, True)

    mother4, mother6 = lab.routes("mother"), lab.routes("mother", family=6)
    assert [r for r in mother4 if r.startswith("default")] == [
        "default dev wg2 proto static scope link metric 20"]  # wg1 has defaultroute '0'
    assert not [r for r in mother6 if r.startswith("default")]  # ::/0 suppressed as well
    assert any(r.startswith("fd99::/64 dev wg1 proto static metric 10") for r in mother6)
    assert "10.9.9.7 dev wg1 proto static scope link metric 10" not in mother4  # no route_allowed_ips
    assert "fd01::2 dev wg0 proto static metric 1024 pref medium" in lab.routes("up1", family=6)
    assert "mtu 1380 " in lab.run("mother", ["ip", "link", "show", "wg1"]).stdout

    rows = [line.split("\t") for line in lab.wg_dump("mother").splitlines()]
    wg1_if = next(r for r in rows if r[0] == "wg1" and len(r) == 5)
    assert wg1_if[4] == "0x20000"
    wg1_peers = {r[1]: r for r in rows if r[0] == "wg1" and len(r) == 9}
    assert len(wg1_peers) == 2  # the disabled and the key-less peer are not there
    up1_row = wg1_peers[keys["UP1"].public]
    psk_in_place = up1_row[2] == psk
    assert psk_in_place, "preshared key column"
    assert up1_row[4].split(",") == ["0.0.0.0/0", "::/0", "fd99::/64"]
    portonly = next(r for k, r in wg1_peers.items() if k != keys["UP1"].public)
    assert portonly[3] == "(none)"  # endpoint_port alone makes no endpoint
    wg2_peer = next(r for r in rows if r[0] == "wg2" and len(r) == 9)
    assert wg2_peer[3] == "172.16.2.1:51820"
    assert lab.warnings == ["[mother] wg1: peer cfg0a1b2c skipped, no public_key"]
