"""The dashboard end to end: `mwanctl web` as a subprocess polling dropbear test routers (SSH,
busybox sh, the real query script; the mother answers with mwan3's recorded status), driven by
a real headless Chromium (Debian's chromium + chromedriver through Selenium).

MWANCTL_UPDATE_SCREENSHOTS=1 also writes the screenshots shown in the README into docs/.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

from mwanctl.cli import main
from mwanctl.keys import KeyStore
from mwanctl.uci.parse import parse

try:
    from tests import routers, weblab
except ImportError:  # pragma: no cover
    import routers  # type: ignore[no-redef]
    import weblab  # type: ignore[no-redef]

pytestmark = pytest.mark.ssh
INTERVAL = 2.0
DOCS = Path(__file__).resolve().parents[1] / "docs"
RED = "rgb(207, 34, 46)"        # --bad in style.css (light scheme)


class Feeder(threading.Thread):
    """Rewrites the mother's recorded answers every half second: counters grow (throughput) and
    RTT/loss move as check_quality would report them; ``status`` picks the recording. The dump
    shows a fresh handshake with whatever uplink key the mother's deployed config names as the
    peer, and the mother's own key its config holds (what a working tunnel does once a renew has
    run), so a key rotation can see its new keys go live and shake hands."""

    def __init__(self, mother: Any, store: KeyStore):
        super().__init__(daemon=True)
        self.mother, self.store = mother, store
        self.status = "mwan3-status-both-online.json"
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()

    def write(self) -> None:
        t = time.time()
        q = {"a": (int(18 + 6 * math.sin(t / 7)), 0), "b": (int(42 + 12 * math.sin(t / 5)), int(t) % 9 == 0 and 5 or 0)}
        peers, own = weblab.configured_keys(self.mother)
        with self.lock:
            weblab.feed(self.mother, self.status, self.store, rx_base=int((t % 100000) * 40000), quality=q,
                        peers=peers, own=own)

    def set(self, status: str) -> None:
        self.status = status
        self.write()

    def run(self) -> None:
        while not self.stop_evt.wait(0.5):
            self.write()


@contextmanager
def running_lab(tmp: Path) -> Iterator[dict[str, Any]]:
    """Routers, the feeder, `mwanctl web` and a logged-in Chromium for one lab in ``tmp``."""
    with weblab.lab_site(tmp) as (site, store):
        feeder = Feeder(site.routers["mother"], store)
        feeder.write()
        feeder.start()
        server = weblab.WebServer([site.path], site.state_dir, tmp / "web.sqlite", INTERVAL)
        driver = weblab.chrome()
        driver.get(server.url)                      # logs in with the printed token
        try:
            yield {"site": site, "store": store, "feeder": feeder, "server": server, "driver": driver,
                   "tmp": tmp}
        finally:
            driver.quit()
            feeder.stop_evt.set()
            feeder.join(5)
            server.stop()


def _requirements() -> None:
    why = routers.missing_requirements() or weblab.browser_missing()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab most tests share: rendered (so the keys exist) but never deployed until the
    plan/deploy test deploys it from the page."""
    _requirements()
    with running_lab(tmp_path_factory.mktemp("web")) as got:
        yield got


@pytest.fixture
def deployed_lab(tmp_path_factory, capsys):
    """A lab of its own, deployed the way a user does (`mwanctl deploy --yes`) before the test,
    for tests that change what the routers already run (a rotation, a change on the mother only).
    Not the shared lab, whose plan/deploy test needs routers nothing has been deployed to, in
    whatever order tests run."""
    _requirements()
    with running_lab(tmp_path_factory.mktemp("webdeployed")) as got:
        site = got["site"]
        assert "mw_a" not in site.routers["mother"].config_text("network")
        code = main(site.argv("deploy", str(site.path), "--yes"))
        out = capsys.readouterr()
        assert code == 0, out
        assert main(site.argv("plan", str(site.path))) == 0, capsys.readouterr().out   # nothing left to do
        capsys.readouterr()
        yield got


def shot(lab: dict[str, Any], name: str, driver: Any = None) -> None:
    path = lab["tmp"] / name
    (driver or lab["driver"]).save_screenshot(str(path))
    if os.environ.get("MWTEST_DEBUG_HTML"):
        Path(os.environ["MWTEST_DEBUG_HTML"], name + ".html").write_text((driver or lab["driver"]).page_source)
    if os.environ.get("MWANCTL_UPDATE_SCREENSHOTS"):
        shutil.copy(path, DOCS / name)


