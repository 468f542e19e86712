"""Run on the router itself: libuci through pyuci (module ``uci``), ubusd through ``ubus``.

The safe apply mirrors rpcd's: stage every op with pyuci in a private copy of the touched config
files (own confdir and savedir, so nothing else sees half a change), commit there, compare the
written files with ``plan.expected`` byte for byte, then take the deploy lock, snapshot the live
files, arm a *detached* rollback timer process (it survives mwanctl exiting), move the new files
into place and send procd the same ``config.change`` events rpcd sends. ``confirm`` disarms the
timer; ``rollback`` (or the timer) restores the snapshot.

The bindings are imported lazily: they exist only on OpenWrt (packages python3-uci, python3-ubus).
What the real ones (pyuci 0.10.3, python-ubus 0.1.3) refuse shapes this module: pyuci's
``reorder`` always fails ("Internal uci error") and its ``add`` is not implemented, so libuci
stages every section's content (named sections, created with ``set``) and the planned order is
written after checking that content (``_order``); python-ubus allows one connection per
process, so every LocalTransport shares it; and libuci always layers ``/tmp/.uci/<pkg>`` over
any config dir, so an uncommitted change there stops the apply with a message saying so.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from mwanctl.errors import ApplyError, CommandError, MwanctlError, RolledBack, TransportError
from mwanctl.transports.base import (
    ApplyPlan,
    Pending,
    Receipt,
    RouterState,
    Transport,
    check_probes,
    move_peer_steps,
    rolled_back_late,
    to_confirm,
)
from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage
from mwanctl.wgdump import hide_private_keys, parse_wg_dump

LAST_ROLLBACK = "last-rollback"   # in the state dir: "<epoch> <owner>" of the last rollback
USER_DELTA = "/tmp/.uci"   # libuci's default save dir: always on its delta path

__all__ = ["LocalTransport", "load_bindings"]

MISSING = ("local transport needs the OpenWrt packages python3-uci and python3-ubus "
           "(pip extra mwanctl[openwrt])")


def load_bindings() -> tuple[Any, Any]:
    """``(uci, ubus)`` modules, or one clear line saying what to install."""
    try:
        import ubus  # type: ignore[import-not-found]
        import uci  # type: ignore[import-not-found]
    except ImportError:
        raise TransportError(MISSING) from None
    return uci, ubus


class _SharedUbus:
    """python-ubus has one connection per process (a second ``connect`` raises RuntimeError):
    every transport in the process uses it, the last one to close disconnects."""

    lock = threading.Lock()
    users: dict[int, int] = {}
    external: set[int] = set()     # modules someone else had connected before us

    @classmethod
    def acquire(cls, ubus: Any) -> None:
        with cls.lock:
            key = id(ubus)
            if cls.users.get(key, 0) == 0 and key not in cls.external:
                try:
                    ubus.connect()
                except RuntimeError as e:
                    if "already connected" not in str(e):
                        raise
                    cls.external.add(key)  # another part of this process holds it: share it
            cls.users[key] = cls.users.get(key, 0) + 1

    @classmethod
    def release(cls, ubus: Any) -> None:
        with cls.lock:
            key = id(ubus)
            cls.users[key] = max(0, cls.users.get(key, 0) - 1)
            if cls.users[key] == 0 and key not in cls.external:
                try:
                    ubus.disconnect()
                except RuntimeError:
                    pass


class LocalTransport(Transport):
    """This router. ``confdir``/``statedir``/``user_delta`` exist for tests; defaults are OpenWrt's."""

    def __init__(self, router: str = "local", confdir: str = "/etc/config",
                 statedir: str = "/var/run/mwanctl", owner: str | None = None,
                 uci_module: Any = None, ubus_module: Any = None, user_delta: str = USER_DELTA,
                 wg_command: Sequence[str] = ("wg", "show", "all", "dump")):
        super().__init__(router, owner)
        self.kind = "local"
        self.confdir = Path(confdir)
        self.statedir = Path(statedir)
        self.user_delta = Path(user_delta)
        self.wg_command = list(wg_command)
        if uci_module is None or ubus_module is None:
            uci_module, ubus_module = load_bindings()
        self.uci, self.ubus = uci_module, ubus_module
        self._connected = False

    # -- paths and lock ------------------------------------------------------------------------
    @property
    def _pending_file(self) -> Path:
        return self.statedir / "pending.json"

    @property
    def _snapshot(self) -> Path:
        return self.statedir / "snapshot"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise apply/confirm/rollback and the timer (flock on statedir/lock)."""
        self.statedir.mkdir(parents=True, exist_ok=True)
        with open(self.statedir / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _pending(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._pending_file.read_text()))
        except FileNotFoundError:
            return None

    # -- ubus ----------------------------------------------------------------------------------
    def _call(self, obj: str, method: str, args: dict[str, Any]) -> Any:
        if not self._connected:
            try:
                _SharedUbus.acquire(self.ubus)
            except (OSError, RuntimeError) as e:
                raise CommandError(f"{self.router}: cannot connect to ubusd: {e}") from e
            self._connected = True
        try:
            return self.ubus.call(obj, method, args)
        except RuntimeError as e:
            raise CommandError(f"{self.router}: ubus call {obj} {method} failed: {e}") from e

    def _announce(self, packages: Sequence[str]) -> None:
        """What rpcd's apply does: one config.change event per package, so procd reloads services."""
        for p in packages:
            self._call("service", "event", {"type": "config.change", "data": {"package": p}})

    # -- reading -------------------------------------------------------------------------------
    def _read(self, package: str) -> UciPackage | None:
        from mwanctl.uci.parse import parse

        path = self.confdir / package
        return parse(path.read_text(), package) if path.is_file() else None

    def read_state(self, packages: Sequence[str]) -> RouterState:
        state = RouterState(packages={p: self._read(p) for p in packages})
        info = self._pending()
        if info is not None:
            state.pending = Pending(owner=str(info["owner"]), since=int(info["since"]),
                                    deadline=int(info["deadline"] - time.time()))
        try:
            state.extra["last_rollback"] = (self.statedir / LAST_ROLLBACK).read_text().strip()
        except FileNotFoundError:
            pass
        return state

    # -- staging with pyuci ----------------------------------------------------------------------
    def _check_user_delta(self, packages: Sequence[str]) -> None:
        """libuci reads /tmp/.uci/<pkg> whatever config and save dirs a caller sets: someone's
        uncommitted change there would be mixed into this deploy. Say so (no values: they may
        be keys)."""
        for p in packages:
            f = self.user_delta / p
            try:
                n = sum(1 for line in f.read_text(errors="replace").splitlines() if line.strip())
            except (FileNotFoundError, IsADirectoryError):
                continue
            if n:
                raise ApplyError(f"{self.router}: {n} uncommitted change(s) to {p} wait in {f} "
                                 f"(see `uci changes {p}`); libuci would mix them into this deploy: "
                                 f"commit them (`uci commit {p}`) or drop them (`uci revert {p}`) first")

    def _stage(self, plan: ApplyPlan, workdir: Path) -> None:
        """Run the ops with libuci on a private copy; raise ApplyError on the first failure."""
        conf, save = workdir / "config", workdir / "save"
        conf.mkdir(parents=True)
        save.mkdir()
        for p in plan.packages:
            if not (self.confdir / p).is_file():
                raise ApplyError(f"{self.router}: /etc/config/{p} does not exist")
            shutil.copy2(self.confdir / p, conf / p)
        u = self.uci.Uci(confdir=str(conf), savedir=str(save))
        for p in plan.packages:
            for op in plan.changes[p]:
                if op.kind == "reorder":
                    continue  # pyuci's reorder always fails: see _order
                try:
                    self._op(u, op)
                except self.uci.UciException as e:
                    raise ApplyError(f"{self.router}: {op.kind} {p}.{op.section}"
                                     f"{'.' + op.option if op.option else ''} failed: {e}") from e
            u.commit(p)
        for p in plan.packages:
            if any(op.kind == "reorder" for op in plan.changes[p]):
                self._order(p, conf, save, plan.expected[p])

    def _order(self, package: str, conf: Path, save: Path, expected_text: str) -> None:
        """Put the sections in the planned order without pyuci's broken ``reorder``.

        libuci has staged and written every section's content; only the order is left. Check
        that what it wrote is the plan's content section by section (named by name, anonymous
        ones by their order), then write the file in the planned order with mwanctl's renderer
        (the one the uci vectors prove byte-identical to libuci's writer)."""
        from mwanctl.uci.parse import parse
        from mwanctl.uci.render import file_text

        have = parse((conf / package).read_text(), package)
        want = parse(expected_text, package)

        def content(pkg: UciPackage) -> tuple[dict[str, Any], list[Any]]:
            named = {x.name: (x.type, dict(x.options)) for x in pkg.sections if x.name is not None}
            anon = [(x.type, dict(x.options)) for x in pkg.sections if x.name is None]
            return named, anon

        if content(have) != content(want):
            raise ApplyError(f"{self.router}: staged {package} differs from the plan; nothing was committed")
        tmp = conf / f".{package}.order"
        tmp.write_text(file_text(want))
        os.replace(tmp, conf / package)

    @staticmethod
    def _op(u: Any, op: Op) -> None:
        """One op with what pyuci offers (no ``add``: sections are created named, by ``set``)."""
        if op.kind == "add_section":
            u.set(op.package, op.section, op.value)
        elif op.kind in ("set", "set_list"):
            u.get(op.package, op.section)  # raises UciExceptionNotFound for a missing section
            u.set(op.package, op.section, op.option, op.value)
        elif op.kind == "delete_option":
            u.get(op.package, op.section, op.option)
            u.delete(op.package, op.section, op.option)
        elif op.kind == "delete_section":
            u.get(op.package, op.section)
            u.delete(op.package, op.section)
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")

    def _verify(self, plan: ApplyPlan, conf: Path) -> None:
        from mwanctl.uci.parse import parse
        from mwanctl.uci.render import file_text

        for p in plan.packages:
            want = file_text(parse(plan.expected[p], p))
            if (conf / p).read_text() != want:
                raise ApplyError(f"{self.router}: staged {p} differs from the plan; nothing was committed")

    # -- the contract --------------------------------------------------------------------------
    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        work = self.statedir / f"stage-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        token = secrets.token_hex(12)
        try:
            with self._locked():
                info = self._pending()
                if info is not None:
                    left = max(0, int(info["deadline"] - time.time()))
                    raise ApplyError(f"another apply is pending on {self.router}; confirm or wait {left} s")
                self._check_user_delta(plan.packages)
                self._stage(plan, work)
                self._verify(plan, work / "config")
                self._install(plan, work / "config", confirm_timeout, token)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        receipt = Receipt.armed_now(self.router, self.kind, token, confirm_timeout)
        try:
            self._announce(plan.packages)
            for iface in plan.restart_ifaces:
                self._call(f"network.interface.{iface}", "down", {})
                self._call(f"network.interface.{iface}", "up", {})
            for iface in plan.renew_ifaces:   # what reload does not see (peers, list addresses)
                self._call(f"network.interface.{iface}", "renew", {})
            self._check_peers(plan.check_peers)
        except MwanctlError as e:
            self.rollback()
            raise ApplyError(f"{e} (rolled back)") from e
        return receipt

    def _install(self, plan: ApplyPlan, staged: Path, timeout: int, token: str) -> None:
        """Snapshot, arm the timer, then swap the files in (each os.replace is atomic)."""
        shutil.rmtree(self._snapshot, ignore_errors=True)
        self._snapshot.mkdir(parents=True)
        for p in plan.packages:
            shutil.copy2(self.confdir / p, self._snapshot / p)
        now = time.time()
        info = {"owner": self.owner, "since": int(now), "deadline": now + timeout,
                "packages": plan.packages, "renew": plan.renew_ifaces, "timer": 0, "token": token}
        self._pending_file.write_text(json.dumps(info))
        timer = subprocess.Popen(
            [sys.executable, "-m", "mwanctl.transports.local", "rollback-timer",
             str(self.confdir), str(self.statedir), str(timeout)],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=True)
        info["timer"] = timer.pid
        self._pending_file.write_text(json.dumps(info))
        for p in plan.packages:
            tmp = self.confdir / f".{p}.mwanctl-new"
            shutil.copy2(staged / p, tmp)
            os.replace(tmp, self.confdir / p)

    def confirm(self, receipt: Receipt | None = None) -> None:
        if not to_confirm(receipt):
            return
        restored: list[str] = []
        with self._locked():
            info = self._pending()
            if info is None or (receipt is not None and info.get("token") != receipt.token):
                raise RolledBack(self._late(receipt))
            if time.time() >= float(info["deadline"]):
                restored = restore(self.confdir, self.statedir)  # what the timer is about to do
            else:
                self._pending_file.unlink()
                shutil.rmtree(self._snapshot, ignore_errors=True)
                (self.statedir / LAST_ROLLBACK).unlink(missing_ok=True)   # as confirm.sh does
        _stop(int(info.get("timer") or 0))
        if restored:
            self._announce_quietly(restored)
            raise RolledBack(self._late(receipt))
        if receipt is not None:
            receipt.confirmed = True

    def _late(self, receipt: Receipt | None) -> str:
        if receipt is None:
            return f"{self.router}: no apply is pending (already confirmed, or rolled back)"
        return rolled_back_late(self.router, receipt)

    def _announce_quietly(self, packages: Sequence[str]) -> None:
        try:
            self._announce(packages)
        except CommandError:
            subprocess.run(["reload_config"], check=False, capture_output=True)

    def rollback(self) -> bool:
        with self._locked():
            info = self._pending()
            if info is None:
                return False
            restored = restore(self.confdir, self.statedir)
        _stop(int(info.get("timer") or 0))
        self._announce(restored)
        for iface in info.get("renew") or []:
            self._call(f"network.interface.{iface}", "renew", {})
        return True

    def rehandshake(self, peers: dict[str, list[str]]) -> None:
        from mwanctl.rehandshake import readd_argv

        dump = self._probe("wg_dump")
        for iface, keys in peers.items():
            for key in keys:
                argv, psk = readd_argv(self.router, iface, key, dump)
                res = subprocess.run(["wg", *argv], input=psk, capture_output=True, text=True,
                                     timeout=20, check=False)
                if res.returncode != 0:
                    raise CommandError(f"{self.router}: wg set {iface} failed: {res.stderr.strip()}")

    def query(self, names: Sequence[str]) -> dict[str, str]:
        check_probes(names)
        return {n: self._probe(n) for n in names}

    def _probe(self, name: str) -> str:
        try:
            if name == "uptime":
                return Path("/proc/uptime").read_text()
            if name == "epoch":
                return f"{int(time.time())}\n"
            if name == "tracker":  # the same text as query.sh's probe
                return "".join(f"== {f.stem}\n{f.read_text()}"
                               for f in sorted(Path("/var/run/mwanctl-track").glob("*.state")))
            if name == "wg_dump":
                res = subprocess.run(self.wg_command, capture_output=True, text=True, timeout=20, check=False)
                if res.returncode != 0:
                    return f"ERROR: {res.stderr.strip()}"
                return hide_private_keys(res.stdout)
            if name == "dns":      # query.sh's own probe, run by this router's shell
                return _shell_probe(name)
            if name in ("ip_addr", "ip_link"):
                argv = ["ip", "-o", "addr" if name == "ip_addr" else "link", "show"]
                res = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
                return res.stdout if res.returncode == 0 else f"ERROR: {res.stderr.strip()}"
            obj, method = {"mwan3_status": ("mwan3", "status"), "wan_status": ("network.interface.wan", "status"),
                           "proto_handlers": ("network", "get_proto_handlers"),
                           "iface_dump": ("network.interface", "dump")}[name]
            reply = self._call(obj, method, {})
            data = reply[0] if isinstance(reply, list) and reply else reply
            return json.dumps(data, indent="\t")
        except (CommandError, OSError, subprocess.SubprocessError) as e:
            return f"ERROR: {e}"

    can_rekey_live = True

    def rekey_live(self, iface: str, peer: str, endpoint: Optional[str], keepalive: int = 0) -> bool:
        def wg(*args: str) -> str:
            res = subprocess.run(["wg", *args], capture_output=True, text=True, timeout=20, check=False)
            if res.returncode != 0:
                raise CommandError(f"{self.router}: wg {args[0]} {iface} failed: {res.stderr.strip()}")
            return res.stdout
        # the pending rollback announces config.change for the restored packages: procd reloads
        # network then, which rebuilds the tunnel back
        self._call("network", "reload", {})
        deadline = time.monotonic() + 10
        while peer not in wg("show", iface, "peers").split():
            if time.monotonic() > deadline:
                raise CommandError(f"{self.router}: the new peer did not show in wg within 10 s")
            time.sleep(0.1)
        if not endpoint:
            return False
        wg("set", iface, "peer", peer, "endpoint", endpoint, "persistent-keepalive", "25")
        seen = False
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            device = parse_wg_dump(wg("show", "all", "dump"), self.router).get(iface)
            live = device.peers.get(peer) if device is not None else None
            seen = live is not None and live.latest_handshake is not None
            if not seen:
                time.sleep(0.1)
        wg("set", iface, "peer", peer, "persistent-keepalive", str(int(keepalive)))
        return seen

    can_move_peer_live = True
    wg_program: Sequence[str] = ("wg",)   # how `wg` is run (a test runs it in a namespace)

    def move_peer_live(self, iface: str, peer: str, allowed_ips: Sequence[str],
                       endpoint: Optional[str] = None, remove: Optional[str] = None,
                       renew: bool = False, key: Optional[str] = None) -> Optional[int]:
        steps = [[*self.wg_program, *a] for a in move_peer_steps(iface, peer, allowed_ips, endpoint, remove)]
        if renew:   # the pending apply renews it on rollback too (before anything goes live)
            with self._locked():
                info = self._pending()
                if info is None or info.get("owner") != self.owner:
                    raise CommandError(f"{self.router}: wg set {iface} failed: its pending change "
                                       "is gone (rolled back?)")
                if iface not in (info.get("renew") or []):
                    info["renew"] = [*(info.get("renew") or []), iface]
                    self._pending_file.write_text(json.dumps(info))
        for argv in steps:
            try:
                res = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            except (OSError, subprocess.SubprocessError) as e:
                raise CommandError(f"{self.router}: wg set {iface} failed: {e}") from None
            if res.returncode != 0:
                raise CommandError(f"{self.router}: wg set {iface} failed: {res.stderr.strip()}")
        if renew:
            self._call(f"network.interface.{iface}", "renew", {})
        return None   # netifd answers before its renew ran: the caller waits for the key

    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        verb = "ifdown" if drained else "ifup"
        res = subprocess.run(["mwan3", verb, iface], capture_output=True, text=True, timeout=60, check=False)
        if res.returncode != 0:
            raise CommandError(f"{self.router}: mwan3 {verb} {iface} failed: {res.stderr.strip()}")
        if drained:
            for addr in forget:   # OpenWrt's kernel deletes the entries of an address written here
                try:
                    Path("/proc/net/nf_conntrack").write_text(f"{addr}\n")
                except OSError:
                    break

    def close(self) -> None:
        if self._connected:
            _SharedUbus.release(self.ubus)
            self._connected = False




