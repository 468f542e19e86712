"""SSH transport: every Transport method is ONE ``sh -s`` exec of a router-side script.

The scripts live in ``mwanctl/remote/*.sh`` (POSIX sh, busybox ash; only what OpenWrt ships).
Arguments reach them as shell variable assignments quoted with ``sh_quote``, prepended to the
script text on stdin, so no value ever becomes part of a command line. Replies are framed by
lines starting with a random per-call marker, so no config text can forge one.

paramiko is imported lazily (here only): on a router, mwanctl runs without it. Its own log
records (banner errors with tracebacks from its transport thread) never reach the terminal:
every failure becomes one error line here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

from mwanctl.errors import (
    ApplyError,
    ApplyInterrupted,
    AuthError,
    CommandError,
    ConfirmError,
    ConnectError,
    HostKeyError,
    RolledBack,
    TransportError,
)
from mwanctl.transports.base import (
    RENEW_WAIT,
    ApplyPlan,
    Pending,
    Receipt,
    RouterState,
    Transport,
    check_probes,
    mask_secrets,
    move_peer_steps,
    rolled_back_late,
    to_confirm,
)
from mwanctl.uci.changes import Op

if TYPE_CHECKING:
    import paramiko

PasswordSource = str | Callable[[], str] | None

_PKG_RE = re.compile(r"^[A-Za-z0-9_-]+$")       # uci package (file) names
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")        # netifd interface / init script names
_SVC_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_RE = re.compile(r"^[A-Za-z0-9+/]{42,43}=?$")  # WireGuard public key (base64 of 32 bytes)
_ENDPOINT_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")  # as `wg show` prints

# paramiko logs transport-thread failures (with tracebacks) through `logging`; with no handler
# Python's last-resort handler prints them. A NullHandler on its logger keeps them off stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class JumpHost:
    """A host to tunnel through (the mother, for uplinks only reachable over WireGuard)."""

    host: str
    port: int = 22
    user: str = "root"
    key_filename: str | None = None
    password: PasswordSource = None


@dataclass
class Reply:
    """One exec's result, split by the marker protocol."""

    status: int
    lines: list[str]                       # marker lines, marker stripped
    blocks: dict[str, tuple[str, int]]     # name -> (text, exit code), last one wins
    stderr: str
    raw: str = field(repr=False, default="")
    mark: str = ""                          # the call's marker: apply's is the deploy's token

    def first(self, word: str) -> list[str] | None:
        """The words of the first marker line starting with ``word``."""
        for line in self.lines:
            parts = line.split(" ")
            if parts[0] == word:
                return parts
        return None


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


_PATH_RE = re.compile(r"/[A-Za-z0-9_.][A-Za-z0-9_./-]*\Z")
_LINK_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*\Z")


def _file_args(plan: ApplyPlan) -> dict[str, str]:
    """MW_FILES/MW_FILE_<n>/MW_LINKS/MW_REMOVE for apply.sh's mw_files (the handover tracker)."""
    paths = list(plan.files)
    args = {"MW_FILES": " ".join(_check(_PATH_RE, p, "path") for p in paths),
            "MW_LINKS": " ".join(f"{_check(_PATH_RE, p, 'path')}:{_check(_LINK_RE, t, 'link target')}"
                                 for p, t in plan.links.items()),
            "MW_REMOVE": " ".join(_check(_PATH_RE, p, "path") for p in plan.remove)}
    for i, p in enumerate(paths, start=1):
        args[f"MW_FILE_{i}"] = plan.files[p].rstrip("\n")   # printf adds the last newline back
    return args


def remote_script(name: str) -> str:
    return (resources.files("mwanctl") / "remote" / name).read_text(encoding="utf-8")


