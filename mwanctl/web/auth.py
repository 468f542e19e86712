"""Who may look and who may act: an access token or a password, sessions, CSRF and host checks.

- A visitor proves the secret once (``?token=`` from the printed URL, or the login form) and gets
  an HttpOnly, SameSite=Strict session cookie; scripts (Prometheus) may send
  ``Authorization: Bearer <secret>`` for GET requests instead.
- Every POST needs the session's CSRF token in the ``X-CSRF-Token`` header (or a ``csrf`` form
  field) and, when the browser sends one, an ``Origin`` equal to the page's own.
- The ``Host`` header must name this server (DNS-rebinding defence): the bind address, localhost,
  or a name given with ``--allow-host``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

COOKIE = "mwanctl_session"
SESSION_SECONDS = 12 * 3600


@dataclass
class Session:
    csrf: str
    created: float = field(default_factory=time.time)


class Auth:
    def __init__(self, secret: str, is_password: bool, allowed_hosts: set[str], secure: bool):
        self.secret = secret
        self.is_password = is_password
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.secure = secure
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(24)

    def check_secret(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.secret.encode())

    def login(self) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        s = Session(secrets.token_urlsafe(32))
        with self._lock:
            now = time.time()
            self._sessions = {k: v for k, v in self._sessions.items() if now - v.created < SESSION_SECONDS}
            self._sessions[sid] = s
        return sid, s

    def session(self, sid: Optional[str]) -> Optional[Session]:
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
        if s is None or time.time() - s.created > SESSION_SECONDS:
            return None
        return s

    def host_ok(self, host: Optional[str]) -> bool:
        return host is not None and host.lower() in self.allowed_hosts

    def csrf_ok(self, session: Session, header: Optional[str], origin: Optional[str],
                own_origin: str) -> bool:
        if origin is not None and origin != own_origin:
            return False
        return header is not None and hmac.compare_digest(header.encode(), session.csrf.encode())

    def cookie_args(self) -> dict[str, object]:
        return {"httponly": True, "samesite": "strict", "secure": self.secure, "path": "/",
                "max_age": SESSION_SECONDS}
