"""The command line: parsing, output and exit codes. The only module that prints or exits.

Each command is a click callback that only parses, and a ``run_*`` function that takes a
``Session`` (the injected ``Environment`` plus the global options) and returns the command
family's exit code (``mwanctl.exits``); the flows themselves (deploy, rotation, status polling,
connection opening) live in their modules. ``main(argv, env)`` runs it all in-process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator, Optional, Sequence

import click

from mwanctl import __version__
from mwanctl.environment import Environment
from mwanctl.errors import Diagnostic, ExitStatus, MwanctlError, TopologyError
from mwanctl.exits import BasicExit, DeployExit, StatusExit

if TYPE_CHECKING:   # the commands import what they use when they run: `mwanctl --help` stays fast
    from rich.console import Console

    from mwanctl.compile.templates import Templates
    from mwanctl.connect import ConnectOptions
    from mwanctl.deploy import Deployment, RouterOutcome
    from mwanctl.status import SiteStatus
    from mwanctl.topology.model import Topology
    from mwanctl.web.server import WebOptions

# --- shared plumbing ------------------------------------------------------------------------------


class Session:
    """One run: the injected Environment plus the global options every command reads."""

    def __init__(self, env: Environment, state_dir: Optional[Path], templates: Optional[Path],
                 color: Optional[bool]):
        self.env = env
        self.state_dir = state_dir
        self.templates_dir = templates
        self.color = color

    def templates(self) -> Templates:
        from mwanctl.compile.templates import Templates
        return Templates(self.templates_dir)

    def console(self, stderr: bool = False) -> Console:
        from rich.console import Console
        no_color = self.color is False or bool(self.env.environ.get("NO_COLOR"))
        return Console(file=self.env.stderr if stderr else self.env.stdout, no_color=no_color,
                       force_terminal=self.color or None, highlight=False, soft_wrap=True,
                       _environ=dict(self.env.environ))

    def echo(self, text: str = "", err: bool = False, nl: bool = True) -> None:
        click.echo(text, file=self.env.stderr if err else self.env.stdout, nl=nl)

    def error(self, text: str) -> None:
        """The one-line error every failure prints."""
        self.echo(f"mwanctl: error: {text}", err=True)

    def agreed(self, yes: bool, question: str, no_terminal: str, declined: str = "") -> Optional[DeployExit]:
        """None to go on (``--yes``, or yes at the terminal); else the exit status to stop with:
        USAGE when there is no terminal to ask on (``no_terminal`` says so), OK when the user said no."""
        if yes:
            return None
        if not self.env.stdin_isatty:
            self.error(no_terminal)
            return DeployExit.USAGE
        if not self.env.confirm(question, default=False):
            if declined:
                self.echo(declined, err=True)
            return DeployExit.OK
        return None

    def no_such(self, what: str, names: Sequence[str], known: Collection[str], topology: str) -> bool:
        """Names the topology does not have are a usage error, said in one line (True: stop)."""
        unknown = [n for n in names if n not in known]
        if unknown:
            self.error(f"no {what} named {', '.join(unknown)} in {topology}")
        return bool(unknown)

    def connect_options(self, accept_new: bool) -> ConnectOptions:
        """How to open connections: a password is asked for only when stdin is a terminal."""
        from mwanctl.connect import ConnectOptions
        prompt = self.env.ask_password if self.env.stdin_isatty else None
        return ConnectOptions(accept_new_host_key=accept_new, prompt=prompt, environ=self.env.environ)


def _echo_diags(env: Environment, diags: list[Diagnostic]) -> None:
    def order(d: Diagnostic) -> tuple[str, int, int]:
        loc = d.location
        return (loc.file, loc.line, loc.col) if loc else ("", 0, 0)
    for d in sorted(diags, key=order):
        click.echo(str(d), file=env.stderr)


def _load(s: Session, path: str) -> Topology:
    from mwanctl.topology.load import diagnose
    topo, diags = diagnose(path)
    if topo is None:
        raise TopologyError(diags)
    _echo_diags(s.env, [d for d in diags if d.severity != "error"])
    return topo


def run_guarded(env: Environment, fn: Callable[[], int]) -> int:
    """One error line for every failure; a traceback only when explicitly asked for."""
    try:
        return fn()
    except TopologyError as exc:
        _echo_diags(env, exc.diagnostics)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"mwanctl: {errors} error(s); nothing was changed", file=env.stderr)
        return ExitStatus.ERROR
    except MwanctlError as exc:
        click.echo(f"mwanctl: error: {exc}", file=env.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        click.echo("mwanctl: interrupted", file=env.stderr)
        return ExitStatus.INTERRUPTED
    except click.exceptions.Abort:   # no answer to a question (end of input): main says "aborted"
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if env.environ.get("MWANCTL_TRACEBACK"):
            raise
        click.echo(f"mwanctl: internal error: {type(exc).__name__}: {exc} "
                   "(set MWANCTL_TRACEBACK=1 to see where; please report it)", file=env.stderr)
        return ExitStatus.ERROR


def _raise(exc: BaseException) -> int:
    raise exc


def guarded(fn: Callable[..., int]) -> Callable[..., None]:
    """A click callback around a command function: run it guarded, exit with its status."""
    import functools

    @functools.wraps(fn)
    def wrapper(s: Session, *args: Any, **kwargs: Any) -> None:
        code = run_guarded(s.env, lambda: fn(s, *args, **kwargs))
        sys.exit(int(code))
    return wrapper


# --- commands -------------------------------------------------------------------------------------

TOPOLOGY = click.argument("topology", type=click.Path(dir_okay=False))
# plan, deploy, status: several files or a directory run every site (mwanctl/sites.py; the default
# of --connections is sites.DEFAULT_CONNECTIONS, held to it by tests/test_sites_pool.py)
TOPOLOGIES = click.argument("topologies", nargs=-1, required=True, type=click.Path())
CONNECTIONS = click.option("--connections", type=click.IntRange(4, 1024), default=16, show_default=True,
                           help="With several sites: connections open at once over all of them.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mwanctl")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where keys and tunnel slots are kept (default ~/.local/state/mwanctl).")
@click.option("--templates", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory of UCI blueprints overriding the built-in ones.")
@click.option("--color/--no-color", default=None, help="Force colour on or off.")
@click.pass_context
def cli(ctx: click.Context, state_dir: Optional[Path], templates: Optional[Path], color: Optional[bool]) -> None:
    """Compile, deploy and watch multi-uplink mwan3 + WireGuard setups on OpenWrt.

    Example: mwanctl validate examples/home.yaml
    """
    env = ctx.obj if isinstance(ctx.obj, Environment) else Environment.from_process()
    if state_dir is None and env.environ.get("MWANCTL_STATE_DIR"):
        # What click's envvar= did, from the injected environment: same check, same error.
        param = next(p for p in ctx.command.params if p.name == "state_dir")
        state_dir = param.process_value(ctx, env.environ["MWANCTL_STATE_DIR"])
    ctx.obj = Session(env, state_dir, templates, color)


@cli.command()
@TOPOLOGY
@click.pass_obj
@guarded
def validate(s: Session, topology: str) -> int:
    """Check a topology and show how fast mwan3 will react.

    Example: mwanctl validate examples/home.yaml
    """
    return run_validate(s, topology)


def run_validate(s: Session, topology: str) -> BasicExit:
    topo = _load(s, topology)
    s.templates()  # a broken override directory is a validation error too
    _print_summary(s, topo)
    s.echo(f"{topology}: ok")
    return BasicExit.OK


def _print_summary(s: Session, topo: Topology) -> None:
    from mwanctl.tracking import family_tracking, timing
    s.echo(f"site {topo.site}: mother {topo.mother.name} ({topo.mother.host}) with "
           f"{len(topo.uplinks)} uplink(s) and {len(topo.mother.wans)} own WAN(s)")
    rows = []
    for u in topo.uplinks:
        rows.append((u.name, u.tier, u.weight, u.tracking))
        if u.ipv6:
            rows.append((f"{u.name} (IPv6)", u.tier, u.weight, family_tracking(u.tracking, "ipv6")))
    rows += [(w.name, w.tier, w.weight, family_tracking(w.tracking, w.family)) for w in topo.mother.wans]
    for name, tier, weight, tr in rows:
        t = timing(tr)
        s.echo(f"  {name}: tier {tier}, weight {weight}, tracking {tr.profile} "
               f"({len(tr.targets)} target(s)): {t.describe()}")
    from mwanctl.compile.wan import describe_wan
    for u in topo.uplinks:
        if u.wan is not None:
            s.echo(f"  {u.name}: {describe_wan(u.wan, u.tunnel.mtu)}")


@cli.command()
@TOPOLOGY
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write <router>/etc/config/<package> into.")
@click.option("--batch", is_flag=True, help="Also write <router>/uci-batch.txt: the `uci batch` "
              "script creating the same sections.")
@click.pass_obj
@guarded
def render(s: Session, topology: str, out: Path, batch: bool) -> int:
    """Write the config mwanctl owns on every router, as `uci export` prints it.

    Keys are generated on first use into the key store; the files hold private keys and are
    written with mode 0600.

    Example: mwanctl render examples/home.yaml -o out/
    """
    return run_render(s, topology, out, batch)


def run_render(s: Session, topology: str, out: Path, batch: bool) -> BasicExit:
    from mwanctl.render import write_tree
    from mwanctl.site import prepare
    topo = _load(s, topology)
    compiled, _ = prepare(topo, s.state_dir, s.templates())
    _print_summary(s, topo)
    for path in write_tree(compiled, out, batch):
        s.echo(f"wrote {path}")
    return BasicExit.OK


@cli.command()
@TOPOLOGY
@click.pass_obj
@guarded
def graph(s: Session, topology: str) -> int:
    """Print the topology as a Mermaid diagram.

    Example: mwanctl graph examples/home.yaml > topology.mmd
    """
    return run_graph(s, topology)


def run_graph(s: Session, topology: str) -> BasicExit:
    from mwanctl.graph import mermaid
    from mwanctl.site import preview
    topo = _load(s, topology)
    s.echo(mermaid(preview(topo, s.state_dir)), nl=False)
    return BasicExit.OK


@cli.group()
def keys() -> None:
    """WireGuard keys: list them (public halves only) or rotate them."""


@keys.command("show")
@TOPOLOGY
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@guarded
def keys_show(s: Session, topology: str, as_json: bool) -> int:
    """List each tunnel end's public key and when it was created (never private keys).

    Example: mwanctl keys show examples/home.yaml --json
    """
    return run_keys_show(s, topology, as_json)


def run_keys_show(s: Session, topology: str, as_json: bool) -> BasicExit:
    from mwanctl.site import open_store
    topo = _load(s, topology)
    rows = list(open_store(topo, s.state_dir).public_listing())
    if as_json:
        s.echo(json.dumps({"schema": "mwanctl.keys/1", "site": topo.site, "keys": rows}, indent=2))
        return BasicExit.OK
    if not rows:
        s.echo("no keys yet: they are generated by `mwanctl render` or `mwanctl deploy`")
        return BasicExit.OK
    from rich.table import Table
    table = Table("uplink", "end", "state", "public key", "created", box=None)
    for r in rows:
        table.add_row(r["uplink"], r["end"], r["state"], r["public_key"], r["created"])
    s.console().print(table)
    return BasicExit.OK


# --- deploy ---------------------------------------------------------------------------------------

def _deployment(s: Session, topology: str, accept_new: bool, confirm_timeout: Optional[int],
                parallel: int, use: str = "current") -> tuple[Topology, Deployment]:
    from mwanctl.connect import connector
    from mwanctl.deploy import Deployment
    from mwanctl.site import prepare
    topo = _load(s, topology)
    compiled, _ = prepare(topo, s.state_dir, s.templates(), use=use)
    timeout = confirm_timeout or topo.access_for(topo.mother.name).confirm_timeout
    err = s.console(stderr=True)
    dep = Deployment(compiled, connector(topo, s.connect_options(accept_new)), timeout, parallel,
                     progress=lambda r, m: err.print(f"[bold]{r}[/bold]: {m}"))
    return topo, dep


def _print_tracker_bounds(s: Session, topo: Topology) -> None:
    """The promise of mwanctl's handover tracker, per uplink that uses it (profile `instant`)."""
    from mwanctl.tracking import timing
    for u in topo.uplinks:
        if u.tracking.tracker:
            s.echo(f"  {u.name}: handover tracker: {timing(u.tracking).describe()}")