def _stop(pid: int) -> None:
    if pid > 0:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def restore(confdir: Path, statedir: Path) -> list[str]:
    """Put the snapshot back (caller holds the lock) and record when and whose (``last-rollback``:
    "<epoch> <owner>", as remote/lib.sh's mw_restore writes it, so deploy and plan can say what
    happened after a lost session); returns the packages restored."""
    snap = statedir / "snapshot"
    pending = statedir / "pending.json"
    try:
        owner = str(json.loads(pending.read_text()).get("owner") or "")
    except (OSError, ValueError, AttributeError):
        owner = ""
    restored = []
    for f in sorted(snap.iterdir()) if snap.is_dir() else []:
        tmp = confdir / f".{f.name}.mwanctl-old"
        shutil.copy2(f, tmp)
        os.replace(tmp, confdir / f.name)
        restored.append(f.name)
    shutil.rmtree(snap, ignore_errors=True)
    record = statedir / ".last-rollback.new"
    record.write_text(f"{int(time.time())} {owner}\n")
    os.replace(record, statedir / LAST_ROLLBACK)
    pending.unlink(missing_ok=True)
    return restored


def _timer_main(confdir: str, statedir: str, seconds: str) -> int:
    """The detached rollback timer: sleep, then restore unless confirmed meanwhile."""
    me = os.getpid()
    time.sleep(float(seconds))
    t = LocalTransport.__new__(LocalTransport)
    t.statedir, t.confdir, t.router = Path(statedir), Path(confdir), "local"
    with t._locked():
        info = t._pending()
        if info is None or int(info.get("timer") or 0) != me:
            return 0
        restored = restore(t.confdir, t.statedir)
    try:
        _, ubus = load_bindings()
        ubus.connect()
        for p in restored:
            ubus.call("service", "event", {"type": "config.change", "data": {"package": p}})
        for iface in info.get("renew") or []:
            ubus.call(f"network.interface.{iface}", "renew", {})
        ubus.disconnect()
    except (TransportError, OSError, RuntimeError):
        subprocess.run(["reload_config"], check=False)
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["rollback-timer"]:
    sys.exit(_timer_main(*sys.argv[2:5]))


def _shell_probe(name: str) -> str:
    """One probe of remote/query.sh, run locally by ``sh`` exactly as the SSH transport runs it
    on a router (the DNS probe needs busybox nslookup and the shell's job control, not Python)."""
    import secrets

    from mwanctl.shellquote import sh_quote
    from mwanctl.transports.ssh import parse_reply, remote_script

    mark = "MWANCTL-" + secrets.token_hex(12)
    script = (f"MW_MARK={sh_quote(mark)}\nMW_PROBES={sh_quote(name)}\n"
              + remote_script("lib.sh") + remote_script("query.sh"))
    res = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, check=False)
    text, rc = parse_reply(res.stdout, mark, res.returncode, res.stderr).blocks.get(f"probe {name}", ("no output", 1))
    return text if rc == 0 else "ERROR: " + (text.strip() or f"exit status {rc}")