def parse_reply(out: str, mark: str, status: int, stderr: str) -> Reply:
    """Split stdout into marker lines and framed blocks (see ``mw_block`` in lib.sh)."""
    lines: list[str] = []
    blocks: dict[str, tuple[str, int]] = {}
    prefix = mark + " "
    open_name: str | None = None
    buf: list[str] = []
    for line in out.split("\n"):
        if line.startswith(prefix):
            rest = line[len(prefix):]
            if open_name is not None and rest.startswith("end "):
                name, _, rc = rest[4:].rpartition(" ")
                # joining the lines drops exactly the newline mw_block added before the marker
                blocks[name] = ("\n".join(buf), int(rc) if rc.isdigit() else 1)
                open_name, buf = None, []
                continue
            if open_name is None and rest.startswith("begin "):
                open_name, buf = rest[6:], []
                continue
            lines.append(rest)
        elif open_name is not None:
            buf.append(line)
    return Reply(status, lines, blocks, stderr, out)


def first_difference(expected: str, got: str) -> str:
    """Describe the first differing line of two texts (1-based)."""
    a, b = expected.split("\n"), got.split("\n")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<end of text>"
        y = b[i] if i < len(b) else "<end of text>"
        if x != y:
            return f"line {i + 1}: expected {mask_secrets(x)!r}, got {mask_secrets(y)!r}"
    return "texts are equal"