def _show_plan(s: Session, dep: Deployment) -> None:
    from rich.text import Text

    from mwanctl.plan import plan_text
    out = s.console()
    for router, state in dep.states.items():
        rec = state.extra.get("last_rollback", "").split(" ", 1)
        if rec[0].isdigit():   # the router's own record (remote/lib.sh mw_restore)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(rec[0])))
            s.echo(f"note: {router} rolled back an unconfirmed deploy at {when}"
                   + (f" (applied by {rec[1]})" if len(rec) > 1 and rec[1] else ""), err=True)
    for router, plan in dep.plans.items():
        head, *rest = plan_text(router, plan)
        out.print(Text.assemble((router, "yellow" if plan.changed else "green"), head[len(router):]))
        for line in rest:
            style = "green" if line.lstrip().startswith("+") else "red" if line.lstrip().startswith("-") else None
            out.print(line, style=style, markup=False)


DEPLOY_OPTIONS = [
    click.option("--accept-new-host-key", is_flag=True, help="Trust routers whose SSH host key is not "
                 "known yet (first contact) and remember it."),
    click.option("--confirm-timeout", type=click.IntRange(30, 3600), default=None,
                 help="Seconds a router waits for confirmation before restoring its old config (default 90)."),
    click.option("--parallel", type=click.IntRange(1, 64), default=8, show_default=True,
                 help="Routers handled at once."),
]


