"""Throw-away "test routers": Debian's dropbear on 127.0.0.1, each in its own mount namespace.

Inside a router's namespace the OpenWrt paths are real and private: ``/etc`` is an overlay whose
upper layer holds ``config/``, ``init.d/`` stand-ins, a ``passwd``/``shadow`` for root (shell
``/bin/sh``, which is busybox ash there, as on OpenWrt); ``/tmp`` and ``/run`` are per-router
directories; ``/usr/local/sbin`` (first on dropbear's PATH for root) is overlaid with the stand-ins
``uci``, ``ubus``, ``wg``, ``mwan3``, ``reload_config`` and busybox applets, so scripts meet
busybox tools rather than GNU ones. Nothing is mocked: the client speaks real SSH to a real
sshd, and the router-side scripts run under the shell OpenWrt uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
STOCK = HERE / "data" / "stock"
BUSYBOX = Path("/usr/bin/busybox")
# The `uci` the routers run: the stand-in, or (MWTEST_UCI=/path) e.g. a real libuci build.
# Inside a router the repository is bind-mounted at /mnt, so its stand-ins stay reachable even
# when the checkout lives below /tmp (which each router replaces with its own).
NS_REPO = Path("/mnt")
NS_STANDINS = NS_REPO / "tests" / "standins"
UCI = Path(os.environ.get("MWTEST_UCI") or NS_STANDINS / "uci")
DROPBEAR = shutil.which("dropbear") or "/usr/sbin/dropbear"
DEFAULT_PASSWORD = "mwtest-pw"
# What dropbear gives root sessions (Debian build); the stand-ins overlay its first entry.
ROUTER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_SCRIPTS = ("network", "firewall", "mwan3", "dnsmasq")
COMMANDS = ("uci", "ubus", "wg", "mwan3", "reload_config", "conntrack", "ip")
# Applets the scripts may use, as OpenWrt's busybox provides them.
APPLETS = ("cat", "cp", "mv", "rm", "mkdir", "rmdir", "ln", "ls", "sleep", "kill", "date",
           "md5sum", "mktemp", "grep", "sed", "awk", "head", "tail", "tr", "cut", "touch",
           "chmod", "wc", "sort", "cmp", "readlink", "basename", "dirname", "sync", "env")


def missing_requirements() -> str | None:
    """Why test routers cannot run here, or None."""
    if os.geteuid() != 0:
        return "test routers need root (mount namespaces, overlayfs)"
    for tool in (DROPBEAR, shutil.which("dropbearkey"), str(BUSYBOX), shutil.which("unshare")):
        if not tool or not os.path.exists(tool):
            return f"test routers need dropbear, dropbearkey, busybox and unshare (missing: {tool})"
    uci_on_host = STANDINS / "uci" if UCI == NS_STANDINS / "uci" else UCI
    if not uci_on_host.exists():
        return f"the uci stand-in {uci_on_host} is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_key(path: Path) -> None:
    """An ed25519 client key in OpenSSH format (what users have in ~/.ssh)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH)
    Path(str(path) + ".pub").write_bytes(pub + b" mwtest\n")


def _host_key(path: Path) -> str:
    """Generate a dropbear host key; return its public line ``ssh-ed25519 AAAA...``."""
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(path)], check=True,
                   capture_output=True)
    out = subprocess.run(["dropbearkey", "-y", "-f", str(path)], check=True,
                         capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("ssh-"))
    return " ".join(line.split()[:2])


def _password_hash(password: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", "-salt", "mwtestsalt", password],
                          check=True, capture_output=True, text=True).stdout.strip()


def _mnt_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids``; one already gone is fine."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


