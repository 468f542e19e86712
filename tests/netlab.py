"""A throwaway network lab in Linux network namespaces, for tests.

Why: mwanctl's output is only worth something if OpenWrt's netifd would turn it into working
WireGuard tunnels. Tests cannot run netifd, so :meth:`Lab.bring_up_wireguard` reads a
``network`` :class:`~mwanctl.uci.model.UciPackage` the way netifd's ``wireguard.sh`` proto
handler (the long-lived shell version, openwrt/openwrt 4ffb70c6) and netifd itself do, and builds
the same devices, addresses and routes with wireguard-go, ``wg`` and ``ip`` inside a namespace.

Isolation: every namespace is named ``mwt<pid>-<lab>-<host>``. wireguard-go and ``wg`` meet at
``/var/run/wireguard/<ifname>.sock``, a path that is *not* per network namespace (two uplinks both
have a ``wg0``), so every command of a host runs with a private mount of that host's own
directory over ``/run`` (``/var/run`` is a symlink to it on Debian). Nothing is created outside the
lab's temp dir and its namespaces; ``Lab.__exit__`` kills the lab's wireguard-go processes,
deletes its links and namespaces and the temp dir, also after an exception.

Deliberately not emulated (netifd would do them, the lab does not need them): ``ip6prefix``,
``tunlink`` (the endpoint host route is taken from whatever route reaches the endpoint),
``peerdns``/``dns``, and metrics on the endpoint host route.
"""

from __future__ import annotations

import base64
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from mwanctl.uci.model import UciPackage, UciSection, Value

__all__ = [
    "KeyPair",
    "Lab",
    "LabError",
    "TwoTunnelSample",
    "WgSetupError",
    "capture_two_tunnel_dump",
    "cleanup_stale",
    "gen_keypair",
    "public_key_of",
    "skip_reason",
    "two_tunnel_dump",
]

PREFIX = "mwt"
REQUIRED_TOOLS = ("ip", "wireguard-go", "wg", "ping")
DEFAULT_ENDPOINT_PORT = "51820"


# --------------------------------------------------------------------------- keys (tests only)


class KeyPair(NamedTuple):
    """A WireGuard key pair in base64; the repr hides the private half."""

    private: str
    public: str

    def __repr__(self) -> str:  # why: a failing assert must never print a private key
        return f"KeyPair(private=<hidden>, public={self.public!r})"


def gen_keypair() -> KeyPair:
    """A fresh X25519 key pair, base64 like ``wg genkey``/``wg pubkey`` print it."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    priv = X25519PrivateKey.generate()
    return KeyPair(_b64_private(priv), _b64_public(priv))


def public_key_of(private_b64: str) -> str:
    """The public key for a base64 private key (what ``wg pubkey`` computes)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = base64.b64decode(private_b64, validate=True)
    return _b64_public(X25519PrivateKey.from_private_bytes(raw))


def _b64_private(priv: object) -> str:
    from cryptography.hazmat.primitives import serialization as ser

    raw = priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())  # type: ignore[attr-defined]
    return base64.b64encode(raw).decode("ascii")


def _b64_public(priv: object) -> str:
    from cryptography.hazmat.primitives import serialization as ser

    pub = priv.public_key()  # type: ignore[attr-defined]
    raw = pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


# --------------------------------------------------------------------------- environment


def skip_reason() -> str | None:
    """Why the lab cannot run here (for ``pytest.skip``), or None when it can."""
    if os.geteuid() != 0:
        return "netlab needs root (network namespaces, veth, /dev/net/tun)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return "netlab needs these tools on PATH: " + ", ".join(missing)
    return None


class LabError(RuntimeError):
    """A lab command failed; the message carries its stderr (private keys redacted)."""


class WgSetupError(LabError):
    """``wg setconf`` refused the config: netifd would call ``proto_setup_failed``."""


# --------------------------------------------------------------------------- UCI reading as netifd does


