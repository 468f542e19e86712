"""DNS that survives an uplink, on real tunnels: a LAN client keeps getting answers while one
uplink is cut, and `status`'s dns probe says which upstream answers.

The lab is tests/dns_lab.py's (real dnsmasq as the mother's resolver and as two upstream
resolvers behind real wireguard-go tunnels, mwanctl's compiled mwan3 config, mwan3track's loop).
Only addresses inside namespaces the test made are used.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import mwanctl.topology  # noqa: F401  (tracking imports the topology package first)
from mwanctl.dnsview import PROBE_NAME, parse_probe

try:
    from tests import netlab
    from tests.dns_lab import UPSTREAMS, client, counter, dns_probe, dns_site, records
    from tests.polling import wait_for
    from tests.tracker_lab import TrackerLab
except ImportError:  # pragma: no cover
    import netlab  # type: ignore[no-redef]
    from dns_lab import UPSTREAMS, client, counter, dns_probe, dns_site, records  # type: ignore[no-redef]
    from polling import wait_for  # type: ignore[no-redef]
    from tracker_lab import TrackerLab  # type: ignore[no-redef]

pytestmark = pytest.mark.netns


@pytest.fixture
def dlab(tmp_path: Path):
    why = netlab.skip_reason() or (None if shutil.which("dnsmasq") else "needs dnsmasq")
    if why:
        pytest.skip(why)
    with netlab.Lab() as lab, dns_site(lab, tmp_path) as tl:
        yield tl


def test_dns_keeps_answering_while_an_uplink_is_cut(dlab: TrackerLab, tmp_path: Path) -> None:
    tl = dlab
    # before: every query answered at once, the forwards spread over both uplinks
    c = client(tl, tmp_path, 30, 0.1, "before")
    assert c.wait(timeout=60) == 0
    before = records(tmp_path, "before")
    assert [r["tries"] for r in before] == [1] * 30, before
    assert all(r["answers"] == 1 and r["rcode"] == 0 for r in before)
    n1, n2 = counter(tl.lab, "up1"), counter(tl.lab, "up2")
    assert n1 > 0 and n2 > 0, (n1, n2)            # each server on its own uplink: both carried forwards

    view = parse_probe(dns_probe(tl, tmp_path))
    assert [(u.server, u.answered, u.rule) for u in view.upstreams] == [
        (UPSTREAMS[0], True, "mw_dns1"), (UPSTREAMS[1], True, "mw_dns2")]
    assert view.problems == ()

    # cut up1's upstream (its tunnel stays up: only tracking can see it)
    c = client(tl, tmp_path, 60, 0.2, "during")
    time.sleep(1.0)
    t_cut = tl.cut("up1")
    assert wait_for(lambda: any(ln.split()[1:] == ["disconnected", "mw_up1"] for ln in tl.hotplug_log()), 20)
    t_noticed = time.time()

    def rebuilt() -> bool:   # the stand-in logs "rebuilt" once the emulation's new policy is live
        log = [ln.split()[1:] for ln in tl.hotplug_log()]
        return ["disconnected", "mw_up1"] in log and ["rebuilt", "mw_up1"] in log[log.index(["disconnected", "mw_up1"]):]
    assert wait_for(rebuilt, 20)
    t_rebuilt = time.time()
    time.sleep(0.3)                                 # forwards already in flight land
    n1_after = counter(tl.lab, "up1")
    assert c.wait(timeout=120) == 0
    during = records(tmp_path, "during")
    assert len(during) == 60
    lost = [r for r in during if r["tries"] == 0]
    assert lost == [], lost                         # every query got an answer
    # ... at its first try, even before mwan3 noticed: dnsmasq asked both servers, and the
    # server whose policy prefers up2 answered
    assert [r for r in during if r["tries"] != 1] == []
    settled = [r for r in during if r["t"] - r["ms"] / 1000 > t_rebuilt + 0.3]
    assert len(settled) >= 10 and all(r["tries"] == 1 for r in settled), settled
    assert counter(tl.lab, "up1") == n1_after      # no forward took the dead uplink any more
    retried = [r for r in during if r["tries"] > 1]
    print(f"\ncut→noticed {t_noticed - t_cut:.2f} s, policy rebuilt {t_rebuilt - t_noticed:.2f} s later; "
          f"{len(retried)} of {len(during)} queries needed a retry")

    # status: both upstreams answer, through the uplink that is left
    view = parse_probe(dns_probe(tl, tmp_path))
    assert [(u.server, u.answered) for u in view.upstreams] == [(UPSTREAMS[0], True), (UPSTREAMS[1], True)]
    assert view.problems == ()
    log = (tmp_path / "upstream.log").read_text()
    assert PROBE_NAME in log                         # the probe's question reached the upstreams


def test_status_probe_reports_dead_upstreams(dlab: TrackerLab, tmp_path: Path) -> None:
    """With every uplink cut, the probe says no upstream answers (within its 3 s)."""
    tl = dlab
    for u in tl.uplinks:
        tl.cut(u)
    t0 = time.monotonic()
    view = parse_probe(dns_probe(tl, tmp_path))
    took = time.monotonic() - t0
    assert [(u.server, u.answered) for u in view.upstreams] == [(UPSTREAMS[0], False), (UPSTREAMS[1], False)]
    assert "no upstream DNS server answers" in view.problems
    assert took < 10, took