@dataclass
class TestRouter:
    """A running test router; ``root`` is its state dir on the host."""

    __test__ = False  # not a pytest class

    name: str
    host: str
    port: int
    password: str
    key_path: Path
    known_hosts_path: Path
    host_key_path: Path
    host_public_key: str
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    user: str = "root"
    ns: str | None = field(default=None, repr=False)
    ns_fd: int | None = field(default=None, repr=False)

    # -- paths as seen from the host -------------------------------------------------------
    @property
    def etc(self) -> Path:
        """The upper layer of the router's /etc (files written there appear here)."""
        return self.root / "etc-upper"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def path(self, router_path: str) -> Path:
        """Host path of a file under the router's /etc, /tmp or /run."""
        for prefix, base in (("/etc/", self.etc), ("/tmp/", self.tmp),
                             ("/var/run/", self.root / "run"), ("/run/", self.root / "run")):
            if router_path.startswith(prefix):
                return base / router_path[len(prefix):]
        raise ValueError(f"{router_path} is not private to the router")

    def _nsenter(self, argv: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        assert self.proc is not None and self.ns_fd is not None, "router is stopped"
        # enter through the held namespace fd: works even after dropbear itself was killed
        # (a router whose SSH server is gone but whose rollback timer still runs)
        return subprocess.run(["nsenter", f"--mount=/proc/{os.getpid()}/fd/{self.ns_fd}", "--"] + argv,
                              input=data, capture_output=True, timeout=20, check=False,
                              env={"PATH": ROUTER_PATH, "HOME": "/"})

    def read(self, router_path: str) -> bytes | None:
        """A file as the router sees it (None if absent); read through the namespace, since
        overlayfs does not promise that its layers, seen from outside, match the merged view."""
        r = self._nsenter(["/bin/sh", "-c", 'test -f "$1" && cat "$1"', "sh", router_path])
        return r.stdout if r.returncode == 0 else None

    def write(self, router_path: str, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        r = self._nsenter(["/bin/sh", "-c", 'cat > "$1"', "sh", router_path], raw)
        assert r.returncode == 0, r.stderr

    def exists(self, router_path: str) -> bool:
        return self._nsenter(["test", "-e", router_path]).returncode == 0

    def config_text(self, pkg: str) -> str:
        data = self.read(f"/etc/config/{pkg}")
        if data is None:
            raise FileNotFoundError(f"/etc/config/{pkg} on {self.name}")
        return data.decode()

    def config_bytes(self, pkg: str) -> bytes | None:
        return self.read(f"/etc/config/{pkg}")

    def calls(self) -> list[str]:
        log = self.tmp / "mwtest-calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the router's namespace (as its sessions would see it)."""
        r = self._nsenter(["/bin/sh", "-c", command])
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(),
                                           r.stderr.decode())

    # -- life cycle ------------------------------------------------------------------------
    def session_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc else []

    def kill_connections(self) -> None:
        """Drop every SSH session (the listener stays): a lost connection, seen from both ends."""
        _kill_all(self.session_pids())

    def namespace_pids(self) -> list[int]:
        """Every process living in this router's mount namespace (timers included)."""
        if self.ns is None:
            return []
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _mnt_ns(int(p)) == self.ns]

    def stop(self) -> None:
        if self.proc is None:
            return
        for _ in range(3):
            pids = self.namespace_pids()
            if not pids:
                break
            _kill_all(pids)
            time.sleep(0.05)
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None
        if self.ns_fd is not None:
            os.close(self.ns_fd)
            self.ns_fd = None

    def restart_with_new_host_key(self) -> None:
        """Simulate a reinstalled router: same address, new host key (known_hosts is not updated)."""
        self.host_key_path.unlink()
        self.host_public_key = _host_key(self.host_key_path)
        self.stop()
        _launch(self)


def _setup_script(r: TestRouter) -> str:
    """Mount the private OpenWrt paths, then become dropbear (run by the host's sh under unshare)."""
    root = r.root
    # /tmp last: the router dir itself may live below the host's /tmp.
    return "\n".join([
        "set -e",
        f"mount --bind {HERE.parent} {NS_REPO}",
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={root}/etc-upper,workdir={root}/etc-work /etc",
        f"mount -t overlay overlay -o lowerdir={root}/sbin:/usr/local/sbin /usr/local/sbin",
        f"mount --bind {root}/run /run",
        f"mount --bind {BUSYBOX} $(readlink -f /bin/sh)",
        f"mount --bind {root}/tmp /tmp",
        f"export PATH={ROUTER_PATH}",
        "ubus mwtest-boot",
        f"exec {DROPBEAR} -F -E -m -p 127.0.0.1:{r.port} -r /etc/dropbear/host_key -P /run/dropbear.pid",
    ])


