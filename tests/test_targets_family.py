"""Issue 10 item 5: tracking targets per family. IPv4 interfaces track `targets`, the IPv6 aliases
(mw_<uplink>6) and IPv6 WANs `targets6`; an address of the wrong family is a validation error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mwanctl.cli import main
from mwanctl.compile import compile_site
from mwanctl.keys import KeyStore
from mwanctl.site import pool_slots, slot_spec
from mwanctl.topology import parse_topology
from mwanctl.tracking import DEFAULT_TARGETS6

SITE = """\
site: fam
mother:
  host: 192.168.1.1
  wans:
    - {name: wan, weight: 2, metric: 5}
    - {name: wan6, family: ipv6, weight: 2}
uplinks:
  - name: dsl
    host: 192.168.1.2
    ipv6: true
    tracking: {targets: [192.0.2.1, 192.0.2.2], targets6: ["2001:db8:ff::1", "2001:db8:ff::2"]}
  - name: lte
    host: 192.168.1.3
    ipv6: true
tracking:
  targets: [198.51.100.1, 198.51.100.2]
tunnels:
  pool6: fd00:254::/48
"""


def _track_ips(tmp_path: Path, text: str) -> dict[str, tuple[str, list[str]]]:
    topo = parse_topology(text, "t.yaml")
    store = KeyStore.open(topo.site, tmp_path)
    store.ensure(slot_spec(topo), pool_slots(topo))
    compiled = compile_site(topo, store.material([u.name for u in topo.uplinks]))
    out = {}
    for s in compiled.routers[topo.mother.name].sections["mwan3"]:
        if s.type == "interface":
            out[s.name] = (s.options["family"], list(s.options.get("track_ip", ())))
    return out


def test_each_interface_tracks_only_its_own_family(tmp_path: Path) -> None:
    ifaces = _track_ips(tmp_path, SITE)
    assert ifaces["mw_dsl"] == ("ipv4", ["192.0.2.1", "192.0.2.2"])
    assert ifaces["mw_dsl6"] == ("ipv6", ["2001:db8:ff::1", "2001:db8:ff::2"])
    assert ifaces["mw_lte"] == ("ipv4", ["198.51.100.1", "198.51.100.2"])     # inherited targets
    assert ifaces["mw_lte6"] == ("ipv6", list(DEFAULT_TARGETS6))               # documented default
    assert ifaces["wan6"] == ("ipv6", list(DEFAULT_TARGETS6))                  # not the IPv4 targets
    for family, ips in ifaces.values():
        assert all((":" in ip) == (family == "ipv6") for ip in ips), ifaces


@pytest.mark.parametrize("tracking,message", [
    ('{targets: [192.0.2.1, "2001:db8::1"]}',
     "uplinks.dsl.tracking.targets: 2001:db8::1 is IPv6 but the tunnel interface is IPv4"),
    ('{targets6: ["2001:db8::1", 192.0.2.9]}',
     "uplinks.dsl.tracking.targets6: 192.0.2.9 is IPv4 but `targets6` are tracked over IPv6"),
    ("{targets6: []}", "uplinks.dsl.tracking.targets6: empty, so the IPv6 interface would never fail over"),
])
def test_wrong_family_targets_are_refused_with_a_location(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          tracking: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(SITE.replace("tracking: {targets: [192.0.2.1, 192.0.2.2], targets6: "
                              '["2001:db8:ff::1", "2001:db8:ff::2"]}', f"tracking: {tracking}"))
    assert main(["validate", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:11:15: {message}" in err and "Traceback" not in err   # at the `tracking:` value


def test_ipv6_in_targets_of_an_ipv4_wan_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(SITE.replace("{name: wan, weight: 2, metric: 5}",
                              '{name: wan, weight: 2, metric: 5, tracking: {targets: ["2001:db8::1"]}}'))
    assert main(["validate", str(p)]) == 1
    assert "mother.wans.wan.tracking.targets: 2001:db8::1 is IPv6 but this WAN is IPv4" in capsys.readouterr().err


def test_validate_prints_the_ipv6_alias_timing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(SITE.replace('targets6: ["2001:db8:ff::1", "2001:db8:ff::2"]', 'targets6: ["2001:db8:ff::1"]'))
    assert main(["validate", str(p)]) == 0
    out, err = capsys.readouterr()
    assert "dsl (IPv6): tier 1, weight 1, tracking balanced (1 target(s)): outage noticed within 10 s-" in out
    assert "uplinks.dsl.tracking (IPv6): only one tracking target" in err