def _with(options: list[Callable[..., Any]]) -> Callable[..., Any]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return deco


@cli.command()
@TOPOLOGIES
@_with(DEPLOY_OPTIONS)
@CONNECTIONS
@click.pass_obj
@guarded
def plan(s: Session, topologies: tuple[str, ...], accept_new_host_key: bool, confirm_timeout: Optional[int],
         parallel: int, connections: int) -> int:
    """Show what a deploy would change on every router, and change nothing.

    Exit status: 0 nothing to do, 2 there are changes, 4 a router could not be read.

    Example: mwanctl plan examples/home.yaml   (or several files, or a directory: sites/)
    """
    if _is_many(topologies):
        return run_many_sites(s, topologies, accept_new_host_key, confirm_timeout, connections, True, False)
    topology = topologies[0]
    return run_plan_or_deploy(s, topology, accept_new_host_key, confirm_timeout, parallel, dry_run=True, yes=False)


@cli.command()
@TOPOLOGIES
@click.option("--dry-run", is_flag=True, help="Only show the plan (same as `mwanctl plan`).")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@_with(DEPLOY_OPTIONS)
@CONNECTIONS
@click.pass_obj
@guarded
def deploy(s: Session, topologies: tuple[str, ...], dry_run: bool, yes: bool, accept_new_host_key: bool,
           confirm_timeout: Optional[int], parallel: int, connections: int) -> int:
    """Compile, show the plan, apply to every router (uplinks first), confirm.

    Each router keeps a copy of its old config and restores it by itself if mwanctl cannot
    reconnect and confirm within the confirm timeout.

    Example: mwanctl deploy examples/home.yaml --yes   (or several files, or a directory: sites/)
    """
    if _is_many(topologies):
        return run_many_sites(s, topologies, accept_new_host_key, confirm_timeout, connections, dry_run, yes)
    topology = topologies[0]
    return run_plan_or_deploy(s, topology, accept_new_host_key, confirm_timeout, parallel, dry_run, yes)


