"""Start the dashboard: check where it may listen, pick the secret, open history, run uvicorn."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from mwanctl.errors import MwanctlError
from mwanctl.topology.model import Topology
from mwanctl.web.history import History, Retention

PASSWORD_ENV = "MWANCTL_WEB_PASSWORD"


class WebError(MwanctlError):
    pass


@dataclass
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    interval: float = 5.0
    db: Optional[Path] = None
    password_file: Optional[Path] = None
    certfile: Optional[Path] = None
    keyfile: Optional[Path] = None
    insecure_remote: bool = False
    allow_hosts: tuple[str, ...] = ()
    retention: Retention = field(default_factory=Retention)
    ask_uplinks: bool = True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(o: WebOptions) -> None:
    """Refuse a non-loopback address without TLS unless explicitly told (router credentials and
    the session cookie would cross the network in clear)."""
    if bool(o.certfile) != bool(o.keyfile):
        raise WebError("--certfile and --keyfile go together")
    if not is_loopback(o.host) and not o.certfile and not o.insecure_remote:
        raise WebError(f"refusing to listen on {o.host} without TLS: pass --certfile/--keyfile, or "
                       "--insecure-remote if something else (a TLS proxy, a VPN) protects the traffic")


def read_password(o: WebOptions) -> Optional[str]:
    if o.password_file is not None:
        try:
            pw = o.password_file.read_text().rstrip("\n")
        except OSError as exc:
            raise WebError(f"cannot read password file {o.password_file}: {exc.strerror}") from None
        if not pw:
            raise WebError(f"password file {o.password_file} is empty")
        return pw
    return os.environ.get(PASSWORD_ENV) or None


def _hosts(host: str, port: int, extra: tuple[str, ...]) -> set[str]:
    names = {host, "localhost", "127.0.0.1", "[::1]", *extra}
    names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return {f"{n}:{port}" for n in names} | ({n for n in names} if port in (80, 443) else set())


def serve(topologies: list[tuple[Path, Topology]], state_dir: Optional[Path], templates: Optional[Path],
          o: WebOptions, echo: Callable[[str], None]) -> int:
    import uvicorn

    from mwanctl.keys import default_state_dir
    from mwanctl.web.actions import Actions
    from mwanctl.web.app import Hub, create_app
    from mwanctl.web.auth import Auth
    from mwanctl.web.poller import Fleet, Poller, SiteRef

    check_listen(o)
    seen: dict[str, Path] = {}
    for path, topo in topologies:
        if topo.site in seen:
            raise WebError(f"{path} and {seen[topo.site]} both describe site {topo.site!r}")
        seen[topo.site] = path
    password = read_password(o)
    secret = password or Auth.new_token()
    family = socket.AF_INET6 if ":" in o.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((o.host.strip("[]"), o.port))
        sock.listen(128)          # before the URL is printed: a client may connect right away
    except OSError as exc:
        sock.close()
        raise WebError(f"cannot listen on {o.host}:{o.port}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    db = o.db or (state_dir or default_state_dir()) / "web.sqlite"
    history = History(db, o.retention)
    history.prune()
    sites = {t.site: SiteRef(t.site, path, t, state_dir) for path, t in topologies}
    fleet = Fleet(sites)
    hub = Hub()
    actions = Actions(sites, history, notify=lambda job: hub.publish("job", job),
                      on_change=lambda s: fleet.pollers[s].refresh(), templates=templates)
    for i, (name, ref) in enumerate(sites.items()):
        p = Poller(ref, history, o.interval, ask_uplinks=o.ask_uplinks, offset=o.interval * i / len(sites))
        p.listeners.append(lambda snap: hub.publish("status", snap.site))
        fleet.pollers[name] = p
    auth = Auth(secret, password is not None, _hosts(o.host, port, o.allow_hosts), secure=bool(o.certfile))
    app = create_app(fleet, history, auth, actions, hub, templates)
    scheme = "https" if o.certfile else "http"
    shown = f"[{o.host}]" if ":" in o.host and not o.host.startswith("[") else o.host
    url = f"{scheme}://{shown}:{port}/"
    echo(f"mwanctl web: {len(sites)} site(s) ({', '.join(sites)}), polling every {o.interval:g} s")
    echo(f"history: {db} (samples {o.retention.sample_hours:g} h, events {o.retention.event_days:g} days)")
    echo(f"open {url}" + ("  (log in with the configured password)" if password else f"?token={secret}"))
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            ssl_certfile=str(o.certfile) if o.certfile else None,
                            ssl_keyfile=str(o.keyfile) if o.keyfile else None, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        history.close()
    return 0