def client(lab: dict[str, Any]) -> tuple[httpx.Client, str]:
    """A second browser, as httpx: logged in with the token; returns its CSRF token."""
    c = httpx.Client(base_url=lab["server"].base, timeout=30)
    r = c.get("/site/lab", params={"token": lab["server"].token}, follow_redirects=True)
    assert r.status_code == 200
    csrf = r.text.split('name=csrf-token content="', 1)[1].split('"', 1)[0]
    return c, csrf


def states(driver: Any) -> dict[str, tuple[str, str]]:
    """uplink -> (state written in the picture, the box's stroke colour), read in one script so
    a live update cannot replace the elements halfway."""
    got = driver.execute_script(
        "const o = {}; for (const g of document.querySelectorAll('svg.topo g.uplink')) {"
        " o[g.dataset.uplink] = [g.querySelector('text.state').textContent,"
        " getComputedStyle(g.querySelector('rect')).stroke]; } return o;")
    return {k: (v[0], v[1]) for k, v in got.items()}


def rows(driver: Any) -> dict[str, str]:
    return driver.execute_script(
        "const o = {}; for (const r of document.querySelectorAll('table.uplinks tbody tr'))"
        " o[r.dataset.uplink] = r.innerText; return o;")


def jobs(driver: Any) -> list[tuple[str, str, str]]:
    """(kind, status, text) of every job on the page, newest first, read in one script."""
    got = driver.execute_script(
        "return [...document.querySelectorAll('#jobs section.job')].map(j =>"
        " [j.querySelector('h3').textContent.split(' ')[0], j.dataset.status, j.innerText]);")
    return [tuple(x) for x in got]


def finished(driver: Any, kind: str) -> Any:
    got = [j for j in jobs(driver) if j[0] == kind]
    return got[0] if got and got[0][1] != "running" else None


def test_page_shows_both_uplinks_online(lab):
    d = lab["driver"]
    d.get(lab["server"].base + "/site/lab?hours=0.25")
    got = weblab.wait_for(lambda: (s := states(d)) and all(v[0] == "online" for v in s.values()) and s, 3 * INTERVAL)
    assert got and set(got) == {"a", "b"}, states(d)
    assert all(colour == "rgb(26, 127, 55)" for _, colour in got.values())
    r = rows(d)
    assert set(r) == {"a", "b"}
    assert "online" in r["a"] and "198.51.100.1 up" in r["a"] and " ms" in r["a"]   # target, RTT
    assert "ago" in r["a"]                                                 # handshake age
    assert weblab.live_text(d, "p.summary") == "2/2 uplinks online"
    # keyboard: the skip link is the first stop and leads to the content; every input has a label
    for inp in d.find_elements("css selector", "input:not([type=hidden])"):
        assert d.find_elements("css selector", f"label[for='{inp.get_attribute('id')}']")
    time.sleep(3 * INTERVAL)                                              # a few samples for the charts
    d.refresh()
    weblab.wait_for(lambda: "live" in d.find_element("id", "live").text, 5)
    shot(lab, "web-overview.png")


def test_cut_uplink_turns_red_within_one_poll_interval_and_is_in_the_timeline(lab):
    d = lab["driver"]
    d.get(lab["server"].base + "/site/lab?hours=0.25")
    assert weblab.wait_for(lambda: states(d).get("a", ("",))[0] == "online", 3 * INTERVAL)
    cut = time.monotonic()
    lab["feeder"].set("mwan3-status-wanA-offline.json")
    red = weblab.wait_for(lambda: states(d)["a"] == ("offline", RED), 3 * INTERVAL)
    took = time.monotonic() - cut
    assert red, states(d)
    # the next poll starts within INTERVAL; the poll itself (3 SSH round trips) and the push are extra
    assert took <= INTERVAL + 1.0, f"turned red after {took:.2f} s"
    assert states(d)["b"][0] == "online"
    assert "offline" in rows(d)["a"]
    ev = weblab.wait_for(lambda: weblab.read_items(d, "#timeline-lab li[data-kind=state][data-result=offline]"), 2)
    assert ev and "a: online → offline" in ev[0]["text"] and "targets down" in ev[0]["text"]
    assert weblab.live_text(d, "p.summary").startswith("1/2 uplinks online")
    time.sleep(2 * INTERVAL)
    shot(lab, "web-uplink-down.png")
    d.execute_script("document.getElementById('h-history').scrollIntoView()")
    shot(lab, "web-history.png")
    lab["feeder"].set("mwan3-status-both-online.json")
    assert weblab.wait_for(lambda: states(d)["a"][0] == "online", 3 * INTERVAL)