def run_plan_or_deploy(s: Session, topology: str, accept_new: bool, confirm_timeout: Optional[int],
                       parallel: int, dry_run: bool, yes: bool) -> DeployExit:
    """Read every router, show the plan, and (unless ``dry_run``) apply and confirm it."""
    topo, dep = _deployment(s, topology, accept_new, confirm_timeout, parallel)
    try:
        dep.read()
        _show_plan(s, dep)
        _print_tracker_bounds(s, topo)
        if dep.blocked:
            for line in dep.blocked:
                s.error(line)
            return DeployExit.CONNECT if dep.errors else DeployExit.ERROR
        if not dep.changed:
            s.echo("nothing to do: every router is up to date")
            return DeployExit.OK
        if dry_run:
            return DeployExit.CHANGES
        stop = s.agreed(yes, "Apply these changes?",
                        "not applying without confirmation; pass --yes to apply non-interactively",
                        "nothing was changed")
        if stop is not None:
            return stop
        outcomes = dep.apply()
        for note in dep.notes:
            s.echo(f"note: {note}", err=True)
        return _report(s, outcomes)
    finally:
        dep.close()


def _report(s: Session, outcomes: dict[str, RouterOutcome]) -> DeployExit:
    """One line per router; the exit status is the highest of the routers' (README table)."""
    code = DeployExit.OK
    for o in outcomes.values():
        line = f"{o.router}: {o.message}"
        if o.ok:
            s.echo(line)
        else:
            s.error(line)
            code = max(code, DeployExit(o.exit_status))
    return code