def _launch(r: TestRouter) -> None:
    with open(r.root / "dropbear.log", "ab") as log:
        r.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", _setup_script(r)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={"PATH": ROUTER_PATH, "HOME": "/"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            raise RuntimeError(f"router {r.name} died: {(r.root / 'dropbear.log').read_text()}")
        try:
            with socket.create_connection((r.host, r.port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        r.stop()
        raise RuntimeError(f"router {r.name} did not start: {(r.root / 'dropbear.log').read_text()}")
    r.ns = _mnt_ns(r.proc.pid)
    # Hold the namespace open: while this fd lives the kernel cannot free the namespace and hand
    # its inode number to another one (e.g. an `ip netns exec` of a WireGuard test), so stop()
    # never kills processes that are not this router's.
    r.ns_fd = os.open(f"/proc/{r.proc.pid}/ns/mnt", os.O_RDONLY)


def _write_etc(root: Path, files: dict[str, str] | None, password: str, home: str) -> None:
    etc = root / "etc-upper"
    (etc / "config").mkdir(parents=True)
    if files is None:
        files = {p.name: p.read_text() for p in STOCK.iterdir()}
    for pkg, text in files.items():
        (etc / "config" / pkg).write_text(text)
    (etc / "init.d").mkdir()
    for svc in INIT_SCRIPTS:
        (etc / "init.d" / svc).symlink_to(NS_STANDINS / "initd")
    (etc / "mwtest").mkdir()
    (etc / "dropbear").mkdir()
    passwd = [ln for ln in Path("/etc/passwd").read_text().splitlines() if not ln.startswith("root:")]
    (etc / "passwd").write_text("\n".join([f"root:x:0:0:root:{home}:/bin/sh"] + passwd) + "\n")
    shadow = [ln for ln in Path("/etc/shadow").read_text().splitlines() if not ln.startswith("root:")]
    (etc / "shadow").write_text(
        "\n".join([f"root:{_password_hash(password)}:19000:0:99999:7:::"] + shadow) + "\n")
    (etc / "shadow").chmod(0o640)


def start_router(tmp_path: Path, name: str, files: dict[str, str] | None = None,
                 password: str = DEFAULT_PASSWORD, authorized_key: Path | None = None) -> TestRouter:
    """Start one test router seeded with ``files`` (package -> text; default: the stock files).

    ``authorized_key`` is a public key file to authorize; by default a fresh client key pair is
    made and its private half is ``key_path``.
    """
    why = missing_requirements()
    if why:
        raise RuntimeError(why)
    root = Path(tmp_path) / f"router-{name}"
    for d in ("etc-work", "sbin", "run", "tmp", "client"):
        (root / d).mkdir(parents=True)
    home = "/etc/mwtest/home"  # inside the /etc overlay: still visible after /tmp is covered
    _write_etc(root, files, password, home)
    ssh_dir = root / "etc-upper" / "mwtest" / "home" / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    key_path = root / "client" / "id_ed25519"
    _client_key(key_path)
    pub = authorized_key if authorized_key else Path(str(key_path) + ".pub")
    (ssh_dir / "authorized_keys").write_text(pub.read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    for cmd in COMMANDS:
        (root / "sbin" / cmd).symlink_to(UCI if cmd == "uci" else NS_STANDINS / cmd)
    for applet in APPLETS:
        (root / "sbin" / applet).symlink_to(BUSYBOX)
    host_key_path = root / "etc-upper" / "dropbear" / "host_key"
    port = free_port()
    r = TestRouter(name=name, host="127.0.0.1", port=port, password=password, key_path=key_path,
                   known_hosts_path=root / "client" / "known_hosts", host_key_path=host_key_path,
                   host_public_key=_host_key(host_key_path), root=root)
    r.known_hosts_path.write_text(f"[{r.host}]:{port} {r.host_public_key}\n")
    _launch(r)
    return r


@contextmanager
def started_in(tmp_path: Path) -> Iterator[Callable[..., TestRouter]]:
    """``start(name, **kw)``: ``start_router`` into ``tmp_path``, remembered; every router it
    started stops (and its root goes) when the block ends, after a failure too: each lab's teardown."""
    started: list[TestRouter] = []

    def start(name: str = "r1", **kwargs: Any) -> TestRouter:
        r = start_router(tmp_path, name, **kwargs)
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            r.stop()
            shutil.rmtree(r.root, ignore_errors=True)