def test_validate_shows_errors_at_their_line(lab):
    d, path = lab["driver"], lab["site"].path
    good = path.read_text()
    lines = good.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("weight: 2"))
    lines[at] = lines[at].replace("weight: 2", "weight: lots")
    path.write_text("\n".join(lines) + "\n")
    try:
        d.get(lab["server"].base + "/site/lab")
        d.find_element("css selector", "form[data-kind=validate] button").click()
        bad = weblab.wait_for(lambda: weblab.read_items(d, "#result table.yaml tr.err"), 10)
        assert bad and bad[0]["id"] == f"L{at + 1}"
        assert "weight" in bad[0]["text"]
        assert f"{path}:{at + 1}:" in d.find_element("css selector", "#result ul.diags").text
        d.execute_script("document.getElementById('result').scrollIntoView()")
        shot(lab, "web-validate.png")
        # the poller noticed too: it keeps the last good topology and says so in the timeline
        ev = weblab.wait_for(lambda: weblab.read_items(d, "#timeline-lab li[data-kind=topology]"),
                             3 * INTERVAL)
        assert ev and "still using the last good version" in ev[0]["text"]
    finally:
        path.write_text(good)
    d.find_element("css selector", "form[data-kind=validate] button").click()
    assert weblab.wait_for(lambda: d.find_element("css selector", "#result p.summary.ok"), 10)