def _router_action(action: str, doc: str) -> None:
    """`confirm` and `rollback`: the same options, one action on each router that has a pending deploy."""
    @cli.command(name=action, help=doc)
    @TOPOLOGY
    @click.option("--router", "routers", multiple=True, help="Only this router (repeatable).")
    @click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown SSH host key.")
    @click.pass_obj
    @guarded
    def command(s: Session, topology: str, routers: tuple[str, ...], accept_new_host_key: bool) -> int:
        return run_router_action(s, topology, routers, accept_new_host_key, action)


_router_action("confirm", "Confirm a deploy that was applied but not confirmed (stops the routers' "
               "rollback timers).\n\nExample: mwanctl confirm examples/home.yaml --router dsl")
_router_action("rollback", "Restore now the config a router had before an unconfirmed deploy.\n\n"
               "Example: mwanctl rollback examples/home.yaml --router mother")


def run_router_action(s: Session, topology: str, routers: tuple[str, ...], accept_new: bool,
                      action: str) -> DeployExit:
    """``confirm`` or ``rollback`` on each named router (all when none) that has a pending deploy."""
    from mwanctl.connect import transport_for
    topo = _load(s, topology)
    names = list(routers) or topo.routers
    if s.no_such("router", names, topo.routers, topology):
        return DeployExit.USAGE
    from mwanctl.deploy import one_line, settle_pending
    code = DeployExit.OK
    opts = s.connect_options(accept_new)
    for r in names:
        try:
            with transport_for(topo, r, opts) as t:
                s.echo(f"{r}: {settle_pending(t, action)}")     # the dashboard's buttons do the same
        except MwanctlError as exc:
            s.error(f"{r}: {one_line(r, exc)}")
            code = max(code, DeployExit(exc.exit_status))
        except Exception as exc:  # noqa: BLE001 - the other routers still get their line
            s.error(f"{r}: internal error: {type(exc).__name__}: {exc}")
            code = max(code, DeployExit.ERROR)
    return code


# --- status ---------------------------------------------------------------------------------------

@cli.command()
@TOPOLOGIES
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON (schema mwanctl.status/2), "
              "always one object, also when the state cannot be read.")