class _HostKeyPolicy:
    """Unknown host keys: refuse, or trust on first use (and record) when the user asked."""

    def __init__(self, owner: SshTransport, accept_new: bool, known_hosts: Path):
        self.owner, self.accept_new, self.known_hosts = owner, accept_new, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise HostKeyError(
                f"unknown host key for {self.owner.router} ({hostname}, {key.get_name()} "
                f"{fingerprint(key)}); verify it, then connect once with accept_new_host_key "
                f"(--accept-new-host-key) or add it to {self.known_hosts}")
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a", encoding="ascii") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SshTransport(Transport):
    """One router over SSH (dropbear on OpenWrt), optionally through a jump host."""

    def __init__(self, router: str, host: str, port: int = 22, user: str = "root",
                 key_filename: str | os.PathLike[str] | None = None,
                 password: PasswordSource = None, use_agent: bool = True,
                 known_hosts: str | os.PathLike[str] | None = None,
                 accept_new_host_key: bool = False, connect_timeout: float = 10.0,
                 command_timeout: float = 120.0, jump: JumpHost | None = None,
                 owner: str | None = None, dead_after: float = 8.0):
        super().__init__(router, owner)
        self.kind = "ssh"
        self.host, self.port, self.user = host, port, user
        self.key_filename = str(key_filename) if key_filename else None
        self.password = password
        self.use_agent = use_agent
        self.known_hosts = Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.dead_after = dead_after    # seconds without an answer before the link counts as cut
        self.jump = jump
        self._client: paramiko.SSHClient | None = None
        self._jump_client: paramiko.SSHClient | None = None

    # -- connection ------------------------------------------------------------------------
    def _host_id(self, host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def _new_client(self) -> paramiko.SSHClient:
        import paramiko

        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        policy = _HostKeyPolicy(self, self.accept_new_host_key, self.known_hosts)  # paramiko duck-types it
        client.set_missing_host_key_policy(cast("paramiko.MissingHostKeyPolicy", policy))
        return client

    def _password(self, source: PasswordSource) -> str | None:
        return source() if callable(source) else source

    def _socket(self, host: str, port: int, deadline: float) -> Any:
        """A TCP connection to (host, port), or a channel through the jump host."""
        if self._jump_client is not None:
            return self._tunnel(self._jump_client, host, port, deadline)
        where = f"{self.router} ({host}:{port})"
        try:
            sock = socket.create_connection((host, port), timeout=_left(deadline))
            _detect_dead_link(sock, self.dead_after)
            return sock
        except TimeoutError:
            raise ConnectError(f"cannot connect to {where}: timed out after "
                               f"{self.connect_timeout:g} s") from None
        except OSError as e:
            raise ConnectError(f"cannot connect to {where}: {e.strerror or e}") from None

    def _open(self, host: str, port: int, user: str, key_filename: str | None,
              password: PasswordSource, deadline: float) -> paramiko.SSHClient:
        """Connect and authenticate within ``deadline``, mapping every failure to one line."""
        import paramiko

        where = f"{self.router} ({user}@{host}:{port})"
        pw = password if isinstance(password, str) else None
        if callable(password) and key_filename is None and not self.use_agent:
            pw = password()  # nothing else to try first
        for attempt in (0, 1):
            sock = self._socket(host, port, deadline)
            client = self._new_client()
            try:
                client.connect(host, port, username=user, key_filename=key_filename,
                               password=pw, allow_agent=self.use_agent,
                               look_for_keys=self.use_agent and key_filename is None,
                               sock=sock, timeout=_left(deadline),
                               banner_timeout=_left(deadline), auth_timeout=_left(deadline))
                return client
            except HostKeyError:
                client.close()
                raise
            except paramiko.BadHostKeyException as e:
                client.close()
                hid = self._host_id(host, port)
                raise HostKeyError(
                    f"host key for {self.router} ({hid}) changed: expected "
                    f"{fingerprint(e.expected_key)}, got {fingerprint(e.key)}; if the router was "
                    f"reinstalled, remove the old key with "
                    f"`ssh-keygen -R '{hid}' -f {self.known_hosts}`") from None
            except paramiko.AuthenticationException:
                client.close()
                if attempt == 0 and callable(password) and pw is None:
                    pw = password()  # ask only when keys and agent were not enough
                    continue
                raise AuthError(f"authentication failed for {where}: wrong password, or key "
                                f"not authorized") from None
            except (paramiko.SSHException, EOFError, OSError) as e:
                client.close()
                if "No authentication methods" in str(e):
                    raise AuthError(f"cannot authenticate to {where}: no key, agent or "
                                    f"password given") from None
                if isinstance(e, (socket.timeout, TimeoutError)) or time.monotonic() >= deadline:
                    raise ConnectError(f"cannot connect to {where}: no SSH answer within "
                                       f"{self.connect_timeout:g} s") from None
                raise ConnectError(f"cannot connect to {where}: {e}") from None
        raise AuthError(f"authentication failed for {where}")

    def _tunnel(self, jump: paramiko.SSHClient, host: str, port: int, deadline: float) -> Any:
        """A direct-tcpip channel from the jump host to (host, port), used as a socket."""
        import paramiko

        try:
            return _live(jump).open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                  timeout=_left(deadline))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise ConnectError(f"cannot reach {self.router} ({host}:{port}) through "
                               f"{self.jump.host if self.jump else '?'}: {e}") from None

    def connect(self) -> paramiko.SSHClient:
        live = self._client.get_transport() if self._client is not None else None
        if self._client is not None and live is not None and live.is_active():
            return self._client
        self.close()
        deadline = time.monotonic() + self.connect_timeout
        if self.jump is not None:
            j = self.jump
            self._jump_client = self._open(j.host, j.port, j.user, j.key_filename, j.password,
                                           deadline)
        self._client = self._open(self.host, self.port, self.user, self.key_filename,
                                  self.password, deadline)
        for c in (self._jump_client, self._client):
            if c is not None:   # traffic for the kernel's unanswered-data timeout to judge by
                _live(c).set_keepalive(max(1, int(self.dead_after / 4)))
        return self._client

    def close(self) -> None:
        for c in (self._client, self._jump_client):
            if c is not None:
                _shut_down(c)
                c.close()
        self._client = self._jump_client = None

    # -- one round trip --------------------------------------------------------------------
    def _run(self, op: str, args: dict[str, str], step: str) -> Reply:
        """Send lib.sh + ``op``.sh with ``args`` as quoted variables; one exec, one round trip."""
        import paramiko

        from mwanctl.shellquote import sh_quote

        mark = "MWANCTL-" + secrets.token_hex(12)
        assigns = "".join(f"{k}={sh_quote(v)}\n" for k, v in {"MW_MARK": mark, **args}.items())
        script = assigns + remote_script("lib.sh") + remote_script(op + ".sh")
        data = script.encode("utf-8")
        client = self.connect()
        self.counters.round_trips += 1
        self.counters.bytes_sent += len(data)
        try:
            chan = _live(client).open_session(timeout=self.connect_timeout)
            chan.settimeout(self.command_timeout)
            chan.exec_command("sh -s")
            chan.sendall(data)
            chan.shutdown_write()
            out, err = _read_all(chan, time.monotonic() + self.command_timeout)
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
            if status == -1:  # paramiko's value when the channel closed without one
                raise EOFError("the session ended without an exit status")
            chan.close()
        except TimeoutError:
            self.close()
            raise CommandError(f"{self.router}: {step} timed out after "
                               f"{self.command_timeout:g} s") from None
        except (paramiko.SSHException, OSError, EOFError) as e:  # the session died under us
            self.close()
            raise CommandError(f"{self.router}: connection lost during {step}: {e}") from None
        self.counters.bytes_received += len(out) + len(err)
        reply = parse_reply(out.decode("utf-8", "replace"), mark, status,
                            err.decode("utf-8", "replace"))
        reply.mark = mark
        return reply

    # -- Transport -------------------------------------------------------------------------
    def read_state(self, packages: Sequence[str]) -> RouterState:
        from mwanctl.uci.parse import parse

        pkgs = [_check(_PKG_RE, p, "package") for p in packages]
        r = self._run("read_state", {"MW_PKGS": " ".join(pkgs)}, "read_state")
        if r.first("done") is None:
            raise CommandError(f"{self.router}: read_state failed: {_why(r)}")
        state = RouterState(packages={}, pending=_pending(r))
        for p in pkgs:
            block = r.blocks.get(f"pkg {p}")
            if block is None:
                state.packages[p] = None
                continue
            text, rc = block
            if rc != 0:
                raise CommandError(f"{self.router}: cannot read /etc/config/{p}: {text.strip()}")
            state.packages[p] = parse(text, p)
        if "last_rollback" in r.blocks:
            state.extra["last_rollback"] = r.blocks["last_rollback"][0].strip()
        if state.pending is not None:
            state.extra["pending_timer"] = r.first("pending")[3]  # type: ignore[index]
        return state

    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        args = self._apply_args(plan, confirm_timeout)
        self.connect()  # a failure here sent nothing: ConnectError/AuthError/HostKeyError
        try:
            r = self._run("apply", args, "apply")
        except CommandError as e:
            # The script ignores HUP/PIPE: it finishes on its own; its timer rolls back.
            raise ApplyInterrupted(f"{e}; if the change was committed, the router rolls it back "
                                   f"by itself in {confirm_timeout} s") from None
        if r.first("ok") is not None and r.status == 0:
            return Receipt.armed_now(self.router, self.kind, r.mark, confirm_timeout)
        raise self._apply_failure(r, plan)

    def _apply_args(self, plan: ApplyPlan, confirm_timeout: int) -> dict[str, str]:
        from mwanctl.uci.batch import batch_script

        pkgs = [_check(_PKG_RE, p, "package") for p in plan.packages]
        if not pkgs:
            raise ApplyError(f"{self.router}: nothing to apply")
        missing = [p for p in pkgs if p not in plan.expected]
        if missing:
            raise ApplyError(f"{self.router}: no expected text for {', '.join(missing)}")
        ops: list[Op] = [op for p in pkgs for op in plan.changes[p]]
        expect = " ".join(f"{p}:{hashlib.md5(plan.expected[p].encode()).hexdigest()}" for p in pkgs)
        peers = " ".join(f"{_check(_NAME_RE, i, 'interface')}:{_check(_KEY_RE, k, 'public key')}"
                         for i, keys in plan.check_peers.items() for k in keys)
        if int(confirm_timeout) < 1:
            raise ApplyError(f"{self.router}: confirm timeout must be at least 1 s")
        return {
            "MW_OWNER": self.owner,
            "MW_PKGS": " ".join(pkgs),
            "MW_BATCH": batch_script(ops),
            "MW_EXPECT": expect,
            "MW_TIMEOUT": str(int(confirm_timeout)),
            "MW_RELOAD": " ".join(_check(_SVC_RE, s, "service") for s in plan.reload),
            "MW_IFACES": " ".join(_check(_NAME_RE, i, "interface") for i in plan.restart_ifaces),
            "MW_RENEW": " ".join(_check(_NAME_RE, i, "interface") for i in plan.renew_ifaces),
            "MW_PEERS": peers,
            "MW_PEER_TRIES": str(max(1, int(self.peer_check_tries))),
            "MW_PEER_PAUSE": f"{max(0.0, float(self.peer_check_pause)):g}",
            "MW_LIB": remote_script("lib.sh"),   # the boot guard keeps a copy (see mw_install_guard)
            **_file_args(plan),
        }

    def _apply_failure(self, r: Reply, plan: ApplyPlan) -> ApplyError:
        """One line saying what went wrong and that the router is on its old config."""
        if r.first("locked") is not None:
            p = _pending(r)
            who = f"by {p.owner}, {p.deadline} s before it rolls back" if p else "by someone"
            return ApplyError(f"{self.router}: another deploy is pending ({who}); "
                              f"confirm or roll it back first")
        if r.first("batch_error") is not None:
            said = r.blocks.get("batch", ("", 0))[0].strip().splitlines() or ["?"]
            return ApplyError(f"{self.router}: uci batch rejected a change ({said[0]}); "
                              f"nothing was changed")
        mismatch = r.first("mismatch")
        if mismatch is not None:
            pkg = mismatch[1]
            staged = r.blocks.get("staged", ("", 0))[0]
            batch_err = r.blocks.get("batch", ("", 0))[0].strip()
            detail = first_difference(plan.expected.get(pkg, ""), staged)
            uci_said = f"; uci said: {batch_err.splitlines()[0]}" if batch_err else ""
            stage = "after commit" if (r.first("fail") or ["", ""])[1] == "commit" else "staged"
            return ApplyError(f"{self.router}: {stage} {pkg} differs from the plan at {detail}"
                              f"{uci_said}; nothing was changed")
        missing = r.first("missing_peers")
        if missing is not None:
            return ApplyError(f"{self.router}: WireGuard peers not live after apply "
                              f"({' '.join(missing[1:])}); rolled back to the old config")
        fail = r.first("fail")
        step = fail[1] if fail else "apply"
        failed_blocks = [f"{n}: {t.strip()}" for n, (t, rc) in r.blocks.items() if rc != 0]
        detail = failed_blocks[-1] if failed_blocks else _why(r)
        return ApplyError(f"{self.router}: apply failed at {step} ({detail}); "
                          f"the router is on its old config")

    def confirm(self, receipt: Receipt | None = None) -> None:
        if not to_confirm(receipt):
            return
        self.close()  # a FRESH connection proves the router is still reachable
        try:
            r = self._run("confirm", {"MW_TOKEN": receipt.token if receipt else ""}, "confirm")
        except TransportError as e:
            raise ConfirmError(f"{e}; the router rolls back by itself") from None
        if r.first("ok") is not None:
            if receipt is not None:
                receipt.confirmed = True
            return
        fail = r.first("fail")
        why = fail[1] if fail else ""
        if why in ("nothing_pending", "other", "rolling_back", "expired"):
            if receipt is None and why == "nothing_pending":
                raise RolledBack(f"{self.router}: no deploy is pending (already confirmed, or "
                                 "rolled back)")
            raise RolledBack(rolled_back_late(self.router, receipt))
        raise ConfirmError(f"{self.router}: confirm failed: {_why(r)}; the router rolls back by itself")

    def rollback(self) -> bool:
        r = self._run("rollback", {}, "rollback")
        if r.first("none") is not None:
            return False
        if r.first("ok") is None:
            fail = r.first("fail")
            if fail and fail[1] == "rolling_back":
                return True  # its timer is restoring it right now
            raise CommandError(f"{self.router}: rollback failed: {_why(r)}")
        return True

    def query(self, names: Sequence[str]) -> dict[str, str]:
        check_probes(names)
        r = self._run("query", {"MW_PROBES": " ".join(names)}, "query")
        if r.first("done") is None:
            raise CommandError(f"{self.router}: query failed: {_why(r)}")
        out: dict[str, str] = {}
        for n in names:
            text, rc = r.blocks.get(f"probe {n}", ("no output", 1))
            out[n] = text if rc == 0 else "ERROR: " + (text.strip() or f"exit status {rc}")
        return out

    def rehandshake(self, peers: dict[str, list[str]]) -> None:
        arg = " ".join(f"{_check(_NAME_RE, i, 'interface')}:{_check(_KEY_RE, k, 'public key')}"
                       for i, keys in peers.items() for k in keys)
        if not arg:
            return
        r = self._run("rehandshake", {"MW_PEERS": arg}, "rehandshake")
        if r.first("ok") is None:
            failed = [f"{n}: {t.strip()}" for n, (t, rc) in r.blocks.items() if rc != 0]
            raise CommandError(f"{self.router}: rehandshake failed: {failed[-1] if failed else _why(r)}")

    can_rekey_live = True

    def rekey_live(self, iface: str, peer: str, endpoint: Optional[str], keepalive: int = 0) -> bool:
        r = self._run("rekey", {"MW_OWNER": self.owner, "MW_IFACE": _check(_NAME_RE, iface, "interface"),
                                "MW_PEER": _check(_KEY_RE, peer, "public key"),
                                "MW_ENDPOINT": _check(_ENDPOINT_RE, endpoint, "endpoint") if endpoint else "",
                                "MW_KEEPALIVE": str(int(keepalive))}, "rekey")
        if r.first("ok") is not None:
            return bool(endpoint)
        if r.first("timeout") is not None:
            return False
        fail = r.first("fail")
        failed = [f"{n}: {t.strip()}" for n, (t, rc) in r.blocks.items() if rc != 0]
        why = {"not-pending": "its pending change is gone (rolled back?)",
               "peer": "the new peer did not show in wg within 10 s"}.get(fail[1] if fail and len(fail) > 1 else "", "")
        raise CommandError(f"{self.router}: bringing the new keys live failed: "
                           f"{why or (failed[-1] if failed else _why(r))}")

    can_move_peer_live = True

    def move_peer_live(self, iface: str, peer: str, allowed_ips: Sequence[str],
                       endpoint: Optional[str] = None, remove: Optional[str] = None,
                       renew: bool = False, key: Optional[str] = None) -> Optional[int]:
        """movepeer.sh; with ``renew`` and ``key`` it waits on the router for the renew to take
        the key (netifd runs the renew after answering) and returns the listen port then."""
        steps = move_peer_steps(iface, peer, allowed_ips, endpoint, remove)  # no space or ; in any value
        r = self._run("movepeer", {"MW_WG": ";".join(" ".join(a) for a in steps), "MW_OWNER": self.owner,
                                   "MW_RENEW": iface if renew else "",
                                   "MW_KEY": _check(_KEY_RE, key, "public key") if renew and key else "",
                                   "MW_WAIT": str(RENEW_WAIT)},
                      "wg set")
        ok = r.first("ok")
        if ok is not None:
            return int(ok[1]) if len(ok) > 1 and ok[1].isdigit() else None
        fail = r.first("fail")
        step = {"set": "wg set", "renew": "renew"}.get(fail[1] if fail and len(fail) > 1 else "", "")
        text = r.blocks.get(step, ("", 1))[0].strip() if step else ""
        if fail and fail[1:2] == ["not-pending"]:
            text = "its pending change is gone (rolled back?)"
        if fail and fail[1:2] == ["renew-late"]:
            step, text = "renew", f"the device did not take its new key within {RENEW_WAIT} s of the renew"
        raise CommandError(f"{self.router}: {step or 'wg set'} {iface} failed: {text or _why(r)}")

    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        action = "ifdown" if drained else "ifup"
        addrs = " ".join(str(ipaddress.ip_address(a)) for a in forget)  # validated: IPs only
        r = self._run("drain", {"MW_IFACE": _check(_NAME_RE, iface, "interface"),
                                "MW_ACTION": action, "MW_FORGET": addrs}, f"mwan3 {action} {iface}")
        if r.first("ok") is None:
            text = r.blocks.get(f"mwan3 {action}", ("", 1))[0].strip()
            raise CommandError(f"{self.router}: mwan3 {action} {iface} failed: "
                               f"{text or _why(r)}")


