"""A stand-in for uhttpd's ``/ubus`` endpoint backed by an emulation of rpcd's session and uci objects.

It answers exactly as the recorded real daemons do (tests/vectors/rpcd/transcript.json, replayed by
tests/test_rpcd_server.py): JSON-RPC 2.0 framing and error codes of uhttpd, users and ACL groups of
rpcd (``list read``/``list write`` matching group names, ``write`` implying ``read``), sessions with
an idle timeout, per-session staged changes ("deltas") replayed over the files of a real config dir,
and ``apply`` with a rollback timer that restores the files and puts the changes back in the session.

Files are parsed and written with the project's UCI engine (``mwanctl.uci.parse``/``render``), so a
mismatch between the engine and libuci shows up here too.

Besides ``session`` and ``uci`` it offers small fakes of what mwanctl calls on a router:
``mwan3 status``, ``network.interface.<name> status|up|down``, ``file exec`` (``wg show all dump``,
``mwan3 ifdown|ifup``) and ``file read`` (``/proc/uptime``). Every call is logged with the client's
TCP port, so tests can tell which HTTP connection sent it.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mwanctl.uci.engine import Store, UciOpError, anon_id
from mwanctl.uci.model import UciPackage, UciSection
from mwanctl.uci.parse import parse
from mwanctl.uci.render import file_text

NULL_SID = "0" * 32

JSONRPC_ERRORS = {
    -32700: "Parse error",
    -32600: "Invalid request",
    -32601: "Method not found",
    -32602: "Invalid params",
    -32603: "Internal error",
    -32000: "Object not found",
    -32001: "Session not found",
    -32002: "Access denied",
    -32003: "ubus request timed out",
}

OK, INVALID_ARGUMENT, METHOD_NOT_FOUND, NOT_FOUND, NO_DATA, PERMISSION_DENIED, UNKNOWN_ERROR = 0, 2, 3, 4, 5, 6, 9

# Programs on the emulated router, for `file exec` (rpcd looks a bare name up in PATH).
ROUTER_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
PROGRAMS = frozenset({"/usr/bin/wg", "/bin/date", "/usr/sbin/mwan3"})

# The signature uhttpd's `list` returned for the uci object (recorded).
UCI_SIGNATURE: dict[str, dict[str, str]] = {
    "configs": {},
    "get": {"config": "string", "section": "string", "option": "string", "type": "string",
            "match": "object", "ubus_rpc_session": "string"},
    "state": {"config": "string", "section": "string", "option": "string", "type": "string",
              "match": "object", "ubus_rpc_session": "string"},
    "add": {"config": "string", "type": "string", "name": "string", "values": "object",
            "ubus_rpc_session": "string"},
    "set": {"config": "string", "section": "string", "type": "string", "match": "object",
            "values": "object", "ubus_rpc_session": "string"},
    "delete": {"config": "string", "section": "string", "type": "string", "match": "object",
               "option": "string", "options": "array", "ubus_rpc_session": "string"},
    "rename": {"config": "string", "section": "string", "option": "string", "name": "string",
               "ubus_rpc_session": "string"},
    "order": {"config": "string", "sections": "array", "ubus_rpc_session": "string"},
    "changes": {"config": "string", "ubus_rpc_session": "string"},
    "revert": {"config": "string", "ubus_rpc_session": "string"},
    "commit": {"config": "string", "ubus_rpc_session": "string"},
    "apply": {"rollback": "boolean", "timeout": "number", "ubus_rpc_session": "string"},
    "confirm": {"ubus_rpc_session": "string"},
    "rollback": {"ubus_rpc_session": "string"},
    "reload_config": {},
}

# rpcd file.c: the buffer an exec's command line is matched against the ACL in (NUL included)
EXEC_LINE_MAX = 1024

# ACL groups as on the recorded system: the stock `unauthenticated` group plus a `superuser` group.
DEFAULT_ACL_GROUPS: dict[str, dict[str, Any]] = {
    "unauthenticated": {
        "description": "Access controls for unauthenticated requests",
        "read": {"ubus": {"session": ["access", "login"]}},
    },
    "superuser": {
        "description": "Super user access role",
        "read": {"ubus": {"*": ["*"]}, "uci": ["*"]},
        "write": {"ubus": {"*": ["*"]}, "uci": ["*"]},
    },
}


class RpcError(Exception):
    """A JSON-RPC level error (uhttpd's), as opposed to a ubus status inside ``result``."""

    def __init__(self, code: int):
        super().__init__(JSONRPC_ERRORS[code])
        self.code = code


class UbusStatus(Exception):
    """A method's early answer: a ubus status (``OK``, ``NOT_FOUND``, ...) with no data."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


@dataclass
class User:
    """A ``config login`` section of /etc/config/rpcd."""

    name: str
    password: str
    read: list[str] = field(default_factory=lambda: ["*"])
    write: list[str] = field(default_factory=lambda: ["*"])


@dataclass
class Session:
    sid: str
    username: str | None
    acls: dict[str, dict[str, list[str]]]
    timeout: int
    last_used: float
    deltas: dict[str, list[list[Any]]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# ACLs (rpcd session.c: rpc_login_setup_acls)
# --------------------------------------------------------------------------------------------

def _matches(patterns: list[str], group: str) -> bool:
    """`list read`/`list write` semantics: fnmatch patterns, `!pattern` excludes."""
    ok = False
    for p in patterns:
        if p.startswith("!"):
            if fnmatch.fnmatchcase(group, p[1:]):
                return False
        elif fnmatch.fnmatchcase(group, p):
            ok = True
    return ok


def _grant(acls: dict[str, dict[str, list[str]]], scope: str, obj: str, fn: str) -> None:
    funcs = acls.setdefault(scope, {}).setdefault(obj, [])
    if fn not in funcs:
        funcs.append(fn)


def compute_acls(groups: dict[str, dict[str, Any]], user: User | None) -> dict[str, dict[str, list[str]]]:
    """The ``acls`` a login receives: every group whose name the user's read/write lists match."""
    acls: dict[str, dict[str, list[str]]] = {}
    for gname, group in groups.items():
        for perm in ("read", "write"):
            if perm not in group:
                continue
            if user is None:
                allowed = gname == "unauthenticated" and perm == "read"
            elif perm == "read":
                allowed = _matches(user.read, gname) or _matches(user.write, gname)
            else:
                allowed = _matches(user.write, gname)
            if not allowed:
                continue
            if user is not None:
                _grant(acls, "access-group", gname, perm)
            for scope, objs in group[perm].items():
                if isinstance(objs, list):  # uci: config names, granting the permission name
                    for cfg in objs:
                        _grant(acls, scope, cfg, perm)
                else:
                    for obj, fns in objs.items():
                        for fn in fns:
                            _grant(acls, scope, obj, fn)
    return acls


def _allowed(acls: dict[str, dict[str, list[str]]], scope: str, obj: str, fn: str) -> bool:
    for pat_obj, fns in acls.get(scope, {}).items():
        if fnmatch.fnmatchcase(obj, pat_obj) and any(fnmatch.fnmatchcase(fn, f) for f in fns):
            return True
    return False


# --------------------------------------------------------------------------------------------
# UCI: deltas over a parsed package (libuci's delta replay, as rpcd's per-session savedir does)
# --------------------------------------------------------------------------------------------

@dataclass
class Staged:
    """A package with a session's deltas applied, plus libuci's section counter."""

    pkg: UciPackage
    counter: int

    def find(self, ref: str) -> UciSection | None:
        """A section by name or cfg id, or by libuci's ``@type[idx]`` / ``@[idx]`` (the engine's
        lookups, which follow libuci's); a malformed ``@`` reference finds nothing."""
        store = Store(self.pkg)
        if not ref.startswith("@"):
            return store.find(ref)
        try:
            return store.find_ext(ref)
        except UciOpError:
            return None


def _replay(st: Staged, d: list[Any]) -> None:
    op, sec = d[0], d[1]
    s = st.find(sec)
    if op == "add":
        st.counter += 1
        st.pkg.sections.append(UciSection(type=d[2], name=None, anon_id=sec))
    elif op == "set" and len(d) == 3:
        if s is None:
            st.counter += 1
            st.pkg.sections.append(UciSection(type=d[2], name=sec))
        else:
            s.type = d[2]
    elif s is None:
        return
    elif op == "set":
        s.options[d[2]] = d[3]
    elif op == "remove":
        if len(d) == 2:
            st.pkg.sections.remove(s)
        else:
            s.options.pop(d[2], None)
    elif op == "list-add":
        cur = s.options.get(d[2])
        if cur is None:
            s.options[d[2]] = (d[3],)
        elif isinstance(cur, str):
            s.options[d[2]] = (cur, d[3])
        else:
            s.options[d[2]] = cur + (d[3],)
    elif op == "list-del":
        cur = s.options.get(d[2])
        if isinstance(cur, tuple):
            s.options[d[2]] = tuple(v for v in cur if v != d[3])
    elif op == "rename":
        if len(d) == 3:
            if s.anonymous:
                s.anon_id = None
            s.name = d[2]
        else:
            opts = list(s.options.items())
            s.options = {(d[3] if k == d[2] else k): v for k, v in opts}
    elif op == "order":
        st.pkg.sections.remove(s)
        st.pkg.sections.insert(min(int(d[2]), len(st.pkg.sections)), s)


def format_value(v: Any) -> str | None:
    """rpcd rpc_uci_format_blob: strings as is, ints as %u (wrapping), bools as 0/1, else refused."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v % (1 << 32)) if -(1 << 31) <= v < (1 << 31) else str(v % (1 << 64))
    if isinstance(v, str):
        return v
    return None


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c == "_" for c in name) and name.isascii()


def _valid_type(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_-" for c in name) and name.isascii()


def _section_json(s: UciSection, index: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {".anonymous": s.anonymous, ".type": s.type, ".name": s.ref}
    if index is not None:
        out[".index"] = index
    for k, v in s.options.items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _match(s: UciSection, match: dict[str, Any]) -> bool:
    for k, want in match.items():
        have = s.options.get(k)
        if have is None or not isinstance(want, str):
            return False
        tokens = list(have) if isinstance(have, tuple) else have.split()
        if want not in tokens:
            return False
    return True


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------

@dataclass
class PendingApply:
    sid: str
    files: dict[str, bytes]
    deltas: dict[str, list[list[Any]]]
    timer: threading.Timer


class Rpcd:
    """rpcd + uhttpd's /ubus logic, without the HTTP part (``handle(body) -> body``)."""

    def __init__(self, confdir: Path, users: list[User] | None = None,
                 acl_groups: dict[str, dict[str, Any]] | None = None, time_scale: float = 1.0,
                 mwan3_status: dict[str, Any] | None = None, wg_dump: str = "",
                 script_timeout: float = 60.0, wg_from_config: bool = False,
                 programs: frozenset[str] = PROGRAMS):
        self.confdir = Path(confdir)
        self.users = {u.name: u for u in (users or [User("root", "rigpass"),
                                                    User("reader", "rigpass", ["superuser"], [])])}
        self.acl_groups = dict(acl_groups if acl_groups is not None else DEFAULT_ACL_GROUPS)
        self.time_scale = time_scale
        self._booted = time.monotonic()         # /proc/uptime runs on the router's (scaled) clock
        self.mwan3_status = mwan3_status      # None: mwan3 not installed (object not found)
        self.wg_dump = wg_dump
        self.wg_from_config = wg_from_config  # answer `wg show all dump` from the committed config
        self.no_handshake = False
        self.script_timeout = script_timeout
        self.programs = set(programs) - ({"/usr/sbin/mwan3"} if mwan3_status is None else set())
        self.hang: dict[tuple[str, str], float] = {}  # (object, method) -> seconds before replying
        self.events: list[tuple[str, str]] = []        # ("config.change", pkg), ("ifdown", "wg0"), ...
        self.log: list[tuple[int, dict[str, Any]]] = []  # (client port, request)
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {
            NULL_SID: Session(NULL_SID, None, compute_acls(self.acl_groups, None), 0, time.monotonic())}
        self.pending: PendingApply | None = None
        self._cache: dict[tuple[str | None, str], list[Any]] = {}

    # -- JSON-RPC framing (uhttpd ubus.c) --------------------------------------------------------
    def handle(self, body: bytes, port: int = 0) -> bytes:
        try:
            req = json.loads(body)
        except ValueError:
            return self._dump(self._error(None, -32700))
        if isinstance(req, list):
            return self._dump([self._one(r, port) for r in req])
        return self._dump(self._one(req, port))

    @staticmethod
    def _dump(obj: Any) -> bytes:
        return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()

    @staticmethod
    def _error(rid: Any, code: int) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": JSONRPC_ERRORS[code]}}

    def _one(self, req: Any, port: int) -> dict[str, Any]:
        if not isinstance(req, dict):
            return self._error(None, -32600)
        rid = req.get("id")
        with self.lock:
            self.log.append((port, req))
        if req.get("jsonrpc") != "2.0":
            return self._error(rid, -32600)
        try:
            if req.get("method") == "list":
                return {"jsonrpc": "2.0", "id": rid, "result": self._list(req.get("params") or [])}
            if req.get("method") != "call":
                raise RpcError(-32601)
            result = self._call(req.get("params"))
        except RpcError as e:
            return self._error(rid, e.code)
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _list(self, names: list[Any]) -> dict[str, Any]:
        objs = {"uci": UCI_SIGNATURE}
        return {n: objs[n] for n in names if isinstance(n, str) and n in objs}

    def _call(self, params: Any) -> list[Any]:
        if not (isinstance(params, list) and len(params) == 4 and all(isinstance(p, str) for p in params[:3])
                and isinstance(params[3], dict)):
            raise RpcError(-32700)
        sid, obj, method, args = params
        if "ubus_rpc_session" in args:
            raise RpcError(-32602)
        with self.lock:
            handler = self._handler(obj, method)  # uhttpd looks the object up before the ACL
            ses = self._touch(sid)
            if ses is None or not _allowed(ses.acls, "ubus", obj, method):
                raise RpcError(-32002)
            if handler is None:
                return [METHOD_NOT_FOUND]
        delay = self.hang.get((obj, method), 0.0)
        if delay:
            if delay > self.script_timeout:
                time.sleep(self.script_timeout * self.time_scale)
                raise RpcError(-32003)
            time.sleep(delay * self.time_scale)
        with self.lock:
            try:
                reply = handler(ses, args)
            except UbusStatus as e:
                reply = e.status
        status, data = reply if isinstance(reply, tuple) else (reply, None)
        return [status] if data is None else [status, data]

    def _handler(self, obj: str, method: str) -> Callable[[Session, dict[str, Any]], Any] | None:
        """The method of an object that exists; None for a missing method (ubus status 3);
        -32000 for an object that does not exist (whatever the caller's ACL)."""
        if obj in ("session", "uci", "file"):
            return getattr(self, f"_{obj}_{method}", None)  # type: ignore[no-any-return]
        if obj == "mwan3" and self.mwan3_status is not None:
            if method != "status":
                return None
            return lambda ses, args: (OK, copy.deepcopy(self.mwan3_status))
        if obj.startswith("network.interface."):
            iface = obj.split(".", 2)[2]
            if self._package_file("network") and self._staged(None, "network").find(iface):
                if method not in ("up", "down", "renew", "status"):   # netifd ubus.c: iface_object_methods
                    return None
                return lambda ses, args: self._iface(iface, method)
        raise RpcError(-32000)

    # -- sessions ------------------------------------------------------------------------------
    def _touch(self, sid: str) -> Session | None:
        ses = self.sessions.get(sid)
        if ses is None:
            return None
        now = time.monotonic()
        if ses.timeout and now - ses.last_used > ses.timeout * self.time_scale:
            del self.sessions[sid]
            return None
        ses.last_used = now
        return ses

    def _session_login(self, ses: Session, args: dict[str, Any]) -> Any:
        user, password = args.get("username"), args.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            return INVALID_ARGUMENT
        login = self.users.get(user)
        if login is None or login.password != password:
            return PERMISSION_DENIED
        if self.pending is not None:  # rpc_reclaim_apply_session
            owner = self._touch(self.pending.sid)
            if owner is not None and owner.username == user:
                return OK, self._login_reply(owner)
        timeout = args.get("timeout")
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            timeout = 300
        sid = secrets.token_hex(16)
        new = Session(sid, user, compute_acls(self.acl_groups, login), timeout, time.monotonic())
        self.sessions[sid] = new
        return OK, self._login_reply(new)

    def _login_reply(self, ses: Session) -> dict[str, Any]:
        left = ses.timeout - int((time.monotonic() - ses.last_used) / self.time_scale)
        return {"ubus_rpc_session": ses.sid, "timeout": ses.timeout, "expires": left,
                "acls": copy.deepcopy(ses.acls), "data": {"username": ses.username}}

    def _session_access(self, ses: Session, args: dict[str, Any]) -> Any:
        scope = args.get("scope", "ubus")
        obj, fn = args.get("object"), args.get("function")
        if not isinstance(obj, str) or not isinstance(fn, str):
            return INVALID_ARGUMENT
        return OK, {"access": _allowed(ses.acls, scope, obj, fn)}

    def _session_destroy(self, ses: Session, args: dict[str, Any]) -> Any:
        if ses.sid == NULL_SID:
            return PERMISSION_DENIED
        self.sessions.pop(ses.sid, None)
        return OK

    def _session_set(self, ses: Session, args: dict[str, Any]) -> Any:
        values = args.get("values")
        if not isinstance(values, dict):
            return INVALID_ARGUMENT
        ses.values.update(copy.deepcopy(values))
        return OK

    def _session_get(self, ses: Session, args: dict[str, Any]) -> Any:
        keys = args.get("keys")
        vals = ses.values if not isinstance(keys, list) else {k: ses.values[k] for k in keys if k in ses.values}
        return OK, {"values": copy.deepcopy(vals)}

    # -- uci helpers ---------------------------------------------------------------------------
    def _package_file(self, config: str) -> Path | None:
        p = self.confdir / config
        return p if _valid_name(config.replace("-", "_")) and p.is_file() else None

    def _staged(self, ses: Session | None, config: str) -> Staged:
        """The file with the session's deltas replayed. Cached per session and package, and
        brought up to date by replaying only the deltas added since (they are only appended;
        a package whose deltas were cut back or replaced gets a new list: the cache misses).
        Callers must not change what they get."""
        path = self._package_file(config)
        assert path is not None
        stat = path.stat()
        deltas = ses.deltas.get(config, []) if ses else []
        key = (ses.sid if ses else None, config)
        hit = self._cache.get(key)
        if hit is None or hit[0] != (stat.st_mtime_ns, stat.st_size) or hit[1] is not deltas \
                or hit[2] > len(deltas):
            pkg = parse(path.read_text(), config)
            hit = [(stat.st_mtime_ns, stat.st_size), deltas, 0, Staged(pkg, len(pkg.sections))]
            self._cache[key] = hit
        for d in deltas[hit[2]:]:
            _replay(hit[3], d)
        hit[2] = len(deltas)
        return hit[3]  # type: ignore[no-any-return]

    def _can(self, ses: Session, config: str, perm: str) -> bool:
        return _allowed(ses.acls, "uci", config, perm)

    def _load(self, ses: Session, args: dict[str, Any], perm: str) -> tuple[str, Staged]:
        """The package ``args["config"]`` names, staged for this session; refuses (``UbusStatus``)
        as rpcd does: no name, no ``perm`` in the session's ACL, no such file."""
        config = args.get("config")
        if not isinstance(config, str):
            raise UbusStatus(INVALID_ARGUMENT)
        if not self._can(ses, config, perm):
            raise UbusStatus(PERMISSION_DENIED)
        if self._package_file(config) is None:
            raise UbusStatus(NOT_FOUND)
        return config, self._staged(ses, config)

    def _stage(self, ses: Session, config: str, *delta: Any) -> None:
        ses.deltas.setdefault(config, []).append(list(delta))

    def _all_or_nothing(self, ses: Session, config: str, stage: Callable[[], int]) -> int:
        """Run ``stage`` (which stages deltas and returns a status); when that status is an error,
        drop what it staged: rpcd calls uci_save only when no item of the call failed."""
        before = len(ses.deltas.get(config, []))  # deltas are only appended
        status = stage()
        if status != OK:
            ses.deltas[config] = ses.deltas.get(config, [])[:before]  # a new list: caches miss
        return status

    def _targets(self, st: Staged, args: dict[str, Any]) -> list[UciSection]:
        """Sections addressed by `section`, or by `type`/`match` when no section is given."""
        sec = args.get("section")
        if isinstance(sec, str):
            s = st.find(sec)
            return [s] if s else []
        type_, match = args.get("type"), args.get("match")
        return [s for s in st.pkg.sections
                if (not isinstance(type_, str) or s.type == type_)
                and (not isinstance(match, dict) or _match(s, match))]

    def _changing(self, st: Staged, args: dict[str, Any]) -> list[UciSection]:
        """``_targets`` for set/delete: none found is rpcd's NOT_FOUND."""
        targets = self._targets(st, args)
        if not targets:
            raise UbusStatus(NOT_FOUND)
        return targets

    # -- uci methods ---------------------------------------------------------------------------
    def _uci_configs(self, ses: Session, args: dict[str, Any]) -> Any:
        names = sorted(p.name for p in self.confdir.iterdir() if p.is_file() and not p.name.startswith("."))
        return OK, {"configs": names}

    def _uci_get(self, ses: Session, args: dict[str, Any]) -> Any:
        _, st = self._load(ses, args, "read")
        sec, opt = args.get("section"), args.get("option")
        if isinstance(sec, str):
            s = st.find(sec)
            if s is None:
                return OK
            if isinstance(opt, str):
                v = s.options.get(opt)
                if v is None:
                    return OK
                return OK, {"value": list(v) if isinstance(v, tuple) else v}
            return OK, {"values": _section_json(s, None)}
        picked = self._targets(st, args)
        return OK, {"values": {s.ref: _section_json(s, st.pkg.sections.index(s)) for s in picked}}

    _uci_state = _uci_get

    def _uci_add(self, ses: Session, args: dict[str, Any]) -> Any:
        type_, name = args.get("type"), args.get("name")
        if not isinstance(type_, str) or not _valid_type(type_):
            return INVALID_ARGUMENT
        if name is not None and (not isinstance(name, str) or not _valid_name(name)):
            return INVALID_ARGUMENT
        config, st = self._load(ses, args, "write")
        section = name if name is not None else anon_id(st.counter + 1, type_)  # libuci's naming

        def stage() -> int:
            if name is None:
                self._stage(ses, config, "add", section, type_)
            else:
                old = st.find(name)
                if old is None or old.type != type_:  # libuci uci_set: creates, or changes the type
                    self._stage(ses, config, "set", name, type_)
            values = args.get("values")
            return self._merge_values(ses, config, section, values) if isinstance(values, dict) else OK

        status = self._all_or_nothing(ses, config, stage)
        return status if status != OK else (OK, {"section": section})

    def _merge_values(self, ses: Session, config: str, section: str, values: dict[str, Any]) -> int:
        """rpc_uci_merge_set for each option; returns the last error as a ubus status (the
        caller then drops what was staged: rpcd calls uci_save only when nothing failed)."""
        last = OK
        s = self._staged(ses, config).find(section)  # the keys differ: one read serves them all
        assert s is not None
        for opt, val in values.items():
            if not _valid_name(opt):
                last = INVALID_ARGUMENT
                continue
            cur = s.options.get(opt)
            if isinstance(val, list):
                items = [format_value(v) for v in val]
                items = [v for v in items if v is not None]
                if cur is not None:
                    self._stage(ses, config, "remove", section, opt)
                for v in items:
                    self._stage(ses, config, "list-add", section, opt, v)
                last = OK if items else INVALID_ARGUMENT
                continue
            text = format_value(val)
            if text is None:
                last = INVALID_ARGUMENT
            elif cur != text:
                self._stage(ses, config, "set", section, opt, text)
        return last

    def _uci_set(self, ses: Session, args: dict[str, Any]) -> Any:
        values = args.get("values")
        if not isinstance(values, dict):
            return INVALID_ARGUMENT
        config, st = self._load(ses, args, "write")
        targets = self._changing(st, args)

        def stage() -> int:
            status = OK
            for s in targets:
                rv = self._merge_values(ses, config, s.ref, values)
                status = rv if rv != OK else status
            return status

        return self._all_or_nothing(ses, config, stage)

    def _uci_delete(self, ses: Session, args: dict[str, Any]) -> Any:
        config, st = self._load(ses, args, "write")
        targets = self._changing(st, args)
        opt, opts = args.get("option"), args.get("options")

        def stage() -> int:
            status = OK
            for s in targets:  # rpc_uci_merge_delete; like rpcd, the last section's answer counts
                if isinstance(opts, list):  # an array: NOT_FOUND only when none of them existed
                    found = [o for o in opts if isinstance(o, str) and o in s.options]
                    for o in found:
                        self._stage(ses, config, "remove", s.ref, o)
                    status = OK if found else NOT_FOUND
                elif isinstance(opt, str):
                    status = OK if opt in s.options else NOT_FOUND
                    if status == OK:
                        self._stage(ses, config, "remove", s.ref, opt)
                else:
                    self._stage(ses, config, "remove", s.ref)
                    status = OK
            return status

        return self._all_or_nothing(ses, config, stage)

    def _uci_rename(self, ses: Session, args: dict[str, Any]) -> Any:
        name, sec, opt = args.get("name"), args.get("section"), args.get("option")
        if not isinstance(name, str) or not _valid_name(name) or not isinstance(sec, str):
            return INVALID_ARGUMENT
        config, st = self._load(ses, args, "write")
        s = st.find(sec)
        if s is None or (isinstance(opt, str) and opt not in s.options):
            return NOT_FOUND
        if isinstance(opt, str):
            self._stage(ses, config, "rename", s.ref, opt, name)
        else:
            self._stage(ses, config, "rename", s.ref, name)
        return OK

    def _uci_order(self, ses: Session, args: dict[str, Any]) -> Any:
        sections = args.get("sections")
        if not isinstance(sections, list):
            return INVALID_ARGUMENT
        config, st = self._load(ses, args, "write")

        def stage() -> int:
            status, i = OK, 0
            for name in sections:
                if not isinstance(name, str):
                    status = status or INVALID_ARGUMENT
                    continue
                s = st.find(name)
                if s is None:
                    status = status or NOT_FOUND
                    continue
                self._stage(ses, config, "order", s.ref, i)
                i += 1
            return status

        return self._all_or_nothing(ses, config, stage)

    def _uci_changes(self, ses: Session, args: dict[str, Any]) -> Any:
        config = args.get("config")
        if isinstance(config, str):
            if not self._can(ses, config, "read"):
                return PERMISSION_DENIED
            if self._package_file(config) is None:
                return NOT_FOUND
            return OK, {"changes": copy.deepcopy(ses.deltas.get(config, []))}
        return OK, {"changes": {c: copy.deepcopy(d) for c, d in sorted(ses.deltas.items())
                                if d and self._can(ses, c, "read")}}

    def _uci_revert(self, ses: Session, args: dict[str, Any]) -> Any:
        config = args.get("config")
        if not isinstance(config, str):
            return INVALID_ARGUMENT
        if self.pending is not None:
            return PERMISSION_DENIED
        if not self._can(ses, config, "write"):
            return PERMISSION_DENIED
        ses.deltas.pop(config, None)
        return OK

    def _commit(self, ses: Session, config: str) -> None:
        """libuci commit: write the staged package (export without the `package` line)."""
        st = self._staged(ses, config)
        text = file_text(st.pkg)
        path = self.confdir / config
        tmp = path.with_name(f".{config}.uci-tmp")
        tmp.write_text(text)
        tmp.replace(path)
        ses.deltas.pop(config, None)
        self.events.append(("config.change", config))

    def _uci_commit(self, ses: Session, args: dict[str, Any]) -> Any:
        config = args.get("config")
        if not isinstance(config, str):
            return INVALID_ARGUMENT
        if self.pending is not None or not self._can(ses, config, "write"):
            return PERMISSION_DENIED
        if self._package_file(config) is None:
            return NOT_FOUND
        if ses.deltas.get(config):
            self._commit(ses, config)
        return OK

    def _uci_apply(self, ses: Session, args: dict[str, Any]) -> Any:
        rollback = args.get("rollback") is True
        timeout = args.get("timeout")
        timeout = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else 60
        if self.pending is not None:
            if rollback:
                return PERMISSION_DENIED
            # rpc_uci_apply purges rpcd's snapshot dirs before it looks at apply_sid: a plain
            # apply now commits nothing, and the pending timer will find nothing to restore.
            self.pending.files, self.pending.deltas = {}, {}
            return OK
        configs = [c for c, d in sorted(ses.deltas.items()) if d and self._can(ses, c, "write")]
        if not configs:
            return NO_DATA
        if rollback:
            files = {p.name: p.read_bytes() for p in self.confdir.iterdir()
                     if p.is_file() and not p.name.startswith(".")}
            timer = threading.Timer(timeout * self.time_scale, self._timed_rollback, args=(ses.sid,))
            timer.daemon = True
            self.pending = PendingApply(ses.sid, files, copy.deepcopy(ses.deltas), timer)
            timer.start()
        for c in configs:
            self._commit(ses, c)
        return OK

    def _timed_rollback(self, sid: str) -> None:
        with self.lock:
            if self.pending is not None and self.pending.sid == sid:
                self._do_rollback()

    def _do_rollback(self) -> None:
        """Restore every snapshot file, re-stage the snapshot deltas, announce the changes."""
        p = self.pending
        if p is None:
            return
        p.timer.cancel()
        for name, data in p.files.items():
            path = self.confdir / name
            if not path.exists() or path.read_bytes() != data:
                tmp = path.with_name(f".{name}.rollback-tmp")   # whole files only, as libuci's commit
                tmp.write_bytes(data)
                tmp.replace(path)
                self.events.append(("config.change", name))
        owner = self.sessions.get(p.sid)
        if owner is not None:
            for c, d in p.deltas.items():
                owner.deltas[c] = copy.deepcopy(d)
        self.pending = None   # last: who sees no pending apply sees the old files

    def _owner_check(self, ses: Session) -> int:
        if self.pending is None:
            return NO_DATA
        return OK if self.pending.sid == ses.sid else PERMISSION_DENIED

    def _uci_confirm(self, ses: Session, args: dict[str, Any]) -> Any:
        status = self._owner_check(ses)
        if status == OK:
            assert self.pending is not None
            self.pending.timer.cancel()
            self.pending = None
        return status

    def _uci_rollback(self, ses: Session, args: dict[str, Any]) -> Any:
        status = self._owner_check(ses)
        if status == OK:
            self._do_rollback()
        return status

    def _uci_reload_config(self, ses: Session, args: dict[str, Any]) -> Any:
        return OK

    # -- fakes of other router objects ---------------------------------------------------------
    def _iface(self, iface: str, method: str) -> Any:
        if method in ("up", "down"):
            self.events.append((f"if{method}", iface))
            return OK
        if method == "renew":     # wireguard.sh's renew (h4: peer changes go live this way)
            self.events.append(("renew", iface))
            return OK
        if method == "status":
            return OK, {"up": True, "pending": False, "available": True, "interface": iface,
                        "l3_device": iface, "proto": "wireguard", "uptime": 100}
        raise RpcError(-32601)

    def _file_exec(self, ses: Session, args: dict[str, Any]) -> Any:
        cmd, params = args.get("command"), args.get("params") or []
        if not isinstance(cmd, str) or not isinstance(params, list):
            return INVALID_ARGUMENT
        path = self._lookup_program(cmd)
        if path is None:  # rpc_file_exec_lookup: a missing program is 4, before any ACL check
            return NOT_FOUND
        args = [p for p in params if isinstance(p, str)]
        line = " ".join([path, *args])
        # rpcd matches the program path alone, then the path plus its arguments joined by spaces,
        # built in a 1024-byte buffer (RPC_CMDLINE_MAX_SIZE) of at most 254 words: a longer
        # line is refused, whatever the ACL says
        fits = len(line) < EXEC_LINE_MAX and len(args) + 1 < 255
        if not (_allowed(ses.acls, "file", path, "exec") or fits and _allowed(ses.acls, "file", line, "exec")):
            return PERMISSION_DENIED
        cmd = path
        if cmd == "/usr/bin/wg" and params == ["show", "all", "dump"]:
            return OK, {"code": 0, "stdout": self._wg_config_dump() if self.wg_from_config else self.wg_dump}
        if cmd == "/usr/bin/wg" and len(params) >= 5 and params[0] == "set" and params[2] == "peer" \
                and params[4] == "remove":        # and put back in the same command: a new session
            self.events.append(("wg peer remove", params[1]))
            return OK, {"code": 0, "stdout": ""}
        if cmd == "/usr/bin/wg" and len(params) >= 6 and params[0] == "set" and params[2] == "peer" \
                and "allowed-ips" in params:      # key rotation: a peer put on the live device
            self.events.append(("wg peer move", params[1]))
            return OK, {"code": 0, "stdout": ""}
        if cmd == "/usr/bin/wg" and len(params) == 6 and params[0] == "set" and params[2] == "peer" \
                and params[4] == "endpoint":   # a peer created first, before it takes allowed IPs
            self.events.append(("wg peer add", params[1]))
            return OK, {"code": 0, "stdout": ""}
        if cmd == "/bin/date" and params == ["+%s"]:
            return OK, {"code": 0, "stdout": f"{int(time.time())}\n"}
        if cmd == "/usr/sbin/mwan3" and len(params) == 2 and params[0] in ("ifup", "ifdown"):
            if self.mwan3_status is None:
                return NOT_FOUND
            self.events.append((f"mwan3 {params[0]}", params[1]))
            return OK, {"code": 0}
        return NOT_FOUND

    def _lookup_program(self, cmd: str) -> str | None:
        """rpcd's rpc_file_exec_lookup: the path itself if it is a file, else the name in PATH."""
        if cmd in self.programs:
            return cmd
        if "/" in cmd or not cmd:
            return None
        return next((f"{d}/{cmd}" for d in ROUTER_PATH if f"{d}/{cmd}" in self.programs), None)

    def _wg_config_dump(self) -> str:
        """What netifd would have applied: every WireGuard interface of the committed network
        file with its peers. There is no wire here: each peer shows as just handshaken (a far end
        that always answers), or never when ``no_handshake`` is set."""
        path = self.confdir / "network"
        if not path.exists():
            return ""
        net = parse(path.read_text(), "network")
        lines = []
        for s in net.sections:
            if s.type != "interface" or s.options.get("proto") != "wireguard" or s.name is None:
                continue
            lines.append(f"{s.name}\t(hidden)\t(none)\t{s.options.get('listen_port', '0')}\toff")
            for p in net.of_type(f"wireguard_{s.name}"):
                key = p.options.get("public_key")
                if isinstance(key, str) and p.options.get("disabled") != "1":
                    allowed = p.options.get("allowed_ips", ())
                    allowed_text = ",".join(allowed) if isinstance(allowed, tuple) else str(allowed)
                    host, port = p.options.get("endpoint_host"), p.options.get("endpoint_port") or "51820"
                    ka = p.options.get("persistent_keepalive")
                    lines.append("\t".join([s.name, key, "(none)", f"{host}:{port}" if host else "(none)",
                                             allowed_text or "(none)",
                                             "0" if self.no_handshake else str(int(time.time())), "0", "0",
                                             str(ka) if ka else "off"]))
        return "\n".join(lines) + ("\n" if lines else "")

    def _file_read(self, ses: Session, args: dict[str, Any]) -> Any:
        path = args.get("path")
        if not isinstance(path, str):
            return INVALID_ARGUMENT
        if not _allowed(ses.acls, "file", path, "read"):
            return PERMISSION_DENIED
        if path == "/proc/uptime":
            # a router up for 12345.67 s, its clock running time_scale times slower than ours, as
            # its timers do: mwan3's status stamps (``age``/``online``) count in it
            up = 12345.67 + (time.monotonic() - self._booted) / self.time_scale
            return OK, {"data": f"{up:.2f} 23456.78\n"}
        return NOT_FOUND


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uhttpd: a "fresh connection" means something
    server: _Server

    def do_POST(self) -> None:
        if self.path != "/ubus":
            self._send(404, b"Not Found\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if length > 65536:
            self._send(200, Rpcd._dump(Rpcd._error(None, -32700)), "application/json")
            self.close_connection = True
            return
        self._send(200, self.server.rpcd.handle(body, self.client_address[1]), "application/json")

    def _send(self, code: int, data: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    rpcd: Rpcd


class RpcdServer:
    """Serve ``rpcd`` on 127.0.0.1 in a thread: ``with RpcdServer(rpcd) as srv: srv.url``.

    ``certfile``/``keyfile`` turn on HTTPS (for certificate pinning tests).
    """

    def __init__(self, rpcd: Rpcd, certfile: Path | None = None, keyfile: Path | None = None):
        self.rpcd = rpcd
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.rpcd = rpcd
        self.scheme = "http"
        if certfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/ubus"

    def __enter__(self) -> RpcdServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.rpcd.lock:
            if self.rpcd.pending is not None:
                self.rpcd.pending.timer.cancel()


# --------------------------------------------------------------------------------------------
# The config files of the recorded system, rebuilt from the transcript's replies
# --------------------------------------------------------------------------------------------

RECORDED_NETWORK = """
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config globals 'globals'
\toption ula_prefix 'fd00:1::/48'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'

config interface 'wan'
\toption device 'eth1'
\toption proto 'dhcp'

config interface 'wanb'
\toption device 'eth2'
\toption proto 'dhcp'

config interface 'wg0'
\toption proto 'wireguard'
\toption private_key 'aIvAU1nz5Q89ctvqxvGd2wYEqWxtFLeRizH3/BeK5Hc='
\toption listen_port '51820'
\tlist addresses '10.0.0.1/24'
\tlist addresses 'fd00:10::1/64'
\toption mtu '1420'

config interface 'wan6'
\toption device 'eth1'
\toption proto 'dhcpv6'

config wireguard_wg0
\toption description 'laptop'
\toption public_key 'O/EWNzAhDBaGgzqjCad0jNVCEjwlmRkIuD7xJBze+mY='
\toption preshared_key 'b32MlZWOcJdjpcrB/mcDK7ZHyZZLr/h5nCFwa5Bn8Cc='
\tlist allowed_ips '10.0.0.2/32'
\toption route_allowed_ips '1'
\toption persistent_keepalive '25'

config wireguard_wg0 'phone'
\toption description 'Bob'\\''s phone'
\toption public_key 'Q1cojle/NSm/zxjVLVkqR6ka/VCik/zxU6k58n8jjGI='
\tlist allowed_ips '10.0.0.3/32'
\tlist allowed_ips '10.0.0.33/32'
\toption endpoint_host 'vpn.example.com'
\toption endpoint_port '51820'

config wireguard_wg0
\toption description 'tablet'
\toption public_key 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
\tlist allowed_ips '10.0.0.4/32'
\tlist allowed_ips 'fd00:10::4/128'
"""

RECORDED_MWAN3 = """
config globals 'globals'
\toption mmx_mask '0x3F00'

config member 'newmember'
\toption interface 'wanb'
\toption metric '3'

config interface 'wan'
\toption enabled '1'
\tlist track_ip '8.8.4.4'
\tlist track_ip '8.8.8.8'
\tlist track_ip '208.67.222.222'
\toption family 'ipv4'
\toption reliability '1'
\toption count '1'
\toption timeout '2'
\toption interval '5'
\toption down '3'
\toption up '8'

config interface 'wanb'
\toption enabled '1'
\tlist track_ip '1.1.1.1'
\toption family 'ipv4'
\toption reliability '1'

config member 'wan_m1_w3'
\toption interface 'wan'
\toption metric '1'
\toption weight '3'

config member 'wanb_m1_w2'
\toption interface 'wanb'
\toption metric '1'
\toption weight '2'

config policy 'balanced'
\tlist use_member 'wan_m1_w3'
\tlist use_member 'wanb_m1_w2'
\toption last_resort 'unreachable'

config policy 'wan_wanb'
\tlist use_member 'wan_m1_w3'
\tlist use_member 'wanb_m2_w2'

config rule 'https_rule'
\toption sticky '1'
\toption dest_port '443'
\toption proto 'tcp'
\toption use_policy 'balanced'

config rule
\toption dest_ip '0.0.0.0/0'
\toption use_policy 'balanced'
\toption family 'ipv4'
"""

RECORDED_RPCD = """
config rpcd
\toption socket '/var/run/ubus/ubus.sock'
\toption timeout '30'

config login
\toption username 'root'
\toption password '$p$root'
\tlist read '*'
\tlist write '*'

config login
\toption username 'reader'
\toption password '$p$reader'
\tlist read 'superuser'
"""

RECORDED_FILES = {"network": RECORDED_NETWORK, "mwan3": RECORDED_MWAN3, "rpcd": RECORDED_RPCD}


def write_files(confdir: Path, files: dict[str, str]) -> None:
    confdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (confdir / name).write_text(text)