@click.option("--watch", is_flag=True, help="Refresh in place until interrupted.")
@click.option("--interval", type=click.IntRange(1, 3600), default=5, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--uplinks", "ask_uplinks", is_flag=True, help="Also ask every uplink router about its own WAN.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown SSH host key.")
@CONNECTIONS
@click.pass_obj
@guarded
def status(s: Session, topologies: tuple[str, ...], as_json: bool, watch: bool, interval: int, ask_uplinks: bool,
           accept_new_host_key: bool, connections: int) -> int:
    """What every uplink is doing: mwan3 state, tracking, WireGuard handshake, traffic share.

    Exit status (monitoring-plugin convention): 0 OK, every uplink online; 1 WARNING, degraded;
    2 CRITICAL, no uplink online (for IPv4, or for IPv6 where it is balanced); 3 UNKNOWN, the state
    cannot be told (mother unreachable, mwan3 probe failed, unreadable topology or key store).

    Example: mwanctl status examples/home.yaml --json   (several sites: one table, one JSON document)
    """
    if _is_many(topologies):
        return run_many_status(s, topologies, as_json, watch, ask_uplinks, accept_new_host_key, connections)
    topology = topologies[0]
    return run_status(s, topology, as_json, watch, interval, ask_uplinks, accept_new_host_key)


def run_status(s: Session, topology: str, as_json: bool, watch: bool, interval: int, ask_uplinks: bool,
               accept_new: bool) -> StatusExit:
    from mwanctl.connect import asker
    from mwanctl.expect import expectation
    from mwanctl.site import open_store
    from mwanctl.status import SiteStatus, exit_code, render_table, to_json
    from mwanctl.status.poll import poll_site
    try:
        topo = _load(s, topology)
        store = open_store(topo, s.state_dir)
        exp = expectation(topo, {u.name: store.pair(u.name, "uplink") for u in topo.uplinks})
    except MwanctlError as exc:
        # Cannot even start asking: UNKNOWN, the usual error lines on stderr, and with --json still
        # the one object (a cron job writing it to a file must not get an empty file).
        failure = exc
        if as_json:
            s.echo(json.dumps(to_json(SiteStatus.unknown(None, str(failure))), indent=2))
        run_guarded(s.env, lambda: _raise(failure))
        return StatusExit.UNKNOWN
    ask = asker(topo, s.connect_options(accept_new))

    def poll() -> SiteStatus:
        return poll_site(topo, exp, ask, ask_uplinks, s.env.clock).status

    if not watch:
        site = poll()
        if as_json:
            s.echo(json.dumps(to_json(site), indent=2))
        else:
            render_table(site, s.console())
        return exit_code(site)
    return _watch(s, poll, as_json, interval)


def _watch(s: Session, poll: Callable[[], SiteStatus], as_json: bool, interval: int) -> StatusExit:
    """Redraw in place until Ctrl-C; the exit status is that of the last poll."""
    from rich.live import Live
    from rich.text import Text

    from mwanctl.status import exit_code, render_table, to_json
    site = poll()
    try:
        with Live(console=s.console(), auto_refresh=False) as live:
            while True:
                if as_json:
                    live.update(Text(json.dumps(to_json(site), indent=2)), refresh=True)
                else:
                    buf = s.console()
                    with buf.capture() as cap:
                        render_table(site, buf)
                    live.update(Text.from_ansi(cap.get()), refresh=True)
                s.env.sleep(interval)
                site = poll()
    except KeyboardInterrupt:
        return exit_code(site)


@keys.command("rotate")
@TOPOLOGY
@click.option("--uplink", "uplinks", multiple=True, help="Only this tunnel (repeatable).")
@click.option("--older-than", help="Only keys older than this age, e.g. 90d, 12h, 2w.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
@click.option("--confirm-timeout", type=click.IntRange(30, 3600), default=None,
              help="Seconds each router waits for confirmation before restoring its old config.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown SSH host key.")
@click.pass_obj
@guarded
def keys_rotate(s: Session, topology: str, uplinks: tuple[str, ...], older_than: Optional[str], yes: bool,
                confirm_timeout: Optional[int], accept_new_host_key: bool) -> int:
    """Replace the key pairs of every (or one) tunnel, one tunnel at a time, without an outage.

    Each tunnel is re-keyed live on the mother (no restart, nothing for mwan3 to rebuild), then on
    the uplink, checked for a fresh handshake and only then confirmed on both. Run it again after
    any failure to finish the rotation.

    Example: mwanctl keys rotate examples/home.yaml --older-than 90d --yes
    """
    return run_keys_rotate(s, topology, uplinks, older_than, yes, confirm_timeout, accept_new_host_key)


def run_keys_rotate(s: Session, topology: str, uplinks: tuple[str, ...], older_than: Optional[str], yes: bool,
                    confirm_timeout: Optional[int], accept_new: bool) -> DeployExit:
    from mwanctl.connect import connector
    from mwanctl.rotate import Rotation, rotate_in_turn, tunnels_to_rotate
    from mwanctl.site import open_store
    topo = _load(s, topology)
    if s.no_such("uplink", uplinks, {u.name for u in topo.uplinks}, topology):
        return DeployExit.USAGE
    store = open_store(topo, s.state_dir)
    now = dt.datetime.fromtimestamp(s.env.clock(), dt.timezone.utc)
    todo = tunnels_to_rotate(topo, store, uplinks, older_than, now)
    if not todo:
        s.echo("nothing to rotate" + (f": no key is older than {older_than}" if older_than else ""))
        return DeployExit.OK
    s.echo(f"rotating {len(todo)} tunnel(s), one at a time: {', '.join(todo)}")
    stop = s.agreed(yes, "Rotate now?", "pass --yes to rotate non-interactively")
    if stop is not None:
        return stop
    err = s.console(stderr=True)
    rot = Rotation(topo, store, connector(topo, s.connect_options(accept_new)), s.templates(),
                   confirm_timeout or topo.access_for(topo.mother.name).confirm_timeout,
                   say=lambda m: err.print(m, markup=False))
    for res in rotate_in_turn(rot, todo):
        if res.status == "rotated":
            s.echo(f"{res.uplink}: {res.message} ({res.seconds:.1f} s)")
        else:
            s.error(f"{res.uplink}: {res.message}")
            return DeployExit.ERROR
    return DeployExit.OK


# --- web (mwanctl/web) -----------------------------------------------------------------------------

@cli.command()
@click.argument("topologies", nargs=-1, required=True, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=5.0, show_default=True,
              help="Seconds between polls of each site.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="History database "
              "(default <state dir>/web.sqlite).")
@click.option("--history-hours", type=click.FloatRange(1, 24 * 90), default=24.0, show_default=True,
              help="How long per-uplink samples are kept.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Log in with this password instead of a random token (or set MWANCTL_WEB_PASSWORD).")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="TLS certificate.")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="TLS key.")
