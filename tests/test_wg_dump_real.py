"""What real ``wg show all dump`` output looks like, taken from two live tunnels.

Why: the status code will parse this output from routers; this pins the layout on real output
from wireguard-go + wg (no parser involved), and ``netlab.capture_two_tunnel_dump()`` hands the
same kind of sample to a parser test. Layout (one line per interface, then one per peer; fields
separated by a single TAB; ``(none)``/``off``/``0`` for unset values)::

    <ifname> <private-key> <public-key> <listen-port> <fwmark|off>
    <ifname> <public-key> <preshared-key|(none)> <endpoint|(none)> <allowed-ips,comma-separated|(none)>
             <latest-handshake-unix-seconds|0> <rx-bytes> <tx-bytes> <keepalive-seconds|off>

Sample (the mother after pinging through both tunnels; keys shortened here)::

    wg2  cMlmk1…=  Pt3m9n…=  51822  off
    wg2  IK25q9…=  (none)  172.16.2.1:51820  0.0.0.0/0  1795306207  860  1096  25
    wg1  wMafDr…=  NgLTuX…=  51821  off
    wg1  B9zDej…=  (none)  172.16.1.1:51820  0.0.0.0/0  1795306207  3676  3912  25

and an uplink (no endpoint configured; the mother's address was learned from its handshake)::

    wg0  iIWogP…=  B9zDej…=  51820  off
    wg0  NgLTuX…=  (none)  172.16.1.2:51821  10.101.0.2/32  1795306207  3764  3676  off

The second column of an interface line IS the private key: the project must never print it.
Set ``MWT_SAVE_WG_DUMP=<dir>`` to have this test write the real dumps there.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

try:
    from tests import netlab
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import netlab  # type: ignore[no-redef]

pytestmark = pytest.mark.netns

KEY_RE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


@pytest.fixture(scope="module")
def sample() -> netlab.TwoTunnelSample:
    why = netlab.skip_reason()
    if why:
        pytest.skip(why)
    s = netlab.capture_two_tunnel_dump()
    out = os.environ.get("MWT_SAVE_WG_DUMP")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for host, text in s.dumps.items():
            Path(out, f"wg-show-all-dump-{host}.txt").write_text(text)
    return s


def _rows(text: str) -> list[list[str]]:
    """The dump split into fields (never shown in an assertion: it holds private keys)."""
    well_terminated = text.endswith("\n") and "\r" not in text
    assert well_terminated, "dump lines end in LF"
    return [line.split("\t") for line in text.splitlines()]


def _is_key(s: str) -> bool:
    return bool(KEY_RE.fullmatch(s)) and len(base64.b64decode(s)) == 32


def test_column_layout_of_every_line(sample: netlab.TwoTunnelSample) -> None:
    for host, text in sample.dumps.items():
        rows = _rows(text)
        assert {len(r) for r in rows} == {5, 9}, host
        assert all(" " not in field for r in rows for field in r), "fields are TAB-separated only"
        # an interface line comes first and precedes its own peers
        current = None
        for r in rows:
            if len(r) == 5:
                current = r[0]
            else:
                assert r[0] == current, f"{host}: peer line outside its interface block"


def test_interface_lines(sample: netlab.TwoTunnelSample) -> None:
    priv_of = {"wg1": sample.keys["m1"], "wg2": sample.keys["m2"]}
    ifaces = {r[0]: r for r in _rows(sample.mother) if len(r) == 5}
    assert sorted(ifaces) == ["wg1", "wg2"]
    for name, (_ifname, private, public, port, fwmark) in ifaces.items():
        # column 2 is the private key (compared as a bool: a failure must not print it)
        holds_private = private == priv_of[name].private
        assert holds_private, f"{name}: column 2 is not the private key"
        assert _is_key(public) and public == priv_of[name].public
        assert port == str(sample.listen_ports[name])
        assert fwmark == "off"


def test_peer_lines(sample: netlab.TwoTunnelSample) -> None:
    peers = {r[0]: r for r in _rows(sample.mother) if len(r) == 9}
    for n, ifname in ((1, "wg1"), (2, "wg2")):
        _, public, psk, endpoint, allowed, handshake, rx, tx, keepalive = peers[ifname]
        assert public == sample.keys[f"up{n}"].public
        assert psk == "(none)"
        assert endpoint == f"172.16.{n}.1:51820"
        assert allowed == "0.0.0.0/0"
        assert int(handshake) > 1_600_000_000  # unix seconds of a handshake that happened
        assert int(rx) > 0 and int(tx) > 0  # the pings went through
        assert keepalive == "25"

    up1 = _rows(sample.dumps["up1"])
    peer = next(r for r in up1 if len(r) == 9)
    assert peer[1] == sample.keys["m1"].public
    assert peer[3] == "172.16.1.2:51821"  # learned from the mother's packets
    assert peer[4] == "10.101.0.2/32"
    assert peer[8] == "off"


def test_gen_keypair_matches_wireguard(sample: netlab.TwoTunnelSample) -> None:
    """wg derived the same public keys from our private keys: gen_keypair is WireGuard's format."""
    for kp in sample.keys.values():
        assert netlab.public_key_of(kp.private) == kp.public
        assert "<hidden>" in repr(kp)
    ifaces = [r for r in _rows(sample.mother) if len(r) == 5]
    assert {r[2] for r in ifaces} == {sample.keys["m1"].public, sample.keys["m2"].public}


def test_two_tunnel_dump_helper_returns_the_mothers_dump() -> None:
    why = netlab.skip_reason()
    if why:
        pytest.skip(why)
    rows = _rows(netlab.two_tunnel_dump())
    assert sorted(r[0] for r in rows if len(r) == 5) == ["wg1", "wg2"]
    assert len([r for r in rows if len(r) == 9]) == 2
