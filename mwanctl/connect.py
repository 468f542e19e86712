"""Open connections: the transport for a router from the topology's `access` block, and the
callables the deploy, rotation and status flows are handed to open their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from mwanctl.errors import ConnectError, MwanctlError
from mwanctl.topology.model import Access, Topology
from mwanctl.transports.base import Transport

if TYPE_CHECKING:
    from mwanctl.status.poll import Answer, Ask

Prompt = Callable[[str], str]


@dataclass
class ConnectOptions:
    """Run-time choices that are not part of the topology."""

    accept_new_host_key: bool = False
    prompt: Optional[Prompt] = None           # asks for a password when nothing else is set
    known_hosts: Optional[str] = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)   # where password_env is read


def _password(router: str, a: Access, opts: ConnectOptions) -> Optional[Callable[[], str]] | str | None:
    """Passwords come from an environment variable, a file or a prompt — never the command line."""
    if a.password_env:
        value = opts.environ.get(a.password_env)
        if value is None:
            raise ConnectError(f"{router}: environment variable {a.password_env} is not set")
        return value
    if a.password_file:
        try:
            return Path(os.path.expanduser(a.password_file)).read_text().rstrip("\n")
        except OSError as exc:
            raise ConnectError(f"{router}: cannot read password file {a.password_file}: {exc.strerror}") from None
    if opts.prompt is not None:
        prompt = opts.prompt
        return lambda: prompt(f"password for {a.user}@{router}")
    return None


def ubus_url(host: str, port: int | None) -> str:
    """uhttpd's /ubus on ``host`` (HTTPS; ``access.port`` when given; IPv6 literals bracketed)."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"https://{h}{f':{port}' if port else ''}/ubus"


def transport_for(t: Topology, router: str, opts: ConnectOptions) -> Transport:
    a = t.access_for(router)
    host = a.host or t.host_of(router)
    if a.transport == "ssh":
        from mwanctl.transports.ssh import JumpHost, SshTransport
        jump = None
        if a.jump:
            ja = t.access_for(a.jump)
            jump = JumpHost(ja.host or t.host_of(a.jump), ja.port or 22, ja.user,
                            os.path.expanduser(ja.key) if ja.key else None, _password(a.jump, ja, opts))
        return SshTransport(router, host, a.port or 22, a.user,
                            key_filename=os.path.expanduser(a.key) if a.key else None,
                            password=_password(router, a, opts),
                            known_hosts=os.path.expanduser(a.known_hosts or opts.known_hosts or "~/.ssh/known_hosts"),
                            accept_new_host_key=opts.accept_new_host_key,
                            connect_timeout=a.connect_timeout, jump=jump)
    if a.transport == "ubus":
        from mwanctl.transports.ubus import UbusTransport
        url = a.ubus_url or ubus_url(host, a.port)
        return UbusTransport(router, url, username=a.user, password=_password(router, a, opts) or "",
                             tls_fingerprint=a.tls_fingerprint, ca_file=a.ca_file,
                             timeout=a.connect_timeout)
    from mwanctl.transports.local import LocalTransport
    return LocalTransport(router)


def connector(t: Topology, opts: ConnectOptions) -> Callable[[str], Transport]:
    """Router name -> a new connection to it (what Deployment and Rotation are given)."""
    return lambda router: transport_for(t, router, opts)


def asker(t: Topology, opts: ConnectOptions, connect: Optional[Callable[[str], Transport]] = None) -> Ask:
    """Router, probes -> their texts over a connection opened for this one question, or the
    error that stopped it (``status.poll``'s way of asking for ``mwanctl status``). ``connect``
    opens it instead of ``transport_for`` (the many-site run's pooled connections)."""
    opener = connect or connector(t, opts)

    def ask(router: str, probes: tuple[str, ...]) -> Answer:
        try:
            with opener(router) as tr:
                return tr.query(probes)
        except MwanctlError as exc:
            return exc
    return ask
