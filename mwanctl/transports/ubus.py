"""Talk to a router the way LuCI does: JSON-RPC over HTTP(S) to uhttpd's ``/ubus``, served by rpcd.

Mapping of the transport contract onto rpcd (reference §4):

* login: ``session.login`` (the password is given as a value or a callable, never on a command line).
* ``read_state``: one batch (one HTTP round trip) of ``uci get`` per package, plus a non-destructive
  probe for a pending apply (``uci revert`` answers 6 while any rollback is armed; our own fresh
  session has nothing staged, so nothing is lost) and ``session get`` of the note mwanctl leaves in
  its applying session (owner, since, deadline).
* ``apply``: ``uci revert`` of each package, then each ``Op`` as ``uci add`` (named, with its type),
  ``uci set`` (values as JSON strings, lists as arrays of strings), ``uci delete`` and, for reorder
  ops, one ``uci order`` with the complete wanted order; ``uci get`` of the staged packages is
  compared with ``plan.expected`` (parsed with the engine) before ``uci apply {rollback: true,
  timeout}`` commits and arms rpcd's own rollback timer. rpcd then sends ``config.change`` for each
  package, so procd reloads the services (``plan.reload`` needs no extra call); WireGuard peer
  changes that netifd does not pick up by itself are forced with ``network.interface.<if>``
  ``down`` + ``up`` (``plan.restart_ifaces``).
* ``confirm``: a *fresh* HTTP connection and a fresh ``session.login`` as the same user: rpcd
  re-attaches it to the pending session (§4.4), then ``uci confirm``. This proves the router is
  still reachable after the change. The receipt names the session that applied: a login that
  comes back with another session means that apply is no longer pending (rpcd rolled it back;
  the vectors' late-confirm record), and nothing is confirmed. rpcd answers 5 to a confirm when
  nothing is pending: that too is ``RolledBack``, never success.
* ``rollback``: ``uci rollback``. After a confirm or a rollback the apply session is destroyed
  (``session destroy``), which also removes its ``/var/run/rpcd/uci-<sid>`` save dir.
* ``query``: ``mwan3 status`` (``mwan3_status``), ``network.interface.wan status`` (``wan_status``),
  ``file read /proc/uptime`` (``uptime``) and, for WireGuard, ``file exec /usr/bin/wg show all
  dump`` (``wg_dump``).
* ``set_drained``: ``file exec /usr/sbin/mwan3 ifdown|ifup <iface>``.

WireGuard over ubus: rpcd itself exposes no WireGuard object. netifd's ``network.interface.<wg>
status`` tells only up/down, uptime, addresses and routes, never peers, endpoints or handshakes;
LuCI's ``luci.wireguard`` object exists only with luci-proto-wireguard installed. mwanctl therefore
reads ``wg show all dump`` through rpcd's file plugin (``file exec``), which needs the ACL entry
``"file": {"/usr/bin/wg show all dump": ["exec"]}`` shipped in ``mwanctl/data/rpcd-acl-mwanctl.json``.

Every rpcd answer other than success becomes one clear line (wrong password, missing ACL, an apply
already pending, nothing to apply, timeouts, object not found).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mwanctl.errors import (
    ApplyError,
    ApplyInterrupted,
    AuthError,
    CommandError,
    ConfirmError,
    ConnectError,
    MwanctlError,
    RolledBack,
    TransportError,
)
from mwanctl.transports.base import (
    ApplyPlan,
    Pending,
    Receipt,
    RouterState,
    Transport,
    check_probes,
    mask_value,
    move_peer_steps,
    rolled_back_late,
    to_confirm,
)
from mwanctl.uci.changes import Op
from mwanctl.uci.model import UciPackage, UciSection
from mwanctl.wgdump import hide_private_keys

__all__ = ["PinnedSSLContext", "UbusTransport", "ops_to_calls", "package_from_values"]

NULL_SID = "0" * 32
ACL_HINT = "install mwanctl's rpcd ACL as /usr/share/rpcd/acl.d/mwanctl.json, see README"
NOTE_KEY = "mwanctl"  # session value where an applying mwanctl leaves owner/since/deadline
MAX_POST = 65536     # uhttpd's ubus.c UH_UBUS_MAX_POST_SIZE: a longer request body is refused
EXEC_LINE_MAX = 1024  # rpcd file.c RPC_CMDLINE_MAX_SIZE: the buffer an exec line is ACL-matched in

UBUS_STATUS = {
    1: "Invalid command", 2: "Invalid argument", 3: "Method not found", 4: "Not found",
    5: "No response", 6: "Permission denied", 7: "Request timed out", 8: "Operation not supported",
    9: "Unknown error", 10: "Connection failed", 11: "Out of memory",
    12: "Parsing message data failed", 13: "System error",
}


@dataclass(frozen=True)
class Call:
    """One ubus call: ``object.method(args)``."""

    obj: str
    method: str
    args: dict[str, Any]

    def __str__(self) -> str:
        cfg = self.args.get("config")
        return f"{self.obj}.{self.method}" + (f" {cfg}" if cfg else "")


@dataclass(frozen=True)
class Reply:
    """What came back for one call: a ubus status (>= 0) or a JSON-RPC error code (< 0)."""

    call: Call
    status: int
    data: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0


class PinnedSSLContext(ssl.SSLContext):
    """Accept exactly one certificate, named by its SHA-256 fingerprint (a router's self-signed one).

    The check runs inside the TLS handshake, before any byte (the password!) is sent.
    """

    fingerprint: str

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        der = sock.getpeercert(binary_form=True) or b""
        got = hashlib.sha256(der).hexdigest()
        if got != self.fingerprint:
            sock.close()
            raise ssl.SSLCertVerificationError(
                f"certificate fingerprint sha256:{got} does not match the pinned sha256:{self.fingerprint}")
        return sock


def _pinned_context(fingerprint: str) -> PinnedSSLContext:
    fp = fingerprint.lower().removeprefix("sha256:").replace(":", "").strip()
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise ValueError(f"tls_fingerprint must be sha256:<64 hex digits>, got {fingerprint!r}")
    ctx = PinnedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the pin replaces the CA check
    ctx.fingerprint = fp
    return ctx


_default_ctx: ssl.SSLContext | None = None
_default_ctx_lock = threading.Lock()


def _default_tls_context() -> ssl.SSLContext:
    """The context httpx builds for ``verify=True``, built once per process.

    Why: building it loads every CA certificate (~20 ms of CPU under the GIL), and a deploy opens
    two HTTP clients per router (read, then the fresh-connection confirm): with 50 routers that
    alone was seconds. One context serves any number of connections and threads.
    """
    global _default_ctx
    with _default_ctx_lock:
        if _default_ctx is None:
            import httpx
            _default_ctx = httpx.create_ssl_context()
        return _default_ctx


# ------------------------------------------------------------------------------------------------
# Pure helpers (no I/O)
# ------------------------------------------------------------------------------------------------

def package_from_values(name: str, values: dict[str, Any]) -> UciPackage:
    """Turn rpcd's ``uci get {config}`` reply into the shared model (sections in ``.index`` order)."""
    rows = sorted(values.values(), key=lambda s: s.get(".index", 0))
    pkg = UciPackage(name)
    for row in rows:
        anonymous = bool(row.get(".anonymous"))
        sec = UciSection(type=row[".type"], name=None if anonymous else row[".name"],
                         anon_id=row[".name"] if anonymous else None)
        for k, v in row.items():
            if not k.startswith("."):
                sec.options[k] = tuple(v) if isinstance(v, list) else str(v)
        pkg.sections.append(sec)
    return pkg


def ops_to_calls(package: str, ops: Sequence[Op]) -> list[Call]:
    """Map ops to rpcd uci calls; consecutive value changes of one section share one ``set``.

    Reorder ops are left out: they become one ``uci order`` with the full order (see ``order_call``).
    """
    calls: list[Call] = []
    for op in ops:
        if op.kind == "reorder":
            continue
        last = calls[-1] if calls else None
        if op.kind in ("set", "set_list"):
            value: Any = list(op.value) if isinstance(op.value, tuple) else op.value
            if last and last.method == "set" and last.args["section"] == op.section \
                    and op.option not in last.args["values"]:
                last.args["values"][op.option] = value
                continue
            calls.append(Call("uci", "set", {"config": package, "section": op.section,
                                             "values": {op.option: value}}))
        elif op.kind == "add_section":
            calls.append(Call("uci", "add", {"config": package, "type": op.value, "name": op.section}))
        elif op.kind == "delete_option":
            if last and last.method == "delete" and last.args.get("section") == op.section \
                    and "options" in last.args:
                last.args["options"].append(op.option)
                continue
            calls.append(Call("uci", "delete", {"config": package, "section": op.section,
                                                "options": [op.option]}))
        elif op.kind == "delete_section":
            calls.append(Call("uci", "delete", {"config": package, "section": op.section}))
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")
    return calls


def order_call(package: str, expected: UciPackage, staged: UciPackage) -> Call:
    """``uci order`` with every section in the expected order.

    Anonymous sections (never touched by mwanctl) are addressed by the cfg ids the router gave
    them, matched to the expected ones by their order.
    """
    anon = [s.ref for s in staged.sections if s.anonymous]
    want: list[str] = []
    for s in expected.sections:
        if s.anonymous:
            if not anon:
                raise ApplyError(f"cannot order {package}: the router has fewer anonymous sections than planned")
            want.append(anon.pop(0))
        else:
            want.append(s.ref)
    return Call("uci", "order", {"config": package, "sections": want})


def _shape(pkg: UciPackage) -> list[tuple[str, str | None, dict[str, Any]]]:
    """What must match between staged and expected: order, types, names, option values.

    Anonymous ids are left out (they depend on creation order, not on content); option order
    within a section is libuci's business.
    """
    return [(s.type, s.name, dict(s.options)) for s in pkg.sections]


def first_difference(want: UciPackage, got: UciPackage) -> str | None:
    """One line naming the first difference between two packages, or None when they match."""
    a, b = _shape(want), _shape(got)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            label = x[1] or f"@{x[0]}[{i}]"
            if x[:2] != y[:2]:
                return f"section #{i} is {y[0]} {y[1] or '(anonymous)'}, expected {x[0]} {x[1] or '(anonymous)'}"
            for opt in sorted(set(x[2]) | set(y[2])):
                if x[2].get(opt) != y[2].get(opt):
                    return (f"{label}.{opt} is {mask_value(opt, y[2].get(opt))!r}, "
                            f"expected {mask_value(opt, x[2].get(opt))!r}")
    if len(a) != len(b):
        return f"{len(b)} sections, expected {len(a)}"
    return None


def _parse_expected(text: str, package: str) -> UciPackage:
    from mwanctl.uci.parse import (
        parse,  # the engine; imported late so this module loads without it
    )

    return parse(text, package)


def _exec_line_fits(args: dict[str, Any]) -> bool:
    """Whether rpcd can match ``file exec`` of ``args`` against a command-line ACL at all: it
    joins the program and its string arguments into EXEC_LINE_MAX bytes, at most 254 words, and
    refuses a longer line as if the ACL did not allow it."""
    words = [str(args.get("command")), *[p for p in args.get("params") or [] if isinstance(p, str)]]
    return len(" ".join(words)) < EXEC_LINE_MAX and len(words) < 255


def _acl_allows(acls: dict[str, Any], scope: str, obj: str, fn: str) -> bool:
    for pat, fns in (acls.get(scope) or {}).items():
        if fnmatch.fnmatchcase(obj, pat) and any(fnmatch.fnmatchcase(fn, f) for f in fns):
            return True
    return False


# ------------------------------------------------------------------------------------------------
# The transport
# ------------------------------------------------------------------------------------------------

class UbusTransport(Transport):
    """A router reached over uhttpd's ``/ubus`` JSON-RPC (rpcd).

    ``url`` is ``https://host/ubus`` (a bare host or ``host:port`` means that). TLS is checked
    against the system CAs, or ``ca_file``, or pinned with ``tls_fingerprint="sha256:<hex>"`` (the
    router's self-signed uhttpd certificate: ``openssl x509 -in /etc/uhttpd.crt -noout
    -fingerprint -sha256``). ``password`` is a string or a callable asked at each login.
    """

    def __init__(self, router: str, url: str, username: str = "root",
                 password: str | Callable[[], str] = "", *, ca_file: str | None = None,
                 tls_fingerprint: str | None = None, timeout: float = 30.0,
                 session_timeout: int = 600, owner: str | None = None):
        super().__init__(router, owner)
        self.kind = "ubus"
        self.url = url if "://" in url else f"https://{url}/ubus"
        self.username = username
        self._password = password
        self.timeout = timeout
        self.session_timeout = session_timeout
        self._verify: ssl.SSLContext | bool
        if tls_fingerprint:
            self._verify = _pinned_context(tls_fingerprint)
        elif ca_file:
            self._verify = ssl.create_default_context(cafile=ca_file)
        else:
            self._verify = True
        self._client: Any = None
        self._sid: str | None = None
        self._acls: dict[str, Any] = {}
        self._applied = False        # our last apply armed a rollback (so confirm must find it)
        self._deadline: float | None = None
        self._saw_pending = False    # our session may be the pending one (rpcd re-attached it)

    # -- HTTP and JSON-RPC ---------------------------------------------------------------------
    def _new_client(self) -> Any:
        try:
            import httpx
        except ImportError as e:  # pragma: no cover - depends on the install
            raise TransportError("the ubus transport needs httpx (pip install 'mwanctl[ubus]')") from e
        verify = _default_tls_context() if self._verify is True else self._verify
        return httpx.Client(verify=verify, timeout=self.timeout)

    def _post(self, client: Any, payload: Any) -> Any:
        """One HTTP round trip; counts it; maps network failures to ConnectError."""
        import httpx

        body = json.dumps(payload, separators=(",", ":")).encode()
        self.counters.round_trips += 1
        self.counters.bytes_sent += len(body)
        try:
            resp = client.post(self.url, content=body, headers={"Content-Type": "application/json"})
        except httpx.ConnectError as e:
            reason = str(e) or type(e).__name__
            if "CERTIFICATE" in reason.upper() or "fingerprint" in reason:
                raise ConnectError(f"{self.router}: TLS certificate rejected: {reason}") from e
            raise ConnectError(f"{self.router}: cannot connect to {self.url}: {reason}") from e
        except httpx.TimeoutException as e:
            raise ConnectError(f"{self.router}: no answer from {self.url} within {self.timeout:g} s") from e
        except httpx.HTTPError as e:
            raise ConnectError(f"{self.router}: HTTP error talking to {self.url}: {e}") from e
        self.counters.bytes_received += len(resp.content)
        if resp.status_code != 200:
            raise ConnectError(f"{self.router}: {self.url} answered HTTP {resp.status_code} "
                               "(is uhttpd's ubus_prefix /ubus and rpcd installed?)")
        try:
            return resp.json()
        except ValueError as e:
            raise CommandError(f"{self.router}: {self.url} did not answer JSON-RPC") from e

    def _batch(self, calls: Sequence[Call], sid: str | None = None, client: Any = None) -> list[Reply]:
        """Send ``calls`` as one JSON-RPC batch (one round trip); replies in the same order.

        A batch whose body would exceed uhttpd's request limit goes as several consecutive
        requests (one more round trip each, same session, same order). That keeps a large apply
        atomic: staged uci changes stay in the session until ``uci apply`` commits them.
        """
        if not calls:
            return []
        client = client or self._http()
        sid = sid or self._sid or NULL_SID
        reqs = [{"jsonrpc": "2.0", "id": i, "method": "call", "params": [sid, c.obj, c.method, c.args]}
                for i, c in enumerate(calls)]
        by_id: dict[Any, Any] = {}
        for chunk in self._chunks(reqs, calls):
            raw = self._post(client, chunk if len(chunk) > 1 else chunk[0])
            raw = raw if isinstance(raw, list) else [raw]
            by_id.update((r.get("id"), r) for r in raw if isinstance(r, dict))
        return [self._reply(c, by_id.get(i)) for i, c in enumerate(calls)]

    def _chunks(self, reqs: list[dict[str, Any]], calls: Sequence[Call]) -> list[list[dict[str, Any]]]:
        """Split requests, in order, into JSON arrays each within ``MAX_POST`` bytes."""
        chunks: list[list[dict[str, Any]]] = [[]]
        size = 2  # the brackets
        for req, call in zip(reqs, calls):
            n = len(json.dumps(req, separators=(",", ":")).encode())
            if n + 2 > MAX_POST:
                raise CommandError(f"{self.router}: ubus {call} alone is {n} bytes, more than the "
                                   f"{MAX_POST} bytes uhttpd accepts in one request")
            if chunks[-1] and size + 1 + n > MAX_POST:
                chunks.append([])
                size = 2
            size += n + (1 if len(chunks[-1]) else 0)
            chunks[-1].append(req)
        return chunks

    def _reply(self, call: Call, r: dict[str, Any] | None) -> Reply:
        if r is None:
            raise CommandError(f"{self.router}: no JSON-RPC reply for {call}")
        if "error" in r:
            return Reply(call, int(r["error"].get("code", -32603)))
        res = r.get("result")
        if not isinstance(res, list) or not res or not isinstance(res[0], int):
            raise CommandError(f"{self.router}: malformed reply for {call}: {res!r}")
        return Reply(call, res[0], res[1] if len(res) > 1 and isinstance(res[1], dict) else None)

    def _http(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    # -- errors ---------------------------------------------------------------------------------
    def error(self, reply: Reply) -> MwanctlError:
        """The one-line error for a failed reply."""
        c, code, who = reply.call, reply.status, f"{self.router}"
        if code == -32002:
            return AuthError(f"{who}: access denied to ubus {c.obj}.{c.method} for user "
                             f"{self.username} (session expired or no ACL): {ACL_HINT}")
        if code == -32000:
            hint = {"mwan3": " (is mwan3 installed?)", "file": " (is rpcd's file plugin installed?)"}
            extra = hint.get(c.obj, " (no such netifd interface)" if c.obj.startswith("network.interface.") else "")
            return CommandError(f"{who}: ubus object {c.obj} not found{extra}")
        if code == -32003:
            return ConnectError(f"{who}: ubus call {c.obj}.{c.method} timed out (uhttpd script_timeout)")
        if code < 0:
            return CommandError(f"{who}: JSON-RPC error {code} on {c}")
        if c.obj == "session" and c.method == "login" and code == 6:
            return AuthError(f"{who}: wrong username or password for {self.username}")
        if c.obj == "uci" and code == 6 and c.method in ("apply", "commit", "revert"):
            return ApplyError(self._pending_message())
        if c.obj == "uci" and code == 6 and "config" in c.args:
            return AuthError(f"{who}: user {self.username} lacks ACL for uci/{c.args['config']}: "
                             f"install an acl.d file, see README")
        if c.obj == "uci" and code == 5 and c.method == "apply":
            return ApplyError(f"{who}: nothing to apply (no staged changes)")
        if c.obj == "uci" and code == 4 and "config" in c.args and c.method != "get":
            return ApplyError(f"{who}: uci {c.method} failed on {c.args['config']}"
                              f"{'.' + str(c.args['section']) if 'section' in c.args else ''}: not found")
        if c.obj == "uci" and code == 4:
            return CommandError(f"{who}: /etc/config/{c.args.get('config')} does not exist")
        if c.obj == "file" and code == 4 and c.method == "exec":
            return CommandError(f"{who}: {c.args.get('command')} is not installed on the router")
        if c.obj == "file" and code == 6 and c.method == "exec" and not _exec_line_fits(c.args):
            return CommandError(f"{who}: rpcd refuses to exec {c.args.get('command')} with "
                                f"{len(c.args.get('params') or [])} arguments: it matches an ACL only "
                                f"against command lines of under {EXEC_LINE_MAX} bytes and 254 words")
        if c.obj == "file" and code == 6:
            return AuthError(f"{who}: user {self.username} may not {c.method} "
                             f"{c.args.get('command') or c.args.get('path')}: {ACL_HINT}")
        return CommandError(f"{who}: ubus {c} failed: {UBUS_STATUS.get(code, f'status {code}')}")

    def _pending_message(self, note: dict[str, Any] | None = None) -> str:
        left = None
        if note and isinstance(note.get("deadline"), int):
            left = max(0, note["deadline"] - int(time.time()))
        elif self._deadline is not None:
            left = max(0, int(self._deadline - time.time()))
        if left is None:
            return (f"another apply is pending on {self.router}; confirm it or wait for its "
                    f"rollback timer")
        return f"another apply is pending on {self.router}; confirm or wait {left} s"

    def _check(self, replies: Sequence[Reply]) -> None:
        for r in replies:
            if not r.ok:
                raise self.error(r)

    # -- session --------------------------------------------------------------------------------
    def _login(self, client: Any) -> tuple[str, dict[str, Any]]:
        password = self._password() if callable(self._password) else self._password
        call = Call("session", "login", {"username": self.username, "password": password,
                                         "timeout": self.session_timeout})
        reply = self._batch([call], sid=NULL_SID, client=client)[0]
        if not reply.ok or not reply.data or "ubus_rpc_session" not in reply.data:
            if reply.ok:
                raise AuthError(f"{self.router}: login answered without a session")
            raise self.error(reply)
        return str(reply.data["ubus_rpc_session"]), dict(reply.data.get("acls") or {})

    def _session(self) -> str:
        if self._sid is None:
            self._sid, self._acls = self._login(self._http())
        return self._sid

    def _may(self, obj: str, method: str) -> bool:
        return _acl_allows(self._acls, "ubus", obj, method)

    def _require_write(self, packages: Sequence[str]) -> None:
        """Name a missing ACL before touching anything (rpcd would only say "permission denied")."""
        for m in ("get", "revert", "add", "set", "delete", "order", "apply", "confirm", "rollback"):
            if not self._may("uci", m):
                raise AuthError(f"{self.router}: user {self.username} lacks ACL for ubus uci.{m}: {ACL_HINT}")
        for p in packages:
            if not _acl_allows(self._acls, "uci", p, "write"):
                raise AuthError(f"{self.router}: user {self.username} lacks ACL for uci/{p}: "
                                f"install an acl.d file, see README")

    def _with_relogin(self, calls: list[Call]) -> list[Reply]:
        """Read-only batches survive an expired session: log in again once and repeat."""
        self._session()
        replies = self._batch(calls)
        if any(r.status == -32002 and self._may(r.call.obj, r.call.method) for r in replies):
            self._sid = None
            self._session()
            replies = self._batch(calls)
        return replies

    # -- the contract ---------------------------------------------------------------------------
    def read_state(self, packages: Sequence[str]) -> RouterState:
        self._session()
        calls = [Call("uci", "get", {"config": p}) for p in packages]
        note = self._may("session", "get")
        probe = [p for p in packages if _acl_allows(self._acls, "uci", p, "write")][:1]
        if note:
            calls.append(Call("session", "get", {"keys": [NOTE_KEY]}))
        if probe and self._may("uci", "revert"):
            calls.append(Call("uci", "revert", {"config": probe[0]}))
        replies = self._with_relogin(calls)
        state = RouterState(packages={})
        for p, r in zip(packages, replies):
            if r.status == 4:
                state.packages[p] = None
            elif not r.ok:
                raise self.error(r)
            else:
                state.packages[p] = package_from_values(p, (r.data or {}).get("values") or {})
        rest = replies[len(packages):]
        info = rest[0].data.get("values", {}).get(NOTE_KEY) if note and rest[0].ok and rest[0].data else None
        pending = any(r.call.method == "revert" and r.status == 6 for r in rest)
        if pending:
            self._saw_pending = True
            state.pending = self._pending_from(info)
        return state

    def _pending_from(self, info: Any) -> Pending:
        if isinstance(info, dict) and isinstance(info.get("deadline"), int):
            return Pending(owner=str(info.get("owner", "?")), since=int(info.get("since", 0)),
                           deadline=info["deadline"] - int(time.time()))
        return Pending(owner="another rpcd session", since=0, deadline=0)

    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        packages = plan.packages
        self._session()
        self._require_write(packages)
        expected = {p: _parse_expected(plan.expected[p], p) for p in packages}
        try:
            staged = self._stage(plan, packages)
            if any(op.kind == "reorder" for p in packages for op in plan.changes[p]):
                staged = self._reorder(packages, expected, staged)
            for p in packages:
                diff = first_difference(expected[p], staged[p])
                if diff:
                    raise ApplyError(f"{self.router}: staged {p} differs from the plan: {diff}; "
                                     "nothing was committed")
        except MwanctlError:
            self._discard(packages)
            raise
        receipt = self._commit(confirm_timeout)
        if not receipt.armed:
            return receipt
        try:
            self._restart(plan.restart_ifaces)
            self._renew(plan.renew_ifaces)
            self._check_peers(plan.check_peers)
        except MwanctlError as e:
            try:
                self.rollback()
            except MwanctlError as e2:
                raise ApplyInterrupted(f"{e}; the rollback could not be sent either ({e2}): the "
                                       f"router restores its old config by itself within "
                                       f"{confirm_timeout} s") from e
            raise ApplyError(f"{e} (rolled back)") from e
        return receipt

    def _stage(self, plan: ApplyPlan, packages: list[str]) -> dict[str, UciPackage]:
        """One round trip: clear leftovers, stage every op, read the staged packages back."""
        calls = [Call("uci", "revert", {"config": p}) for p in packages]
        if self._may("session", "get"):
            calls.append(Call("session", "get", {"keys": [NOTE_KEY]}))
        for p in packages:
            calls += ops_to_calls(p, plan.changes[p])
        calls += [Call("uci", "get", {"config": p}) for p in packages]
        replies = self._with_relogin(calls)  # starts with revert: repeating it is harmless
        note = next((r.data.get("values", {}).get(NOTE_KEY) for r in replies
                     if r.call.obj == "session" and r.ok and r.data), None)
        if any(r.call.method == "revert" and r.status == 6 for r in replies):
            self._saw_pending = True
            raise ApplyError(self._pending_message(note if isinstance(note, dict) else None))
        self._check([r for r in replies if r.call.obj == "uci"])
        gets = replies[-len(packages):]
        return {p: package_from_values(p, (r.data or {}).get("values") or {}) for p, r in zip(packages, gets)}

    def _reorder(self, packages: list[str], expected: dict[str, UciPackage],
                 staged: dict[str, UciPackage]) -> dict[str, UciPackage]:
        calls = [order_call(p, expected[p], staged[p]) for p in packages]
        calls += [Call("uci", "get", {"config": p}) for p in packages]
        replies = self._batch(calls)
        self._check(replies)
        gets = replies[len(packages):]
        return {p: package_from_values(p, (r.data or {}).get("values") or {}) for p, r in zip(packages, gets)}

    def _discard(self, packages: list[str]) -> None:
        """Best effort: drop what we staged (the session dies anyway at its idle timeout)."""
        try:
            self._batch([Call("uci", "revert", {"config": p}) for p in packages])
        except MwanctlError:
            pass

    def _commit(self, confirm_timeout: int) -> Receipt:
        """``uci apply`` with rollback: the one request after which the router may be changed."""
        now = int(time.time())
        calls = [Call("uci", "apply", {"rollback": True, "timeout": int(confirm_timeout)})]
        if self._may("session", "set"):
            note = {"owner": self.owner, "since": now, "deadline": now + int(confirm_timeout)}
            calls.append(Call("session", "set", {"values": {NOTE_KEY: note}}))
        sid = self._sid or ""
        try:
            reply = self._batch(calls)[0]
        except TransportError as e:
            self._applied = True  # maybe: keep the session, only it can confirm or roll back
            raise ApplyInterrupted(f"{e}; the apply was sent but its answer was lost: if rpcd "
                                   f"committed it, it restores the old config within "
                                   f"{int(confirm_timeout)} s") from e
        if reply.status == 5:  # the ops changed nothing: nothing is pending, nothing to confirm
            self._applied = False
            return Receipt(self.router, self.kind, sid, int(confirm_timeout), time.monotonic(), armed=False)
        if not reply.ok:
            raise self.error(reply)
        self._applied = True
        self._deadline = time.time() + confirm_timeout
        return Receipt.armed_now(self.router, self.kind, sid, confirm_timeout)

    def _restart(self, ifaces: Sequence[str]) -> None:
        calls = [Call(f"network.interface.{i}", m, {}) for i in ifaces for m in ("down", "up")]
        self._check(self._batch(calls))

    def _renew(self, ifaces: Sequence[str]) -> None:
        """What reload does not see (peers, ``list addresses``): wireguard.sh's renew. rpcd's own
        rollback timer only reloads: after it, such a change stays live until the next renew."""
        self._renew_after_rollback = list(ifaces)
        if ifaces:
            self._check(self._batch([Call(f"network.interface.{i}", "renew", {}) for i in ifaces]))

    def rehandshake(self, peers: dict[str, list[str]]) -> None:
        """A preshared key cannot be handed to `wg` through rpcd's file exec: such a peer is put
        back by netifd's renew instead (a longer gap)."""
        from mwanctl.rehandshake import readd_argv

        dump = self.query(["wg_dump"])["wg_dump"]
        calls: list[Call] = []
        renew: list[str] = []
        for i, keys in peers.items():
            for k in keys:
                argv, psk = readd_argv(self.router, i, k, dump)
                if psk:
                    argv, renew = ["set", i, "peer", k, "remove"], renew + [i]
                calls.append(Call("file", "exec", {"command": "/usr/bin/wg", "params": argv}))
        calls += [Call(f"network.interface.{i}", "renew", {}) for i in dict.fromkeys(renew)]
        self._check(self._with_relogin(calls))

    can_move_peer_live = True

    def move_peer_live(self, iface: str, peer: str, allowed_ips: Sequence[str],
                       endpoint: str | None = None, remove: str | None = None,
                       renew: bool = False, key: str | None = None) -> int | None:
        """Through rpcd's ``file exec`` of ``/usr/bin/wg`` (the ACL rehandshake needs too). With
        ``renew`` the explicit rollback renews ``iface`` too; rpcd's own timer only reloads."""
        steps = move_peer_steps(iface, peer, allowed_ips, endpoint, remove)
        if renew:
            if not self._applied:
                raise CommandError(f"{self.router}: wg set {iface} failed: no apply of this "
                                   "session is pending")
            self._renew_after_rollback = list(dict.fromkeys([*getattr(self, "_renew_after_rollback", []), iface]))
        for argv in steps:   # one call a step: the second must not run after a failed first
            reply = self._with_relogin([Call("file", "exec", {"command": "/usr/bin/wg", "params": argv})])[0]
            self._check([reply])
            data = reply.data if isinstance(reply.data, dict) else {}
            if data.get("code", 0) != 0:   # rpcd answers 0 and puts wg's own exit status here
                raise CommandError(f"{self.router}: wg set {iface} failed: "
                                   f"{str(data.get('stderr') or '').strip() or 'exit status ' + str(data.get('code'))}")
        if renew:
            self._check(self._batch([Call(f"network.interface.{iface}", "renew", {})]))
        return None   # rpcd answers before netifd's renew ran: the caller waits for the key

    def confirm(self, receipt: Receipt | None = None) -> None:
        if not to_confirm(receipt):
            return  # the apply changed nothing: rpcd armed no rollback
        client = self._new_client()  # a fresh connection proves the router is still reachable
        try:
            sid, acls = self._login(client)
            destroy = [Call("session", "destroy", {})] if _acl_allows(acls, "ubus", "session", "destroy") else []
            if receipt is not None and sid != receipt.token:
                # rpcd gives the applying session back to its user while that apply is pending;
                # a new session means it is not pending any more. Confirm nothing; log out.
                self._logout_if_new(client, sid, acls)
                raise RolledBack(rolled_back_late(self.router, receipt))
            reply = self._batch([Call("uci", "confirm", {})] + destroy, sid=sid, client=client)[0]
        except (ConnectError, CommandError) as e:
            raise ConfirmError(f"{self.router}: could not confirm ({e}); the router rolls back by "
                               "itself") from e
        finally:
            client.close()
        if reply.status == 5:
            self._applied = False
            raise RolledBack(rolled_back_late(self.router, receipt) if receipt else
                             f"{self.router}: no apply is pending (already confirmed, or rolled back)")
        if reply.status == 6:
            if receipt is not None:
                raise RolledBack(rolled_back_late(self.router, receipt))
            raise ConfirmError(f"{self.router}: the pending apply belongs to another rpcd login "
                               f"(log in as the user who applied it)")
        if not reply.ok:
            raise ConfirmError(str(self.error(reply)))
        if receipt is not None:
            receipt.confirmed = True
        self._applied = False
        self._deadline = None

    def _logout_if_new(self, client: Any, sid: str, acls: dict[str, Any]) -> None:
        """Destroy a session this confirm created, never one an apply is pending on (only that
        session can confirm it; rpcd re-attaches it at login)."""
        calls = [Call("session", "get", {"keys": [NOTE_KEY]})]
        if not (_acl_allows(acls, "ubus", "session", "get") and _acl_allows(acls, "ubus", "session", "destroy")):
            return
        try:
            note = self._batch(calls, sid=sid, client=client)[0]
            if note.ok and not (note.data or {}).get("values"):
                self._batch([Call("session", "destroy", {})], sid=sid, client=client)
        except MwanctlError:
            pass

    def rollback(self) -> bool:
        self._session()
        calls = [Call("uci", "rollback", {})]
        if self._may("session", "destroy"):
            calls.append(Call("session", "destroy", {}))  # drops the deltas rpcd puts back
        reply = self._batch(calls)[0]
        if len(calls) > 1:
            self._sid = None
        if reply.status in (0, 5):
            self._applied = False
            self._deadline = None
            renew = getattr(self, "_renew_after_rollback", [])
            if renew and reply.status == 0:   # a new login: the destroy above ended the session
                self._with_relogin([Call(f"network.interface.{i}", "renew", {}) for i in renew])
            return reply.status == 0
        if reply.status == 6:
            raise CommandError(f"{self.router}: the pending apply belongs to another rpcd login")
        raise self.error(reply)

    PROBES: ClassVar[dict[str, Call]] = {
        "mwan3_status": Call("mwan3", "status", {}),
        "wg_dump": Call("file", "exec", {"command": "/usr/bin/wg", "params": ["show", "all", "dump"]}),
        "wan_status": Call("network.interface.wan", "status", {}),
        "uptime": Call("file", "read", {"path": "/proc/uptime"}),
        "epoch": Call("file", "exec", {"command": "/bin/date", "params": ["+%s"]}),
        "ip_addr": Call("file", "exec", {"command": "/sbin/ip", "params": ["-o", "addr", "show"]}),
        "ip_link": Call("file", "exec", {"command": "/sbin/ip", "params": ["-o", "link", "show"]}),
        "proto_handlers": Call("network", "get_proto_handlers", {}),
        "iface_dump": Call("network.interface", "dump", {}),
    }

    def query(self, names: Sequence[str]) -> dict[str, str]:
        check_probes(names)
        if not names:
            return {}
        asked = [n for n in names if n in self.PROBES]
        replies = self._with_relogin([self.PROBES[n] for n in asked])
        out = {n: self._probe_text(n, r) for n, r in zip(asked, replies)}
        # rpcd's file plugin reads one named file: the tracker's per-uplink state files are not
        # reachable with the shipped ACL
        return {n: out.get(n, f"ERROR: probe {n} is not available over ubus") for n in names}

    def _probe_text(self, name: str, r: Reply) -> str:
        if not r.ok:
            return f"ERROR: {self.error(r)}"
        data = r.data or {}
        if name in ("wg_dump", "epoch", "ip_addr", "ip_link"):
            if data.get("code", 0) != 0:
                return f"ERROR: wg exited {data.get('code')}: {data.get('stderr', '').strip()}"
            out = str(data.get("stdout", ""))
            return hide_private_keys(out) if name == "wg_dump" else out
        if name == "uptime":
            return str(data.get("data", ""))
        return json.dumps(data, indent="\t")

    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        """``forget`` is not supported over rpcd (no ubus object deletes conntrack entries):
        flows already on the drained interface stay on it until they end."""
        self._session()
        verb = "ifdown" if drained else "ifup"
        call = Call("file", "exec", {"command": "/usr/sbin/mwan3", "params": [verb, iface]})
        reply = self._with_relogin([call])[0]
        if not reply.ok:
            raise self.error(reply)
        data = reply.data or {}
        if data.get("code", 0) != 0:
            raise CommandError(f"{self.router}: mwan3 {verb} {iface} exited {data.get('code')}: "
                               f"{str(data.get('stderr', '')).strip()}")

    def close(self) -> None:
        """Log out and disconnect.

        A session that is (or may have been re-attached to) a pending apply is left alone: only
        that session can confirm, and destroying it would also drop the changes rpcd restores.
        """
        if self._client is not None:
            if self._sid and not (self._applied or self._saw_pending) and self._may("session", "destroy"):
                try:
                    self._batch([Call("session", "destroy", {})])
                except MwanctlError:
                    pass
            self._client.close()
        self._client = None
        self._sid = None