@click.option("--insecure-remote", is_flag=True, help="Allow a non-loopback --host without TLS.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Another name the browser may use for "
              "this server (Host header), e.g. behind a proxy.")
@click.option("--no-uplinks", is_flag=True, help="Poll only the mothers, not each uplink router's own WAN.")
@click.pass_obj
@guarded
def web(s: Session, topologies: tuple[str, ...], host: str, port: int, interval: float, db: Optional[Path],
        history_hours: float, password_file: Optional[Path], certfile: Optional[Path], keyfile: Optional[Path],
        insecure_remote: bool, allow_hosts: tuple[str, ...], no_uplinks: bool) -> int:
    """Serve a live dashboard for one or more sites (binds 127.0.0.1; prints its URL with a token).
    A directory stands for its *.yaml/*.yml files.

    Example: mwanctl web examples/home.yaml
    """
    from mwanctl.web.history import Retention
    from mwanctl.web.server import WebOptions
    opts = WebOptions(host, port, interval, db, password_file, certfile, keyfile, insecure_remote, allow_hosts,
                      Retention(sample_hours=history_hours), not no_uplinks)
    return run_web(s, topologies, opts)


def run_web(s: Session, topologies: tuple[str, ...], opts: WebOptions) -> int:
    from mwanctl.sites import expand
    from mwanctl.web.server import serve
    files = expand(topologies)
    if not files:
        s.error(f"no topology files (*.yaml, *.yml) in {', '.join(topologies)}")
        return BasicExit.USAGE
    loaded = [(Path(p), _load(s, p)) for p in files]
    s.templates()
    return serve(loaded, s.state_dir, s.templates_dir, opts, lambda line: s.echo(line))


# --- many sites in one run (mwanctl/sites.py) -----------------------------------------------------

if TYPE_CHECKING:
    from mwanctl.sites import Loaded
    from mwanctl.status import SiteStatus
    from mwanctl.topology.model import Topology
    from mwanctl.transports.base import Transport

def _is_many(paths: tuple[str, ...]) -> bool:
    from mwanctl.sites import is_many
    return is_many(paths)


def _loaded(s: Session, paths: tuple[str, ...]) -> Optional[list[Loaded]]:
    """Every file loaded, every file's diagnostics shown (file:line:col), before anything runs."""
    from mwanctl.sites import expand, load_all
    files = expand(paths)
    if not files:
        s.error(f"no topology files (*.yaml, *.yml) in {', '.join(paths)}")
        return None
    loaded = load_all(files)
    _echo_diags(s.env, [d for e in loaded for d in e.diags])
    return loaded


def _summary(s: Session, rows: list[tuple[str, str, str, int]]) -> None:
    from rich.table import Table
    table = Table("site", "router", "outcome", "exit", box=None)
    for site, router, outcome, code in rows:
        table.add_row(site, router, outcome, str(int(code)))
    s.console().print(table)


