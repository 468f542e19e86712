"""The dashboard's machine side against dropbear test routers: /metrics (read back with
prometheus_client's own text parser), /api/status (the same JSON as `mwanctl status --json
--uplinks`), a deploy through the API, history that survives a restart, password login, and the
refusal to listen on a non-loopback address without TLS."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mwanctl.cli import main
from mwanctl.status import SCHEMA
from mwanctl.web.history import History, Retention, Sample
from mwanctl.web.server import WebError, WebOptions, check_listen

try:
    from tests import routers, weblab
except ImportError:  # pragma: no cover
    import routers  # type: ignore[no-redef]
    import weblab  # type: ignore[no-redef]

INTERVAL = 1.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    why = routers.missing_requirements()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("webapi")
    with weblab.lab_site(tmp) as (site, store):
        weblab.feed(site.routers["mother"], "mwan3-status-both-online.json", store)
        servers: list[weblab.WebServer] = []

        def start(*extra: str, env: Any = None) -> weblab.WebServer:
            s = weblab.WebServer([site.path], site.state_dir, tmp / "web.sqlite", INTERVAL, extra, env)
            servers.append(s)
            return s

        try:
            yield {"site": site, "store": store, "start": start, "tmp": tmp}
        finally:
            for s in servers:
                s.stop()


def login(server: weblab.WebServer) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=server.base, timeout=60)
    r = c.get("/site/lab", params={"token": server.token}, follow_redirects=True)
    assert r.status_code == 200
    return c, r.text.split('name=csrf-token content="', 1)[1].split('"', 1)[0]


def metrics(c: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def m(ms: dict, name: str, **labels: str) -> float:
    if "uplink" in labels:
        labels.setdefault("family", "ipv4")
    return ms[(name, tuple(sorted({"site": "lab", **labels}.items())))]


VOLATILE = ("router_uptime",)


def stable(doc: dict[str, Any]) -> dict[str, Any]:
    """The status JSON without what changes between two polls a second apart."""
    doc = json.loads(json.dumps(doc))
    for k in VOLATILE:
        doc.pop(k, None)
    for u in doc["uplinks"]:
        u.pop("since", None)
        if u["wireguard"]:
            u["wireguard"].pop("handshake_age", None)
    return doc


def test_api_status_is_the_status_json_and_metrics_parse(lab, capsys):
    site, store = lab["site"], lab["store"]
    server = lab["start"]()
    c, _ = login(server)
    assert weblab.wait_for(lambda: (d := c.get("/api/status").json())["reachable"] and d["error"] is None, 10)
    api = c.get("/api/status").json()
    assert c.get("/api/status/lab").json()["schema"] == SCHEMA
    code = main(site.argv("status", str(site.path), "--json", "--uplinks"))
    cli = json.loads(capsys.readouterr().out)
    assert stable(api) == stable(cli)
    assert api["exit_code"] == code == 0

    ms = metrics(c)
    assert m(ms, "mwanctl_uplink_up", uplink="a") == 1 and m(ms, "mwanctl_uplink_up", uplink="b") == 1
    assert m(ms, "mwanctl_uplink_state", uplink="a", state="online") == 1
    assert m(ms, "mwanctl_uplink_state", uplink="a", state="offline") == 0
    for r in ("mother", "a", "b"):
        assert m(ms, "mwanctl_router_reachable", router=r) == 1
    assert m(ms, "mwanctl_uplink_receive_bytes_total", uplink="b") == 2000000
    assert m(ms, "mwanctl_uplink_share_ratio", uplink="a", policy="mw_balanced") == pytest.approx(1 / 3, abs=1e-3)
    assert m(ms, "mwanctl_uplink_share_ratio", uplink="b", policy="mw_balanced") == pytest.approx(2 / 3, abs=1e-3)
    assert 0 <= m(ms, "mwanctl_uplink_handshake_age_seconds", uplink="a") < 60
    assert m(ms, "mwanctl_target_up", uplink="a", target="198.51.100.1") == 1

    # a cut uplink and an unreachable router show up at the next poll
    weblab.feed(site.routers["mother"], "mwan3-status-wanA-offline.json", store)
    site.routers["b"].stop()
    ok = weblab.wait_for(lambda: (x := metrics(c)) and m(x, "mwanctl_uplink_up", uplink="a") == 0
                         and m(x, "mwanctl_router_reachable", router="b") == 0 and x, 4 * INTERVAL)
    assert ok, "metrics did not follow the cut"
    assert m(ok, "mwanctl_uplink_state", uplink="a", state="offline") == 1
    assert m(ok, "mwanctl_site_exit_code") == 1
    assert c.get("/api/status").json()["exit_code"] == 1
    page = c.get("/site/lab").text
    assert "b unreachable" in page and "a: online → offline" in page
    server.stop()
    lab["restart_b"] = True


def test_deploy_through_the_api_sets_the_last_deploy_metric_and_history_survives_a_restart(lab):
    site = lab["site"]
    if lab.get("restart_b"):           # the previous test stopped b: start it again (same keys, port)
        routers._launch(site.routers["b"])
    # the deploy changes the tunnels: from here on the mother's wg reports what it applied, as a
    # real one would (a recorded dump would show the old peers and a handshake from before the deploy)
    weblab.unpin_wg(site.routers["mother"])
    server = lab["start"]()
    c, csrf = login(server)
    r = c.post("/api/site/lab/deploy", json={"confirm_site": "lab"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    done = weblab.wait_for(lambda: (j := c.get(f"/api/jobs/{job}").json())["status"] != "running" and j, 120, 0.3)
    assert done and done["status"] == "ok", done
    assert done["routers"]["mother"] == "applied and confirmed"
    assert "mw_a" in site.routers["mother"].config_text("network")
    ms = metrics(c)
    assert m(ms, "mwanctl_last_deploy_success") == 1
    assert m(ms, "mwanctl_last_deploy_info", result="applied") == 1
    # a deploy whose plan is not the one the user looked at does not start
    r = c.post("/api/site/lab/deploy", json={"confirm_site": "lab", "plan_digest": "0" * 16},
               headers={"X-CSRF-Token": csrf})
    stale = weblab.wait_for(lambda: (j := c.get(f"/api/jobs/{r.json()['job']}").json())["status"] != "running" and j, 60, 0.3)
    assert stale["status"] == "failed" and "the plan changed since it was shown" in stale["summary"]
    plan = c.post("/api/site/lab/plan", headers={"X-CSRF-Token": csrf}).json()
    assert sorted(plan["lines"]) == ["a: up to date", "b: up to date", "mother: up to date"]
    # confirm / rollback with nothing pending say so and touch nothing
    r = c.post("/api/site/lab/confirm", headers={"X-CSRF-Token": csrf})
    conf = weblab.wait_for(lambda: (j := c.get(f"/api/jobs/{r.json()['job']}").json())["status"] != "running" and j, 60, 0.3)
    assert conf["status"] == "ok" and conf["summary"] == "nothing pending on any router"
    assert set(conf["routers"].values()) == {"nothing pending"}
    before = c.get("/site/lab").text
    assert before.count("(first seen)") == 2
    server.stop()

    again = lab["start"]()
    c2, _ = login(again)
    time.sleep(3 * INTERVAL)
    page = c2.get("/site/lab").text
    assert "a: online → offline" in page and "deploy: " in page          # kept across the restart
    assert page.count("(first seen)") == 2                                # not reported twice
    ms = metrics(c2)                      # the last deploy (the refused one) is remembered as such
    assert m(ms, "mwanctl_last_deploy_success") == 0 and m(ms, "mwanctl_last_deploy_info", result="blocked") == 1
    again.stop()


def test_password_login(lab):
    pw = lab["tmp"] / "pw"
    pw.write_text("correct horse\n")
    server = lab["start"]("--password-file", str(pw))
    assert server.token is None and "password" in server.lines[-1]
    with httpx.Client(base_url=server.base, timeout=30) as c:
        r = c.get("/site/lab")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.post("/login", data={"password": "wrong"}).status_code == 401
        r = c.post("/login", data={"password": "correct horse"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/login", data={"password": "correct horse", "next": "/site/lab"})
        assert r.status_code == 303 and "samesite=strict" in r.headers["set-cookie"].lower()
        assert "httponly" in r.headers["set-cookie"].lower()
        assert c.get("/site/lab").status_code == 200
        assert c.get("/metrics", headers={"Authorization": "Bearer correct horse"}).status_code == 200
    server.stop()


def test_serves_every_site_of_a_directory(lab, tmp_path, capsys):
    """`mwanctl web DIR`: every *.yaml/*.yml in it is a site (as for plan/deploy/status)."""
    sites = tmp_path / "sites"
    sites.mkdir()
    text = lab["site"].path.read_text()
    (sites / "one.yaml").write_text(text)
    (sites / "two.yml").write_text(text.replace("site: lab", "site: lab2", 1))
    (sites / "notes.txt").write_text("not a topology")
    server = weblab.WebServer([sites], lab["site"].state_dir, tmp_path / "web.sqlite", INTERVAL)
    try:
        assert server.lines[0].startswith("mwanctl web: 2 site(s) (lab, lab2)"), server.lines
        c, _ = login(server)
        doc = weblab.wait_for(lambda: (d := c.get("/api/status").json()) and all(
            s["reachable"] for s in d["sites"].values()) and d, 10 * INTERVAL)
        assert doc and doc["schema"] == "mwanctl.web.sites/1" and set(doc["sites"]) == {"lab", "lab2"}
        assert c.get("/site/lab2").status_code == 200 and c.get("/site/notes").status_code == 404
    finally:
        server.stop()
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--state-dir", str(tmp_path), "web", str(empty), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 64 and err.strip() == f"mwanctl: error: no topology files (*.yaml, *.yml) in {empty}", err


def test_refuses_a_non_loopback_address_without_tls(tmp_path, capsys):
    topo = Path(__file__).resolve().parents[1] / "examples" / "home.yaml"
    code = main(["--state-dir", str(tmp_path), "web", str(topo), "--host", "0.0.0.0", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines() == [
        "mwanctl: error: refusing to listen on 0.0.0.0 without TLS: pass --certfile/--keyfile, or "
        "--insecure-remote if something else (a TLS proxy, a VPN) protects the traffic"], err
    for host in ("192.0.2.1", "::", "[2001:db8::1]", "example.org"):
        with pytest.raises(WebError, match=f"refusing to listen on {re.escape(host)} without TLS"):
            check_listen(WebOptions(host=host))
    for ok in (WebOptions(host="0.0.0.0", certfile=topo, keyfile=topo), WebOptions(host="::", insecure_remote=True),
               WebOptions(host="127.0.0.2"), WebOptions(host="::1"), WebOptions(host="localhost")):
        check_listen(ok)                                  # TLS, told so, or loopback: no refusal
    code = main(["--state-dir", str(tmp_path), "web", str(topo), "--certfile", str(topo), "--port", "0"])
    assert code == 1 and "--certfile and --keyfile go together" in capsys.readouterr().err


def test_history_is_bounded(tmp_path):
    h = History(tmp_path / "h.sqlite", Retention(sample_hours=1, event_days=1, max_events=10))
    now = time.time()
    s = Sample("a", "online", 10.0, 0.0, 1.0, 1.0, 5, 0.5)
    for i in range(100):
        h.add_samples("lab", now - 7200 + i * 72, [s])       # two hours of samples
    for i in reversed(range(30)):
        h.add_event("lab", "state", "a", "online", f"event {i}", now - i)
    h.add_event("lab", "state", "a", "online", "old", now - 3 * 86400)
    h.prune(now)
    counts = h.counts()
    assert counts["events"] == 10
    assert [e.message for e in h.events("lab", 3)] == ["event 0", "event 1", "event 2"]
    oldest = sqlite3.connect(str(tmp_path / "h.sqlite")).execute("SELECT MIN(ts) FROM samples").fetchone()[0]
    assert oldest >= now - 3600 and 0 < counts["samples"] <= 51
    assert (tmp_path / "h.sqlite").stat().st_mode & 0o777 == 0o600
    h.close()


def test_wheel_carries_the_dashboard(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("mwanctl-*.whl"))).namelist())
    for f in (root / "mwanctl" / "web").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            assert f"mwanctl/web/{f.relative_to(root / 'mwanctl' / 'web')}" in names, f


def test_charts_read_from_rollups_agree_with_the_samples(tmp_path):
    """A window of an hour or more is drawn from the per-bucket sums; they give the points the
    samples themselves give (averages, the worst loss, gaps where nothing was measured), also
    for a file written before the rollups existed (summed up once when it is opened)."""
    h = History(tmp_path / "h.sqlite")
    now = time.time()
    rows = []
    for i in range(1440):                          # two hours at 5 s
        ts = now - 7200 + i * 5
        gap = 1000 <= i < 1040                     # an outage 40 min ago: nothing measured
        s = Sample("a", "online", None if gap else 10.0 + i % 7, None if gap else float(i % 11 == 0) * 20,
                   None if gap else 1000.0 + i, None if gap else 500.0, 5, 0.5)
        h.add_samples("lab", ts, [s])
        rows.append((ts, s))
    for hours, width in ((1, 15), (2, 30)):
        since = now - hours * 3600
        got = h.series("lab", "a", since)
        want: dict[int, list[tuple[float, Sample]]] = {}   # the 15 s buckets from the one `since` is in
        for ts, s in rows:
            if int(ts // 15) >= int(since // 15):
                want.setdefault(int(ts // 15) // (width // 15), []).append((ts, s))

        def avg(xs: list[Any]) -> Any:
            xs = [x for x in xs if x is not None]
            return sum(xs) / len(xs) if xs else None
        expect = [(min(t for t, _ in v), avg([s.rtt_ms for _, s in v]),
                   max((s.loss_pct for _, s in v if s.loss_pct is not None), default=None),
                   avg([s.rx_rate for _, s in v]), avg([s.tx_rate for _, s in v])) for _, v in sorted(want.items())]
        assert len(got) == len(expect) and 100 < len(got) <= 241, (hours, len(got), len(expect))
        for g, x in zip(got, expect):
            assert g[0] == pytest.approx(x[0]) and all(
                (a is None and b is None) or a == pytest.approx(b) for a, b in zip(g[1:], x[1:])), (g, x)
        assert any(g[1] is None for g in got)      # the outage is a gap, not an average
    before = {hours: h.series("lab", "a", now - hours * 3600) for hours in (1, 6, 24)}
    h.close()
    db = sqlite3.connect(str(tmp_path / "h.sqlite"))
    db.execute("DELETE FROM rollups")
    db.commit()
    db.close()
    again = History(tmp_path / "h.sqlite")
    assert again.counts()["rollups"] > 0
    for hours, got in before.items():
        assert again.series("lab", "a", now - hours * 3600) == got
    again.close()


def test_the_labs_wg_dump_is_what_the_mothers_config_says(tmp_path):
    """The recorded `wg show all dump` the dashboard tests feed the mother lists 0.0.0.0/0 as
    each peer's allowed IPs. That is right, not a check being kind: on the mother each tunnel's
    peer is the uplink, which carries any destination mwan3 sends into that tunnel, and the
    rendered config says exactly 0.0.0.0/0. The deploy's live-state check (verify) finds the
    lab's dump equal to the config and reports any other set of allowed IPs."""
    import types

    from mwanctl.facts import parse_wg_dump
    from mwanctl.keys import KeyStore
    from mwanctl.uci.parse import parse
    from mwanctl.verify import live_differences
    from tests import e2e
    (tmp_path / "kh").write_text("")
    (tmp_path / "key").write_text("")
    rs = {n: types.SimpleNamespace(known_hosts_path=str(tmp_path / "kh"), port=2200 + i, key_path=str(tmp_path / "key"))
          for i, n in enumerate(("mother", "a", "b"))}
    site = e2e.write_site(tmp_path, rs, ["a", "b"])
    assert main(site.argv("render", str(site.path), "-o", str(tmp_path / "out"))) == 0
    net = parse((tmp_path / "out" / "mother" / "etc" / "config" / "network").read_text(), "network")
    assert [s.options["allowed_ips"] for s in net.sections if s.type.startswith("wireguard_")] == \
        [("0.0.0.0/0",), ("0.0.0.0/0",)]
    dump = weblab.wg_dump(KeyStore.open("lab", site.state_dir), ("a", "b"))
    peers = [ln.split("\t") for ln in dump.splitlines() if ln.split("\t")[1] != "(hidden)"]
    assert len(peers) == 2 and {p[4] for p in peers} == {"0.0.0.0/0"}
    for iface in ("mw_a", "mw_b"):
        assert live_differences(net, iface, parse_wg_dump(dump, "mother"), None, None) == []
    for wrong, shown in (("10.0.0.0/8", "10.0.0.0/8"), ("0.0.0.0/0,::/0", "0.0.0.0/0, ::/0"), ("(none)", "none")):
        bad = parse_wg_dump(dump.replace("\t0.0.0.0/0\t", f"\t{wrong}\t"), "mother")
        assert live_differences(net, "mw_a", bad, None, None) == \
            [f"peer mw_a_peer allowed IPs {shown} (config 0.0.0.0/0)"]
