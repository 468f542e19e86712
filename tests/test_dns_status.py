"""`status` with `dns:`: the dns probe's view in the table, the JSON and the exit code (the probe
itself runs on real dnsmasq in tests/test_dns_netns.py)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from mwanctl.status import OK, WARNING, exit_code, render_table, to_json
from mwanctl.status.poll import mother_probes
from mwanctl.topology import parse_topology

try:
    from tests.test_status import EXP, build, probes
except ImportError:  # pragma: no cover
    from test_status import EXP, build, probes  # type: ignore[no-redef]

from mwanctl.status import build_status

DOC = Path(__file__).parent.parent / "docs" / "status-json.md"
WITH_DNS = replace(EXP, dns_servers=("1.1.1.1", "9.9.9.9"))
GOOD = """server 1.1.1.1
server 9.9.9.9
noresolv
rule mw_dns1 1.1.1.1 mw_dns1_p
rule mw_dns2 9.9.9.9 mw_dns2_p
rule mw_default_v4 0.0.0.0/0 mw_balanced
answer 1.1.1.1 ok 2
answer 9.9.9.9 fail 300
"""


def _status(dns_text: str | None, exp=WITH_DNS):
    p = probes()
    if dns_text is not None:
        p["dns"] = dns_text
    return build_status(exp, p)


def _table(site) -> str:
    buf = io.StringIO()
    render_table(site, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


def test_one_upstream_answering_is_fine() -> None:
    site = _status(GOOD)
    assert site.dns is not None and exit_code(site) == OK, site.problems
    assert "DNS: 1.1.1.1 answers (20 ms), 9.9.9.9 no answer" in _table(site)
    doc = to_json(site)
    assert doc["dns"] == {"noresolv": True, "upstreams": [
        {"server": "1.1.1.1", "answered": True, "ms": 20, "rule": "mw_dns1", "policy": "mw_dns1_p"},
        {"server": "9.9.9.9", "answered": False, "ms": None, "rule": "mw_dns2", "policy": "mw_dns2_p"}]}
    text = DOC.read_text()
    for key in ("dns", "noresolv", "upstreams", "server", "answered", "ms", "rule", "policy"):
        assert f"`{key}`" in text, key


def test_no_answer_or_disagreement_degrades() -> None:
    site = _status(GOOD.replace("ok 2", "fail 300"))
    assert exit_code(site) == WARNING
    assert [p.message for p in site.problems if p.kind == "dns"] == ["no upstream DNS server answers"]
    site = _status(GOOD.replace("rule mw_dns2 9.9.9.9 mw_dns2_p\n", ""))
    assert exit_code(site) == WARNING
    assert any("9.9.9.9, but no mwan3 rule" in p.message for p in site.problems)
    site = _status(GOOD.replace("server 9.9.9.9\n", "").replace("answer 9.9.9.9 fail 300\n", ""))
    assert [p.kind for p in site.problems] == ["mismatch"] and "topology says 1.1.1.1, 9.9.9.9" in site.problems[0].message


def test_a_probe_that_cannot_run_is_only_a_warning() -> None:
    site = _status("ERROR: probe dns is not available over ubus")
    assert site.dns is None and exit_code(site) == OK
    assert [(p.kind, p.severity) for p in site.problems] == [("probe-failed", "warning")]


def test_without_dns_nothing_changes() -> None:
    site = _status(GOOD, exp=EXP)
    assert site.dns is None and "dns" not in to_json(site) and "DNS:" not in _table(site)
    assert to_json(build()) == to_json(_status(None, exp=EXP))


def test_the_mother_is_asked_only_with_dns() -> None:
    base = "site: x\nmother: {host: 192.0.2.1}\nuplinks: [{name: a, host: 192.0.2.2}]\n"
    assert "dns" not in mother_probes(parse_topology(base))
    assert "dns" in mother_probes(parse_topology(base + "dns: {}\n"))
    assert re.search(r"nslookup", (Path(__file__).parent.parent / "mwanctl/remote/query.sh").read_text())


def test_local_transport_runs_the_same_shell_probe() -> None:
    """On the mother itself (transport local) the probe is query.sh's, run by `sh`: here, with no
    dnsmasq config generated on this machine, it says so."""
    import glob

    import pytest

    from mwanctl.transports.local import _shell_probe

    if glob.glob("/var/etc/dnsmasq.conf.*"):
        pytest.skip("this machine has a generated dnsmasq config")
    assert _shell_probe("dns") == "ERROR: no dnsmasq config"