def test_plan_is_the_cli_plan_and_deploy_from_the_page_changes_the_router(lab, capsys):
    d, site = lab["driver"], lab["site"]
    mother = site.routers["mother"]
    assert "mw_a" not in mother.config_text("network")
    code = main(site.argv("--no-color", "plan", str(site.path)))
    cli_plan = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert code == 2
    d.get(lab["server"].base + "/site/lab")
    d.find_element("css selector", "form[data-kind=plan] button").click()
    pre = weblab.wait_for(lambda: d.find_element("css selector", "#result pre.plan"), 30)
    assert pre
    page_plan = [ln for ln in pre.text.splitlines() if ln.strip()]
    assert page_plan == cli_plan
    assert "private_key <hidden>" in pre.text
    for end in ("mother", "uplink"):
        for u in ("a", "b"):
            assert lab["store"].pair(u, end).private not in d.page_source
    d.execute_script("document.getElementById('h-actions').scrollIntoView()")
    shot(lab, "web-plan.png")

    # a wrong site name starts nothing
    box = d.find_element("id", "deploy-confirm")
    box.send_keys("not-lab")
    d.find_element("css selector", "form[data-action$='/deploy'] button").click()
    err = weblab.wait_for(lambda: d.find_element("css selector", "#result[role=alert] .summary.bad"), 10)
    assert err and "type the site name" in err.text
    assert not d.find_elements("css selector", "#jobs section.job")

    box.clear()
    box.send_keys("lab")
    d.find_element("css selector", "form[data-action$='/deploy'] button").click()
    running = weblab.wait_for(lambda: any(j[1] == "running" for j in jobs(d)), 10)
    assert running, d.find_element("id", "result").text
    # a second browser cannot start another deploy while this one runs (server-side lock)
    c, csrf = client(lab)
    r = c.post("/api/site/lab/deploy", json={"confirm_site": "lab"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "busy" in r.json()["error"]
    done = weblab.wait_for(lambda: finished(d, "deploy"), 120)
    assert done and done[1] == "ok", done
    text = done[2]
    assert "mother: applied and confirmed" in text and "a: applied and confirmed" in text
    net = parse(mother.config_text("network"), "network")
    assert net.get("mw_a").options["proto"] == "wireguard"              # the router really changed
    ev = weblab.wait_for(lambda: weblab.read_items(d, "#timeline-lab li[data-kind=deploy]"), 10 * INTERVAL)
    assert ev and ev[0]["result"] == "applied"
    d.execute_script("document.getElementById('h-actions').scrollIntoView()")
    shot(lab, "web-deploy.png")
    # and the CLI agrees there is nothing left to do
    assert main(site.argv("plan", str(site.path))) == 0
    capsys.readouterr()


def test_keys_show_has_public_keys_only(lab):
    d = lab["driver"]
    d.get(lab["server"].base + "/site/lab")
    d.find_element("css selector", "form[data-kind=keys] button").click()
    table = weblab.wait_for(lambda: d.find_element("css selector", "#result table.keys"), 10)
    assert table
    store = lab["store"]
    assert store.pair("a", "uplink").public in table.text
    for u in ("a", "b"):
        for end in ("mother", "uplink"):
            assert store.pair(u, end).private not in d.page_source


def test_rotate_from_the_page_puts_new_keys_on_both_ends(deployed_lab):
    lab = deployed_lab
    d, site, store = lab["driver"], lab["site"], lab["store"]
    old = {end: store.pair("a", end).public for end in ("mother", "uplink")}
    d.get(lab["server"].base + "/site/lab")
    d.find_element("id", "rotate-confirm").send_keys("lab")
    d.find_element("id", "rotate-uplink").send_keys("a")
    d.find_element("css selector", "form[data-action$='/rotate'] button").click()
    done = weblab.wait_for(lambda: finished(d, "rotate"), 150, 0.5)
    assert done and done[1] == "ok", done
    assert "rotated a" in done[2]
    fresh = KeyStore.open("lab", site.state_dir)
    new = {end: fresh.pair("a", end).public for end in ("mother", "uplink")}
    assert new["mother"] != old["mother"] and new["uplink"] != old["uplink"]
    assert fresh.pair("a", "uplink", "pending") is None                     # promoted
    assert weblab.configured_keys(site.routers["mother"])[0]["a"] == new["uplink"]
    up = parse(site.routers["a"].config_text("network"), "network")
    assert up.get("mw_a_peer").options["public_key"] == new["mother"]
    ev = weblab.wait_for(lambda: weblab.read_items(d, "#timeline-lab li[data-kind=rotate]"), 10 * INTERVAL)
    assert ev and ev[0]["result"] == "rotated"


def test_rotate_with_no_keys_yet_says_to_deploy_first(lab):
    """A state dir without keys (nothing was deployed from it): the page's rotate fails with the
    CLI's words, saves no keys and changes no router."""
    site = lab["site"]
    empty = lab["tmp"] / "no-keys"
    empty.mkdir()
    before = {r: site.routers[r].config_text("network") for r in ("mother", "a")}
    server = weblab.WebServer([site.path], empty, lab["tmp"] / "no-keys.sqlite", INTERVAL)
    d = weblab.chrome()
    try:
        d.get(server.url.replace("/?", "/site/lab?"))
        d.find_element("id", "rotate-confirm").send_keys("lab")
        d.find_element("css selector", "form[data-action$='/rotate'] button").click()
        done = weblab.wait_for(lambda: finished(d, "rotate"), 30, 0.3)
        assert done and done[1] == "failed", done
        assert "some tunnels have no keys yet: deploy the topology before rotating" in done[2]
    finally:
        d.quit()
        server.stop()
    assert KeyStore.open("lab", empty).tunnels == {}
    assert {r: site.routers[r].config_text("network") for r in ("mother", "a")} == before


def _leave_pending(lab: dict[str, Any], monkeypatch: Any, capsys: Any) -> float:
    """`mwanctl deploy` whose confirm is lost (as when the connection drops after the apply):
    the mother keeps the change applied and unconfirmed, its rollback timer armed. Returns
    when (epoch) the deploy started."""
    from mwanctl.errors import ConfirmError
    from mwanctl.transports import ssh
    site = lab["site"]
    with monkeypatch.context() as m:
        m.setattr(ssh.SshTransport, "confirm", lambda self, receipt=None: (_ for _ in ()).throw(
            ConfirmError("simulated: connection lost")))
        started = time.time()
        code = main(site.argv("deploy", str(site.path), "--yes", "--confirm-timeout", "600"))
    out = capsys.readouterr()
    assert code == 6, out
    return started


def _router_pending(lab: dict[str, Any]) -> Any:
    from mwanctl.connect import ConnectOptions, transport_for
    from mwanctl.topology.load import load_topology
    with transport_for(load_topology(lab["site"].path), "mother", ConnectOptions()) as t:
        return t.read_state(("network",)).pending


def _pending_item(d: Any, after: float) -> Optional[tuple[str, float]]:
    """The mother's pending-deploy line (its text, its deadline) once it shows a deadline later
    than ``after``; read in one go, as a live update may replace the element at any moment."""
    from selenium.common.exceptions import StaleElementReferenceException
    try:
        for li in d.find_elements("css selector", "#live-card-lab .pending li[data-router=mother]"):
            ts = float(li.find_element("css selector", "time.deadline").get_attribute("data-ts"))
            if ts > after:
                return li.text, ts
    except StaleElementReferenceException:
        pass
    return None


def test_pending_deploy_is_shown_with_its_deadline_and_confirm_and_rollback_act_on_it(deployed_lab, monkeypatch, capsys):
    lab = deployed_lab
    d, site = lab["driver"], lab["site"]
    mother = site.routers["mother"]
    path = site.path
    good = path.read_text()
    before = mother.config_text("mwan3")
    assert "weight: 2" in good
    path.write_text(good.replace("weight: 2", "weight: 3", 1))      # a change on the mother only
    # start from a mother with nothing pending (the fixture's deploy was confirmed)
    assert weblab.wait_for(lambda: _router_pending(lab) is None, 60, 1.0), "the mother still holds a pending change"
    try:
        d.get(lab["server"].base + "/site/lab")
        for button in ("rollback", "confirm"):
            started = _leave_pending(lab, monkeypatch, capsys)
            armed = mother.config_text("mwan3")
            assert armed != before and _router_pending(lab) is not None    # applied, not confirmed
            item = weblab.wait_for(lambda: _pending_item(d, started + 300), 8 * INTERVAL + 10)
            assert item and "rolls back by itself at" in item[0] and "unless confirmed" in item[0], item
            deadline = item[1]
            # the router's own deadline: the confirm timeout (600 s) plus the verify window after the apply
            assert started + 600 - 5 <= deadline <= time.time() + 600 + 200, (started, deadline)
            if button == "rollback":
                shot(lab, "web-pending.png")
                c, _ = client(lab)
                ms = c.get("/metrics").text
                assert 'mwanctl_router_deploy_pending{site="lab",router="mother"} 1.0' in ms
                assert 'mwanctl_router_deploy_pending{site="lab",router="a"} 0.0' in ms
                assert 'mwanctl_router_deploy_rollback_timestamp_seconds{site="lab",router="mother"}' in ms
            d.find_element("css selector", f"form[data-action$='/{button}'] button").click()
            done = weblab.wait_for(lambda: finished(d, button), 60, 0.3)
            assert done and done[1] == "ok", done
            said = "rolled back to its previous config" if button == "rollback" else "confirmed"
            assert f"mother: {said}" in done[2] and "a: nothing pending" in done[2]
            assert _router_pending(lab) is None                             # the router says so
            assert mother.config_text("mwan3") == (before if button == "rollback" else armed)
            gone = weblab.wait_for(lambda: not d.find_elements("css selector", "#live-card-lab .pending"),
                                   4 * INTERVAL)
            assert gone, "the page still shows the deploy as pending"
            ev = weblab.wait_for(lambda: weblab.read_items(d, f"#timeline-lab li[data-kind={button}]"), 5)
            assert ev and ev[0]["result"] == "ok"
    except BaseException:
        path.write_text(good)
        raise


def test_rotate_needs_the_site_name(lab):
    c, csrf = client(lab)
    r = c.post("/api/site/lab/rotate", json={"confirm_site": ""}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and "type the site name" in r.json()["error"]
    r = c.post("/api/site/lab/rotate", json={"confirm_site": "lab", "uplink": "nope"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and "no uplink named" in r.json()["error"]


def test_wrong_token_is_refused(lab):
    base = lab["server"].base
    with httpx.Client(base_url=base) as c:
        r = c.get("/", params={"token": "wrong" + lab["server"].token})
        assert r.status_code == 403 and "mwanctl_session" not in r.headers.get("set-cookie", "")
        assert c.get("/").status_code == 401
        for path in ("/site/lab", "/api/status", "/metrics", "/events"):
            assert c.get(path).status_code == 401, path
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {lab['server'].token}"}).status_code == 200
        # a page served under a name that is not this server (DNS rebinding) gets nothing
        r = c.get("/", params={"token": lab["server"].token}, headers={"Host": "evil.example:80"})
        assert r.status_code == 421
    d = weblab.chrome()
    try:
        d.get(base + "/?token=not-the-token")
        assert "Access denied" in d.find_element("tag name", "h1").text
        assert d.get_cookie("mwanctl_session") is None
        assert not d.find_elements("css selector", "svg.topo")
    finally:
        d.quit()


def test_csrf_less_post_is_refused(lab):
    mother = lab["site"].routers["mother"]
    before = mother.config_text("network")
    c, csrf = client(lab)
    r = c.post("/api/site/lab/rollback", json={})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = c.post("/api/site/lab/deploy", json={"confirm_site": "lab"}, headers={"X-CSRF-Token": "x" + csrf})
    assert r.status_code == 403
    r = c.post("/api/site/lab/deploy", json={"confirm_site": "lab"},
               headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert r.status_code == 403
    # from inside the logged-in browser too: a fetch without the header is refused
    d = lab["driver"]
    d.get(lab["server"].base + "/site/lab")
    status = d.execute_async_script(
        "const done = arguments[0]; fetch('/api/site/lab/rollback', {method: 'POST', body: '{}', "
        "headers: {'Content-Type': 'application/json'}}).then(r => done(r.status));")
    assert status == 403
    assert mother.config_text("network") == before
    assert not any(j for j in d.find_elements("css selector", "#jobs section.job[data-status=running]"))


def test_serves_over_tls_and_chromium_loads_the_page(lab):
    """--certfile/--keyfile: the dashboard speaks only TLS with the test's certificate (a CA and a
    server certificate for 127.0.0.1 made by the test). Chromium is told to trust exactly that
    server key (--ignore-certificate-errors-spki-list with its SPKI hash; the same Chromium
    without it refuses the page); httpx checks the chain against the test's CA."""
    import ssl
    ca, cert, key, spki = weblab.test_certificate(lab["tmp"])
    site = lab["site"]
    server = weblab.WebServer([site.path], site.state_dir, lab["tmp"] / "tls.sqlite", INTERVAL,
                              ("--certfile", str(cert), "--keyfile", str(key)))
    try:
        assert server.url.startswith("https://127.0.0.1:") and server.token
        trust = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=server.base, verify=trust, timeout=30) as c:
            r = c.get("/site/lab", params={"token": server.token})
            assert r.status_code == 303
            cookie = r.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert c.get("/site/lab").status_code == 200
        with pytest.raises(httpx.ConnectError):                  # the system's CAs do not vouch for it
            httpx.get(server.base + "/", timeout=10)
        with pytest.raises(httpx.HTTPError):                     # and there is no plain HTTP on its port
            httpx.get(server.base.replace("https://", "http://") + "/", timeout=10)
        d = weblab.chrome(extra=(f"--ignore-certificate-errors-spki-list={spki}",))
        try:
            d.get(server.url.replace("/?", "/site/lab?"))
            assert weblab.wait_for(lambda: states(d).get("a", ("",))[0] == "online", 4 * INTERVAL), states(d)
            assert d.execute_script("return location.protocol") == "https:"
            assert d.get_cookie("mwanctl_session")["secure"] is True
            assert weblab.wait_for(lambda: "live" in d.find_element("id", "live").text, 3 * INTERVAL)   # SSE over TLS
        finally:
            d.quit()
        d = weblab.chrome()
        try:
            d.get(server.url)
            assert not d.find_elements("css selector", "svg.topo") and d.get_cookie("mwanctl_session") is None
        finally:
            d.quit()
    finally:
        server.stop()


def test_phone_layout(lab):
    d = weblab.chrome(phone=True)
    try:
        d.get(lab["server"].url.replace("/?", "/site/lab?"))
        assert weblab.wait_for(lambda: states(d).get("a", ("",))[0] == "online", 3 * INTERVAL)
        assert d.execute_script("return window.innerWidth") == 390
        width = d.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"page is {width} px wide on a 390 px phone"
        # the uplink table turns into one block per uplink, each value labelled
        assert d.execute_script("return getComputedStyle(document.querySelector("   # live-updated: no handle
                                "'table.uplinks td[data-label=State]')).display") == "block"
        shot(lab, "web-phone.png", d)
    finally:
        d.quit()