def _config_get(section: UciSection, option: str, default: str = "") -> str:
    """Shell ``config_get``: a list comes back space-joined, a missing option as the default."""
    value: Value | None = section.options.get(option)
    if value is None:
        return default
    if isinstance(value, tuple):
        return " ".join(value)
    return value


def _config_get_bool(section: UciSection, option: str, default: bool) -> bool:
    """Shell ``config_get_bool`` (functions.sh): unknown words fall back to the default."""
    word = _config_get(section, option)
    if word in ("1", "on", "true", "yes", "enabled"):
        return True
    if word in ("0", "off", "false", "no", "disabled"):
        return False
    return default


def _netifd_bool(section: UciSection, option: str, default: bool) -> bool:
    """netifd's own option parsing (config.c ``uci_attr_to_blob``): only 1/true and 0/false count."""
    word = _config_get(section, option)
    if word in ("1", "true"):
        return True
    if word in ("0", "false"):
        return False
    return default


def _strtol(text: str) -> int | None:
    """C ``strtol(text, &end, 0)`` requiring ``*end == 0``, as netifd parses INT32 options."""
    m = re.fullmatch(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?", text)
    if m is None:
        return None
    sign, digits = m.group(1), m.group(2)
    if not digits:
        return 0 if not sign else None
    if digits[:2] in ("0x", "0X"):
        n = int(digits, 16)
    elif digits.startswith("0"):
        n = int(digits, 8)
    else:
        n = int(digits, 10)
    return -n if sign == "-" else n


def _prefix_of(entry: str) -> tuple[int, str] | None:
    """The ``case`` in wireguard.sh: (ip version, ``addr/len``) or None if the shell ignores it."""
    if ":" in entry and "/" in entry.split(":", 1)[1]:
        return 6, entry
    if "." in entry and "/" in entry.split(".", 1)[1]:
        return 4, entry
    if ":" in entry:
        return 6, entry.split("/", 1)[0] + "/128"
    if "." in entry:
        return 4, entry.split("/", 1)[0] + "/32"
    return None


@dataclass
class _Peer:
    public_key: str
    preshared_key: str
    allowed_ips: list[str]
    route_allowed_ips: bool
    endpoint: str
    persistent_keepalive: str


@dataclass
class _WgInterface:
    """What netifd + wireguard.sh take from one ``proto wireguard`` interface section."""

    name: str
    private_key: str = field(repr=False)
    listen_port: str
    fwmark: str
    mtu: str
    addresses: list[str]
    metric: int
    defaultroute: bool
    ip4table: str
    ip6table: str
    nohostroute: bool
    peers: list[_Peer]
    skipped_peers: list[str]

    def wg_config(self) -> str:
        """The file wireguard.sh writes to ``/tmp/wireguard/<if>`` before ``wg setconf``."""
        def given(*pairs: tuple[str, object]) -> list[str]:   # wireguard.sh writes only what is set
            return [f"{key}={value}" for key, value in pairs if value]

        lines = ["[Interface]", f"PrivateKey={self.private_key}",
                 *given(("ListenPort", self.listen_port), ("FwMark", self.fwmark))]
        for p in self.peers:
            lines += ["[Peer]", f"PublicKey={p.public_key}", *given(("PresharedKey", p.preshared_key)),
                      *(f"AllowedIPs={ip}" for ip in p.allowed_ips),
                      *given(("Endpoint", p.endpoint), ("PersistentKeepalive", p.persistent_keepalive))]
        return "\n".join(lines) + "\n"

    def secrets(self) -> list[str]:
        return [s for s in [self.private_key, *(p.preshared_key for p in self.peers)] if s]


def read_wireguard_interfaces(network: UciPackage) -> list[_WgInterface]:
    """Every interface netifd would set up with proto wireguard at boot, read like the handler."""
    result: list[_WgInterface] = []
    for sec in network.of_type("interface"):
        if sec.name is None or _config_get(sec, "proto") != "wireguard":
            continue  # netifd ignores anonymous interface sections
        if _netifd_bool(sec, "disabled", False) or not _netifd_bool(sec, "auto", True):
            continue  # netifd does not bring these up on its own
        peers: list[_Peer] = []
        skipped: list[str] = []
        for ps in network.of_type(f"wireguard_{sec.name}"):
            if _config_get_bool(ps, "disabled", False):
                continue
            public_key = _config_get(ps, "public_key")
            if not public_key:
                skipped.append(ps.ref or "(anonymous)")
                continue
            host = _config_get(ps, "endpoint_host")
            endpoint = ""
            if host:
                if ":" in host:
                    host = f"[{host}]"
                endpoint = f"{host}:{_config_get(ps, 'endpoint_port') or DEFAULT_ENDPOINT_PORT}"
            peers.append(
                _Peer(
                    public_key=public_key,
                    preshared_key=_config_get(ps, "preshared_key"),
                    allowed_ips=_config_get(ps, "allowed_ips").split(),
                    route_allowed_ips=_config_get_bool(ps, "route_allowed_ips", False),
                    endpoint=endpoint,
                    persistent_keepalive=_config_get(ps, "persistent_keepalive"),
                )
            )
        metric = _strtol(_config_get(sec, "metric")) if "metric" in sec.options else 0
        result.append(
            _WgInterface(
                name=sec.name,
                private_key=_config_get(sec, "private_key"),
                listen_port=_config_get(sec, "listen_port"),
                fwmark=_config_get(sec, "fwmark"),
                mtu=_config_get(sec, "mtu"),
                addresses=_config_get(sec, "addresses").split(),
                metric=metric or 0,  # an unparsable metric is dropped by netifd: 0
                defaultroute=_netifd_bool(sec, "defaultroute", True),
                ip4table=_config_get(sec, "ip4table"),
                ip6table=_config_get(sec, "ip6table"),
                nohostroute=_config_get(sec, "nohostroute") == "1",
                peers=peers,
                skipped_peers=skipped,
            )
        )
    return result


# --------------------------------------------------------------------------- the lab

_lab_seq = 0

# why: runs the command with the host's own directory mounted over /run, so wireguard-go and wg of
# this host share /var/run/wireguard while other hosts' equal ifnames never meet. The mount lives in
# the mount namespace `ip netns exec` made for this one command (slave propagation: never leaks).
_WRAP = 'mount --bind "$0" /run && exec "$@"'


def _set_pdeathsig() -> None:
    """Child pre-exec: die with the test process, so a killed pytest leaves no wireguard-go.

    Only used from the main thread: the signal fires when the *thread* that started the child
    ends, so from a worker thread it would kill wireguard-go when the pool shuts down.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
    """Ask ``proc`` to end with ``sig``, give it ``grace`` seconds, then SIGKILL it; reaped either
    way, and one that already ended is left alone: how every lab daemon is stopped."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (its parent is gone or has not reaped it) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cleanup_stale() -> list[str]:
    """Delete namespaces (and their processes) and temp dirs left by labs of dead test processes.

    Why: a SIGKILLed pytest cannot run ``__exit__``; its namespaces carry its pid in the name.
    """
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed: list[str] = []
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{PREFIX}(\d+)-", name)
        if not m or pid_alive(int(m.group(1))):
            continue
        _kill_netns_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        removed.append(name)
    for d in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*-*"):
        m = re.match(rf"^{PREFIX}(\d+)-\d+-", d.name)
        if m and d.is_dir() and not pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


def _kill_netns_pids(ns: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for tok in out.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


@dataclass
class _Host:
    name: str
    netns: str
    rundir: Path  # mounted over /run for this host's commands


class Lab:
    """Namespaces joined by veth links, with netifd-like WireGuard bring-up.

    Use as a context manager; everything is torn down on exit::

        with Lab() as lab:
            lab.add_host("a"); lab.add_host("b")
            lab.link("a", "b", "10.0.0.1/30", "10.0.0.2/30")
            assert lab.ping("a", "10.0.0.2")
    """

    def __init__(self) -> None:
        global _lab_seq
        _lab_seq += 1
        self.prefix = f"{PREFIX}{os.getpid()}-{_lab_seq}-"
        self.hosts: dict[str, _Host] = {}
        self.warnings: list[str] = []  # things netifd would swallow silently (kept for debugging)
        self._links: list[tuple[str, str]] = []  # (host, ifname) of one veth end
        self._wg: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._tmp: Path | None = None
        self._secrets: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lab:
        reason = skip_reason()
        if reason:
            raise LabError(reason)
        cleanup_stale()
        self._tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        return self

    def __exit__(self, *exc: object) -> None:
        errors = self.close()
        if errors and exc[0] is None:
            raise LabError("lab teardown incomplete: " + "; ".join(errors))

    def close(self) -> list[str]:
        """Tear everything down; returns what could not be removed (normally nothing)."""
        errors: list[str] = []
        for key in list(self._wg):
            self._stop_wireguard_go(key)
        for host in self.hosts.values():
            _kill_netns_pids(host.netns)  # anything else a test started inside the lab
        for host, ifname in self._links:
            ns = self.hosts[host].netns
            subprocess.run(["ip", "-n", ns, "link", "del", ifname], capture_output=True)
        self._links.clear()
        for host in list(self.hosts.values()):
            r = subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, text=True)
            if r.returncode != 0 and Path("/run/netns", host.netns).exists():
                errors.append(f"netns {host.netns}: {r.stderr.strip()}")
        self.hosts.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self._tmp.exists():
                errors.append(f"temp dir {self._tmp} left behind")
            self._tmp = None
        return errors

    # ------------------------------------------------------------------ topology

    def add_host(self, name: str) -> str:
        """Create a namespace for ``name`` (loopback up); returns the namespace name."""
        if not re.fullmatch(r"[A-Za-z0-9_]{1,20}", name):
            raise ValueError(f"host name {name!r}: use 1-20 of [A-Za-z0-9_]")
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        assert self._tmp is not None, "use Lab as a context manager"
        netns = self.prefix + name
        rundir = self._tmp / name / "run"
        (rundir / "wireguard").mkdir(parents=True)
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        self.hosts[name] = _Host(name, netns, rundir)
        self._ip(name, "link", "set", "lo", "up")
        return netns

    def link(
        self,
        a: str,
        b: str,
        addr_a: str | None,
        addr_b: str | None,
        *,
        name_a: str | None = None,
        name_b: str | None = None,
        mtu: int | None = None,
    ) -> tuple[str, str]:
        """A veth pair ``a:name_a <-> b:name_b``, addresses (CIDR or None) set, both ends up.

        Default device names are the other host's name (truncated to 15 chars).
        Returns the two device names.
        """
        na = name_a or b[:15]
        nb = name_b or a[:15]
        for n in (na, nb):
            if len(n) > 15:
                raise ValueError(f"ifname {n!r} longer than 15 characters")
        ns_a, ns_b = self.hosts[a].netns, self.hosts[b].netns
        subprocess.run(
            ["ip", "-n", ns_a, "link", "add", na, "type", "veth", "peer", "name", nb, "netns", ns_b],
            check=True,
            capture_output=True,
        )
        self._links.append((a, na))
        for host, dev, addr in ((a, na, addr_a), (b, nb, addr_b)):
            if mtu is not None:
                self._ip(host, "link", "set", dev, "mtu", str(mtu))
            if addr:
                self._ip(host, "-6" if ":" in addr else "-4", "addr", "add", addr, "dev", dev)
            self._ip(host, "link", "set", dev, "up")
        return na, nb

    # ------------------------------------------------------------------ commands

    def argv_for(self, host: str, argv: Sequence[str]) -> list[str]:
        """The full command line that runs ``argv`` inside ``host``."""
        h = self.hosts[host]
        return ["ip", "netns", "exec", h.netns, "sh", "-c", _WRAP, str(h.rundir), *argv]

    def run(
        self,
        host: str,
        argv: Sequence[str],
        check: bool = True,
        *,
        input: str | None = None,
        timeout: float | None = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``host``'s namespace; text output captured."""
        r = subprocess.run(
            self.argv_for(host, argv), capture_output=True, text=True, input=input, timeout=timeout
        )
        if check and r.returncode != 0:
            raise LabError(
                f"[{host}] {' '.join(argv)} exited {r.returncode}: {self._redact(r.stderr.strip())}"
            )
        return r

    def _ip(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # why not `ip -n`: same result, but one code path keeps error messages uniform
        return self.run(host, ["ip", *args], check=check)

    def ping(self, host: str, target: str, count: int = 3, timeout: float = 8.0) -> bool:
        """True when at least one echo reply came back within ``timeout`` seconds.

        Returns as soon as ``count`` replies arrived. The default timeout outlasts one WireGuard
        handshake retry (REKEY_TIMEOUT 5 s + jitter), which is what a first handshake lost to a
        peer that was not listening yet costs.
        """
        argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", "-w", str(max(1, round(timeout)))]
        if ":" in target:
            argv.insert(1, "-6")
        r = self.run(host, [*argv, target], check=False, timeout=timeout + 10)
        m = re.search(r"(\d+) (?:packets )?received", r.stdout)
        if m and int(m.group(1)) > 0:
            return True
        self.check_wireguard_alive()  # a dead daemon is a lab failure, not a "no ping"
        return False

    def check_wireguard_alive(self) -> None:
        """Raise if a wireguard-go this lab started has exited (its device is gone with it)."""
        dead = [f"{h}/{d} (exit {p.returncode})" for (h, d), p in self._wg.items() if p.poll() is not None]
        if dead:
            raise LabError("wireguard-go died: " + ", ".join(dead))

    def route(self, host: str, *args: str, family: int = 4) -> str:
        """``ip -<family> route <args>`` in ``host`` (default ``show``); returns its stdout."""
        return self._ip(host, f"-{family}", "route", *(args or ("show",))).stdout

    def routes(self, host: str, family: int = 4, table: str = "main") -> list[str]:
        """The routing table as normalized lines (single spaces, no trailing blanks)."""
        out = self._ip(host, f"-{family}", "route", "show", "table", table).stdout
        return [" ".join(line.split()) for line in out.splitlines() if line.strip()]

    def wg_dump(self, host: str) -> str:
        """``wg show all dump`` in ``host`` (contains private keys: never print it)."""
        return self.run(host, ["wg", "show", "all", "dump"]).stdout

    # ------------------------------------------------------------------ WireGuard like netifd

    def bring_up_wireguard(self, host: str, network: UciPackage) -> list[str]:
        """Set up every ``proto wireguard`` interface of ``network`` in ``host`` as netifd would.

        Order as in netifd + wireguard.sh: (re)create the device, mtu, ``wg setconf`` from a 0600
        file, link up, addresses, endpoint host routes, then the ``route_allowed_ips`` routes with
        the interface metric. Returns the interface names brought up.

        Bring up the listening side (uplinks) before the dialing side (mother): a handshake sent
        to a port nobody listens on yet is retried only after 5 s, as on real routers.
        """
        names: list[str] = []
        for wif in read_wireguard_interfaces(network):
            self._secrets.update(wif.secrets())
            self._setup_one(host, wif)
            names.append(wif.name)
        return names

    def _setup_one(self, host: str, wif: _WgInterface) -> None:
        assert self._tmp is not None
        dev = wif.name
        # `ip link del` + `ip link add type wireguard`: a fresh wireguard-go device
        self._stop_wireguard_go((host, dev))
        self._start_wireguard_go(host, dev)
        if wif.mtu:
            r = self._ip(host, "link", "set", "mtu", wif.mtu, "dev", dev, check=False)
            if r.returncode:
                self.warnings.append(f"[{host}] {dev}: mtu {wif.mtu!r} refused: {r.stderr.strip()}")
        for peer in wif.skipped_peers:
            self.warnings.append(f"[{host}] {dev}: peer {peer} skipped, no public_key")

        self.wg_conf(host, wif, "setconf")

        # netifd: the device goes up, then the proto's addresses and routes are applied
        self._ip(host, "link", "set", dev, "up")
        for address in wif.addresses:
            pfx = _prefix_of(address)
            if pfx is None:
                continue  # no `case` branch matches: the handler ignores it
            fam, cidr = pfx
            extra = ["noprefixroute"] if wif.metric else []
            r = self._ip(host, f"-{fam}", "addr", "add", cidr, "dev", dev, *extra, check=False)
            if r.returncode:
                self.warnings.append(f"[{host}] {dev}: address {address!r} refused: {r.stderr.strip()}")
                continue
            self.subnet_route(host, wif, fam, cidr)

        if not wif.nohostroute:
            self._endpoint_host_routes(host, dev)
        self.peer_routes(host, wif)

    def wg_conf(self, host: str, wif: _WgInterface, verb: str) -> None:
        """``wg setconf|syncconf <dev>`` from a 0600 file removed right after (the handler's
        ``rm -f``); a refusal is a WgSetupError with the keys redacted."""
        assert self._tmp is not None
        dev = wif.name
        cfg = self._tmp / host / f"wg-{dev}.{verb}.conf"
        cfg.unlink(missing_ok=True)   # left by a bridge process killed in the middle
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(wif.wg_config())
            r = self.run(host, ["wg", verb, dev, str(cfg)], check=False)
        finally:
            cfg.unlink(missing_ok=True)
        if r.returncode != 0:
            raise WgSetupError(f"[{host}] wg {verb} {dev} failed: {self._redact(r.stderr.strip())}")

    def subnet_route(self, host: str, wif: _WgInterface, fam: int, cidr: str) -> None:
        """netifd's interface_handle_subnet_route: the connected route re-made with the metric."""
        if wif.metric:
            self._ip(host, f"-{fam}", "route", "replace", self._network_of(cidr), "dev", wif.name,
                     "proto", "kernel", "scope", "link", "metric", str(wif.metric),
                     *self._table(wif, fam), check=False)

    def peer_routes(self, host: str, wif: _WgInterface, check: bool = True) -> None:
        """The ``route_allowed_ips`` routes of every peer, with the interface metric."""
        for peer in wif.peers:
            if not peer.route_allowed_ips:
                continue
            for allowed in peer.allowed_ips:
                pfx = _prefix_of(allowed)
                if pfx is None:
                    continue
                fam, cidr = pfx
                if cidr.endswith("/0") and not wif.defaultroute:
                    continue  # enable_route: no prefix-length-0 routes with defaultroute '0'
                dest = "default" if cidr.endswith("/0") else cidr
                argv = ["route", "replace", dest, "dev", wif.name, "proto", "static", "scope", "link"]
                if wif.metric:
                    argv += ["metric", str(wif.metric)]
                self._ip(host, f"-{fam}", *argv, *self._table(wif, fam), check=check)

    def wait_for_uapi(self, host: str, dev: str, proc: subprocess.Popen[bytes], why_exited: str = "") -> None:
        """Until wireguard-go's UAPI socket and its device are there (10 s at most)."""
        sock = self.hosts[host].rundir / "wireguard" / f"{dev}.sock"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"[{host}] wireguard-go {dev} exited {proc.returncode}{why_exited}")
            if sock.exists() and self._ip(host, "link", "show", dev, check=False).returncode == 0:
                return
            time.sleep(0.02)
        raise LabError(f"[{host}] wireguard-go {dev}: no UAPI socket after 10 s")

    def wait_until_gone(self, host: str, dev: str) -> None:
        """wireguard-go removes its tun device on exit: wait for that (3 s at most), then drop
        its UAPI socket."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self._ip(host, "link", "show", dev, check=False).returncode != 0:
                break
            time.sleep(0.02)
        (self.hosts[host].rundir / "wireguard" / f"{dev}.sock").unlink(missing_ok=True)

    @staticmethod
    def _network_of(cidr: str) -> str:
        import ipaddress

        return str(ipaddress.ip_interface(cidr).network)

    @staticmethod
    def _table(wif: _WgInterface, fam: int) -> list[str]:
        table = wif.ip4table if fam == 4 else wif.ip6table
        return ["table", table] if table else []

    def _endpoint_host_routes(self, host: str, dev: str) -> None:
        """``proto_add_host_dependency``: a host route to each endpoint via whatever reaches it."""
        out = self.run(host, ["wg", "show", dev, "endpoints"]).stdout
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 2 or parts[1] == "(none)":
                continue
            m = re.fullmatch(r"\[?([0-9a-fA-F.:]+)\]?:(\d+)", parts[1])
            if not m:
                continue
            addr = m.group(1)
            fam = 6 if ":" in addr else 4
            got = self._ip(host, f"-{fam}", "route", "get", addr, check=False)
            if got.returncode:
                self.warnings.append(f"[{host}] {dev}: endpoint {addr} unreachable, no host route")
                continue
            via = re.search(r"\bvia (\S+)", got.stdout)
            out_dev = re.search(r"\bdev (\S+)", got.stdout)
            if not out_dev or out_dev.group(1) == dev or out_dev.group(1) == "lo":
                continue
            argv = ["route", "replace", f"{addr}/{128 if fam == 6 else 32}"]
            if via:
                argv += ["via", via.group(1)]
            argv += ["dev", out_dev.group(1), "proto", "static"]
            self._ip(host, f"-{fam}", *argv)

    def _start_wireguard_go(self, host: str, dev: str) -> None:
        assert self._tmp is not None
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"}
        with open(self._tmp / host / f"wireguard-go-{dev}.log", "wb") as log:
            proc = subprocess.Popen(
                self.argv_for(host, ["wireguard-go", "-f", dev]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_set_pdeathsig if threading.current_thread() is threading.main_thread() else None,
            )
        self._wg[(host, dev)] = proc
        log_path = self._tmp / host / f"wireguard-go-{dev}.log"
        try:
            self.wait_for_uapi(host, dev, proc)
        except LabError:
            if proc.poll() is None:
                raise
            text = log_path.read_text(errors="replace")
            raise LabError(f"[{host}] wireguard-go {dev} exited {proc.returncode}: {text.strip()}") from None

    def _stop_wireguard_go(self, key: tuple[str, str]) -> None:
        proc = self._wg.pop(key, None)
        if proc is None:
            return
        stop_process(proc)
        host, dev = key
        if host in self.hosts:
            self.wait_until_gone(host, dev)

    def wire_two_uplinks(self) -> None:
        """Hosts ``mother``, ``up1`` and ``up2`` (as in tests/data/proven): the mother reaches
        uplink N over link ``ulN`` (172.16.N.2/30), the uplink's end is its ``lan`` (.1)."""
        for h in ("mother", "up1", "up2"):
            self.add_host(h)
        for n in (1, 2):
            self.link("mother", f"up{n}", f"172.16.{n}.2/30", f"172.16.{n}.1/30", name_a=f"ul{n}", name_b="lan")

    def masquerade(self, host: str, out: str) -> None:
        """What OpenWrt's firewall does for a zone with ``masq`` on: NAT what leaves ``host``
        through ``out`` (an interface name or an nft wildcard such as ``mw_*``)."""
        self.run(host, ["nft", "-f", "-"], input=_MASQUERADE.format(out=out))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


_MASQUERADE = """table ip mwtest_fw {{
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{out}" masquerade
  }}
}}
"""


# --------------------------------------------------------------------------- a real dump sample


@dataclass
class TwoTunnelSample:
    """Real ``wg show all dump`` output from a mother with two tunnels, after traffic.

    ``keys`` holds the throwaway key pairs (``m1``, ``m2``, ``up1``, ``up2``) so a parser test
    can check which column is which; ``dumps`` is per host (``mother``, ``up1``, ``up2``).
    """

    dumps: dict[str, str]
    keys: dict[str, KeyPair] = field(repr=False)
    listen_ports: dict[str, int]

    @property
    def mother(self) -> str:
        return self.dumps["mother"]


def two_tunnel_network(keys: dict[str, KeyPair]) -> dict[str, UciPackage]:
    """The WireGuard part of the proven mother/up1/up2 ``network`` files, built in code."""

    def iface(name: str, key: str, port: str, addr: str, metric: str | None) -> UciSection:
        opts: dict[str, Value] = {
            "proto": "wireguard",
            "private_key": key,
            "listen_port": port,
            "addresses": (addr,),
        }
        if metric:
            opts["metric"] = metric
        return UciSection("interface", name, opts)

    def peer(ifname: str, name: str, pub: str, allowed: str, endpoint: str | None) -> UciSection:
        opts: dict[str, Value] = {"description": f"peer {name}", "public_key": pub,
                                  "route_allowed_ips": "1", "allowed_ips": (allowed,)}
        if endpoint:
            opts.update(endpoint_host=endpoint, endpoint_port="51820", persistent_keepalive="25")
        return UciSection(f"wireguard_{ifname}", name, opts)

    mother = UciPackage("network", [
        iface("wg1", keys["m1"].private, "51821", "10.101.0.2/30", "10"),
        peer("wg1", "up1", keys["up1"].public, "0.0.0.0/0", "172.16.1.1"),
        iface("wg2", keys["m2"].private, "51822", "10.102.0.2/30", "20"),
        peer("wg2", "up2", keys["up2"].public, "0.0.0.0/0", "172.16.2.1"),
    ])
    ups = {
        f"up{n}": UciPackage("network", [
            iface("wg0", keys[f"up{n}"].private, "51820", f"10.10{n}.0.1/30", None),
            peer("wg0", "mother", keys[f"m{n}"].public, f"10.10{n}.0.2/32", None),
        ])
        for n in (1, 2)
    }
    return {"mother": mother, **ups}


def capture_two_tunnel_dump() -> TwoTunnelSample:
    """Build mother + two uplinks, ping through both tunnels, return every host's dump."""
    keys = {k: gen_keypair() for k in ("m1", "m2", "up1", "up2")}
    nets = two_tunnel_network(keys)
    with Lab() as lab:
        lab.wire_two_uplinks()
        for h in ("up1", "up2", "mother"):  # listeners first
            lab.bring_up_wireguard(h, nets[h])
        for n in (1, 2):
            if not lab.ping("mother", f"10.10{n}.0.1") or not lab.ping(f"up{n}", f"10.10{n}.0.2"):
                raise LabError(f"tunnel {n} does not pass traffic")
        dumps = {h: lab.wg_dump(h) for h in ("mother", "up1", "up2")}
    return TwoTunnelSample(dumps, keys, {"wg1": 51821, "wg2": 51822, "wg0": 51820})


def two_tunnel_dump() -> str:
    """The mother's ``wg show all dump`` with two live tunnels (contains throwaway private keys)."""
    return capture_two_tunnel_dump().mother
