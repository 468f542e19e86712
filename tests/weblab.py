"""Helpers for the dashboard tests and bench/web.py: a dropbear site fed with recorded mwan3
output, the real `mwanctl web` started as a subprocess, and headless Chromium via Selenium.

The mother's `ubus call mwan3 status` and `wg show all dump` answers are mwan3 2.12.2's recorded
output (tests/vectors/mwan3, names mapped to the topology's) written into the router, as in
tests/test_status_e2e.py; "cutting" an uplink swaps in the recording where it went offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from mwanctl.keys import KeyStore

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors" / "mwan3"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> Optional[str]:
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(tool):
            return f"needs Debian's chromium and chromium-driver (missing {tool})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[test]')"
    return None


def recorded(name: str, uplinks: tuple[str, ...] = ("a", "b"),
             quality: Optional[dict[str, tuple[int, int]]] = None) -> str:
    """A recorded status with wanA/wanB renamed to the first two uplinks' mwan3 interfaces; more
    uplinks get copies of wanB's entry (bench sites have four)."""
    doc = json.loads((VECTORS / name).read_text())
    ifaces = doc["interfaces"]
    out: dict[str, Any] = {}
    for i, u in enumerate(uplinks):
        src = "wanA" if i == 0 else "wanB"
        out[f"mw_{u}"] = json.loads(json.dumps(ifaces[src]))
        if quality and u in quality:   # what check_quality=1 reports per target (reference §2.2)
            for t in out[f"mw_{u}"].get("track_ip", []):
                if t.get("status") == "up":
                    t["latency"], t["packetloss"] = quality[u]
    doc["interfaces"] = out
    text = json.dumps(doc, indent="\t")
    return text.replace('"wanA"', f'"mw_{uplinks[0]}"').replace('"wanB"', f'"mw_{uplinks[1]}"') \
               .replace('"balanced"', '"mw_balanced"')