# -- helpers -------------------------------------------------------------------------------
def _shut_down(client: Any) -> None:
    """End the TCP connection now: paramiko's close() closes the socket while its reader thread
    may still be inside recv() on it, and the kernel sends the FIN only once that returns (up
    to its 0.1 s poll later), so the router would still count the connection while the pool
    (``--connections``) has already given its slot to the next one."""
    t = client.get_transport()
    sock = getattr(t, "sock", None) if t is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _detect_dead_link(sock: socket.socket, dead_after: float) -> None:
    """A cut link (cable, route, firewall) sends no RST: without this, a read blocks until the
    command timeout. TCP keepalive probes an idle connection, and TCP_USER_TIMEOUT drops one whose
    sent data (paramiko's keepalives, every dead_after/4 s) stays unacknowledged for dead_after s.
    A router that is merely busy still ACKs at the TCP level, so it is never mistaken for dead."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(dead_after / 2))
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 2)),
                        ("TCP_KEEPCNT", 2), ("TCP_USER_TIMEOUT", int(dead_after * 1000))):
        opt = getattr(socket, name, None)
        if opt is not None:      # Linux; elsewhere the paramiko keepalive alone remains
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _live(client: paramiko.SSHClient) -> paramiko.Transport:
    """The client's SSH transport; a client without one lost its connection (EOFError, as paramiko
    says it), which the callers report as a lost connection."""
    t = client.get_transport()
    if t is None:
        raise EOFError("the SSH connection is closed")
    return t


def _check(rx: re.Pattern[str], value: str, what: str) -> str:
    if not rx.match(value):
        raise ApplyError(f"invalid {what} name {value!r}")
    return value


def _read_all(chan: Any, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr until the exit status arrives (the server sends it last)."""
    out, err = bytearray(), bytearray()
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        elif (chan.exit_status_ready() and chan.eof_received) or chan.closed:
            break
        elif time.monotonic() > deadline:
            raise TimeoutError
        else:
            time.sleep(0.005)
    return bytes(out), bytes(err)


def _pending(r: Reply) -> Pending | None:
    p = r.first("pending")
    if p is None:
        return None
    owner = r.blocks.get("owner", ("?", 0))[0].strip() or "?"
    return Pending(owner=owner, since=_int_or(p, 1), deadline=_int_or(p, 2))


def _int_or(fields: list[str], i: int, default: int = 0) -> int:
    """A number from a marker line; a lock another apply is still filling in reads as 0."""
    try:
        return int(fields[i])
    except (IndexError, ValueError):
        return default


def _why(r: Reply) -> str:
    err = r.stderr.strip().splitlines()
    if err:
        return err[-1]
    return f"exit status {r.status}, unexpected output"