def run_many_sites(s: Session, paths: tuple[str, ...], accept_new: bool, confirm_timeout: Optional[int],
                   connections: int, dry_run: bool, yes: bool) -> DeployExit:
    """`plan`/`deploy` over many sites: each site's plan and outcome lines, one summary table,
    the worst exit code (README, exit codes)."""
    from mwanctl.connect import transport_for
    from mwanctl.site import prepare
    from mwanctl.sites import SiteRunner, worst
    if not dry_run and not yes:
        s.error("several sites are applied only with --yes (see `mwanctl plan` first)")
        return DeployExit.USAGE
    loaded = _loaded(s, paths)
    if loaded is None:
        return DeployExit.USAGE
    templates = s.templates()
    opts = s.connect_options(accept_new)
    err = s.console(stderr=True)
    runner = SiteRunner(lambda t: prepare(t, s.state_dir, templates)[0],
                        lambda t, r: transport_for(t, r, opts), connections, confirm_timeout,
                        progress=lambda site, r, m: err.print(f"[bold]{site}/{r}[/bold]: {m}"))
    runs = runner.run(loaded, apply=not dry_run)
    for run in runs:
        s.echo(f"== {run.site} ({run.file})")
        if run.deployment is not None:
            _show_plan(s, run.deployment)
            if run.topo is not None:
                _print_tracker_bounds(s, run.topo)
            for note in run.deployment.notes:
                s.echo(f"note: {run.site}: {note}", err=True)
        for row in run.rows:
            if row.message and row.exit:
                s.error(f"{row.site}/{row.router}: {row.message}")
            elif row.message and not dry_run:
                s.echo(f"{row.site}/{row.router}: {row.message}")
    _summary(s, [(r.site, r.router, r.outcome, r.exit) for run in runs for r in run.rows])
    pool = runner.pool
    s.echo(f"{len(runs)} site(s); {pool.opened} connection(s), at most {pool.peak} open at once "
           f"(--connections {pool.limit})", err=True)
    return DeployExit(worst([run.exit for run in runs]))


def run_many_status(s: Session, paths: tuple[str, ...], as_json: bool, watch: bool, ask_uplinks: bool,
                    accept_new: bool, connections: int) -> StatusExit:
    """`status` over many sites: one table (or one JSON document), the worst exit code."""
    from mwanctl.connect import asker, transport_for
    from mwanctl.expect import expectation
    from mwanctl.site import open_store
    from mwanctl.sites import STATUS_SEVERITY, status_document, worst
    from mwanctl.sites import run_status as poll_sites
    from mwanctl.status import SiteStatus, exit_code, summary_line, to_json
    from mwanctl.status.poll import poll_site
    if watch:
        s.error("--watch takes one site (the dashboard, `mwanctl web`, shows many)")
        return StatusExit.USAGE
    loaded = _loaded(s, paths)
    if loaded is None:
        return StatusExit.USAGE
    opts = s.connect_options(accept_new)

    def poll(t: Topology, connect: Callable[[str], Transport]) -> SiteStatus:
        store = open_store(t, s.state_dir)
        exp = expectation(t, {u.name: store.pair(u.name, "uplink") for u in t.uplinks})
        return poll_site(t, exp, asker(t, opts, connect), ask_uplinks, s.env.clock).status

    runs = poll_sites(loaded, poll, lambda t, r: transport_for(t, r, opts),
                      lambda why: SiteStatus.unknown(None, why), exit_code, connections)
    if as_json:
        s.echo(json.dumps(status_document(runs, to_json), indent=2))
    else:
        _summary(s, [(r.site or Path(r.file).name, r.status.router or "-",
                      summary_line(r.status) if r.site else "invalid topology", r.code) for r in runs])
        for r in runs:
            for p in r.status.problems:
                s.echo(f"{r.site or Path(r.file).name}: {p.severity}: {p.message}")
    return StatusExit(worst([r.code for r in runs], STATUS_SEVERITY))


# --- entry point ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _click_streams(env: Environment) -> Iterator[None]:
    """click's own output (help, --version, usage errors) goes to the injected streams too."""
    if env.stdout is sys.stdout and env.stderr is sys.stderr:
        yield
        return
    with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):
        yield


def main(argv: Optional[list[str]] = None, env: Optional[Environment] = None) -> int:
    """Console entry point; returns the exit status instead of raising SystemExit.

    ``env`` (default: this process's) is what the commands read and write: tests pass their own to
    run any command in-process."""
    env = env or Environment.from_process()
    with _click_streams(env):
        try:
            cli.main(args=argv, prog_name="mwanctl", standalone_mode=False, obj=env)
        except click.exceptions.Exit as exc:
            return int(exc.exit_code)
        except click.ClickException as exc:
            exc.show(file=env.stderr)
            return ExitStatus.USAGE
        except click.exceptions.Abort:
            click.echo("mwanctl: aborted", file=env.stderr)
            return ExitStatus.INTERRUPTED
        except SystemExit as exc:
            return int(exc.code or 0)
    return ExitStatus.OK