def wg_dump(store: KeyStore, uplinks: tuple[str, ...], handshake_age: int = 12, rx_base: int = 0,
            peers: Optional[dict[str, str]] = None, own: Optional[dict[str, str]] = None) -> str:
    """``peers``: the uplink key each tunnel's peer has on the mother (default: the store's
    current one), i.e. the key a working tunnel shakes hands with; ``own``: the mother's own
    public key per tunnel (default: the store's current one). Allowed IPs 0.0.0.0/0: what
    the mother's config gives each tunnel's peer (the uplink carries whatever mwan3 sends it);
    tests/test_web_api.py holds this to the rendered config."""
    now = int(time.time())
    lines = []
    for i, name in enumerate(uplinks):
        peer = (peers or {}).get(name) or store.pair(name, "uplink").public
        mine = (own or {}).get(name) or store.pair(name, "mother").public
        lines.append(f"mw_{name}\t(hidden)\t{mine}\t0\toff")
        lines.append("\t".join([f"mw_{name}", peer, "(none)",
                                f"192.0.2.{10 + i}:51820", "0.0.0.0/0", str(now - handshake_age),
                                str(rx_base + 1000000 * (i + 1)), str(rx_base // 5 + 200000 * (i + 1)), "25"]))
    return "\n".join(lines) + "\n"


def configured_keys(mother: Any) -> tuple[dict[str, str], dict[str, str]]:
    """uplink -> the public key of its peer section, and uplink -> the public key of the
    tunnel's own private key, in the mother's deployed network config: what its devices hold
    once a deploy or a rotation's renew has gone live."""
    from mwanctl.uci.parse import parse
    try:
        from tests.netlab import public_key_of
    except ImportError:  # pragma: no cover - tests/ on sys.path
        from netlab import public_key_of  # type: ignore[no-redef]
    data = mother.read("/etc/config/network")
    peers, own = {}, {}
    for sec in parse(data.decode(), "network").sections if data else ():
        if not (sec.name and sec.name.startswith("mw_")):
            continue
        if sec.name.endswith("_peer") and "public_key" in sec.options:
            peers[sec.name[3:-5]] = str(sec.options["public_key"])
        elif sec.type == "interface" and isinstance(sec.options.get("private_key"), str):
            own[sec.name[3:]] = public_key_of(str(sec.options["private_key"]))
    return peers, own


def feed(mother: Any, status_file: str, store: KeyStore, uplinks: tuple[str, ...] = ("a", "b"),
         rx_base: int = 0, quality: Optional[dict[str, tuple[int, int]]] = None,
         peers: Optional[dict[str, str]] = None, own: Optional[dict[str, str]] = None) -> None:
    """Write the mother's recorded answers (atomically: the poller may read at any moment)."""
    mother.run("mkdir -p /etc/mwtest")
    mother.write("/etc/mwtest/mwan3_status.json.new", recorded(status_file, uplinks, quality))
    mother.write("/etc/mwtest/wg_dump.txt.new", wg_dump(store, uplinks, rx_base=rx_base, peers=peers, own=own))
    r = mother.run("mv /etc/mwtest/wg_dump.txt.new /etc/mwtest/wg_dump.txt && "
                   "mv /etc/mwtest/mwan3_status.json.new /etc/mwtest/mwan3_status.json")
    assert r.returncode == 0, r.stderr


@contextmanager
def lab_site(tmp: Path) -> Iterator[tuple[Any, KeyStore]]:
    """The dashboard tests' site: a mother and uplinks `a`, `b` as dropbear test routers, rendered
    once (which creates the keys); the routers stop and ``tmp`` goes when the block ends."""
    from mwanctl.cli import main
    try:
        from tests import e2e, routers
    except ImportError:  # pragma: no cover - tests/ on sys.path
        import e2e  # type: ignore[no-redef]
        import routers  # type: ignore[no-redef]
    try:
        with routers.started_in(tmp) as factory:
            site = e2e.start_site(factory, tmp, ["a", "b"])
            assert main(site.argv("render", str(site.path), "-o", str(tmp / "out"))) == 0
            yield site, KeyStore.open("lab", site.state_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unpin_wg(mother: Any) -> None:
    """Drop the recorded `wg show all dump` so the mother's `wg` answers from what its netifd
    applied. A recording describes the tunnels of its moment: after a deploy changes them (and
    mwanctl asks for a new handshake) it no longer tells what the router has."""
    r = mother.run("rm -f /etc/mwtest/wg_dump.txt")
    assert r.returncode == 0, r.stderr


class WebServer:
    """`python -m mwanctl web ...` in its own process group; ``url`` carries the printed token."""

    def __init__(self, topologies: list[Path], state_dir: Path, db: Path, interval: float = 1.0,
                 extra: tuple[str, ...] = (), env: Optional[dict[str, str]] = None):
        argv = [sys.executable, "-m", "mwanctl", "--state-dir", str(state_dir), "web",
                *map(str, topologies), "--port", "0", "--interval", str(interval), "--db", str(db), *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=str(ROOT), start_new_session=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.url = ""
        found = threading.Event()

        def read() -> None:             # a thread: select() does not see text already buffered
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.match(r"open (\S+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        found.wait(30)
        if not self.url:
            self.stop()
            raise RuntimeError("mwanctl web did not start: " + "\n".join(self.lines) + self.stderr())
        self.base = self.url.split("?", 1)[0].rstrip("/")
        m = re.search(r"token=([^&\s]+)", self.url)
        self.token = m.group(1) if m else None

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode


def test_certificate(tmp: Path) -> tuple[Path, Path, Path, str]:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost (made here with the
    ``cryptography`` package, valid for a day): (ca.pem, cert.pem, key.pem, the server key's
    SPKI SHA-256 in base64, which Chromium's --ignore-certificate-errors-spki-list trusts)."""
    import base64
    import datetime as dt
    import hashlib
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("mwanctl test CA")).issuer_name(name("mwanctl test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return paths[0], paths[1], paths[2], base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chrome(width: int = 1200, height: int = 900, phone: bool = False, extra: tuple[str, ...] = ()) -> Any:
    """Headless Debian Chromium through the system chromedriver; nothing is downloaded."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", *extra):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    if phone:   # a 390 x 844 CSS-pixel phone screen (a window cannot be made that narrow)
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    return d


def read_items(d: Any, css: str) -> list[dict[str, str]]:
    """Each matching element's text, id and data-result, read in one go: a live update may
    replace the element between finding it and reading it (a stale element reference)."""
    return [{"text": e.text, "id": e.get_attribute("id") or "", "result": e.get_attribute("data-result") or ""}
            for e in d.find_elements("css selector", css)]


def live_text(d: Any, css: str) -> str:
    """The text of the first element matching ``css``, read by the page itself: an element that
    live updates replace cannot go stale between finding it and reading it ('' if none)."""
    return str(d.execute_script("const e = document.querySelector(arguments[0]);"
                                " return e ? e.innerText : '';", css))


def wait_for(predicate: Any, timeout: float, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true; return it, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - an element that is being replaced
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(step)
