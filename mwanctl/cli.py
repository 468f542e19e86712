"""The command line: parsing, output and exit codes. The only module that prints or exits."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import click

from mwanctl import __version__
from mwanctl.errors import CommandError, Diagnostic, ExitStatus, MwanctlError, TopologyError

# --- shared plumbing ------------------------------------------------------------------------------


class Env:
    """What every command needs from its surroundings, injectable for in-process tests."""

    def __init__(self, state_dir: Optional[Path], templates: Optional[Path], color: Optional[bool]):
        self.state_dir = state_dir
        self.templates_dir = templates
        self.color = color

    def templates(self) -> Any:
        from mwanctl.compile.templates import Templates
        return Templates(self.templates_dir)

    def console(self, stderr: bool = False) -> Any:
        from rich.console import Console
        no_color = self.color is False or bool(os.environ.get("NO_COLOR"))
        return Console(stderr=stderr, no_color=no_color, force_terminal=self.color or None,
                       highlight=False, soft_wrap=True)


def _echo_diags(diags: list[Diagnostic]) -> None:
    def order(d: Diagnostic) -> tuple[str, int, int]:
        loc = d.location
        return (loc.file, loc.line, loc.col) if loc else ("", 0, 0)
    for d in sorted(diags, key=order):
        click.echo(str(d), err=True)


def _load(path: str) -> Any:
    from mwanctl.topology.load import diagnose
    topo, diags = diagnose(path)
    if topo is None:
        raise TopologyError(diags)
    _echo_diags([d for d in diags if d.severity != "error"])
    return topo


def run_guarded(fn: Callable[[], int]) -> int:
    """One error line for every failure; a traceback only when explicitly asked for."""
    try:
        return fn()
    except TopologyError as exc:
        _echo_diags(exc.diagnostics)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"mwanctl: {errors} error(s); nothing was changed", err=True)
        return ExitStatus.ERROR
    except MwanctlError as exc:
        click.echo(f"mwanctl: error: {exc}", err=True)
        return exc.exit_status
    except KeyboardInterrupt:
        click.echo("mwanctl: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("MWANCTL_TRACEBACK"):
            raise
        click.echo(f"mwanctl: internal error: {type(exc).__name__}: {exc} "
                   "(set MWANCTL_TRACEBACK=1 to see where; please report it)", err=True)
        return ExitStatus.ERROR


def _raise(exc: BaseException) -> int:
    raise exc


def guarded(fn: Callable[..., int]) -> Callable[..., None]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        code = run_guarded(lambda: fn(*args, **kwargs))
        sys.exit(int(code))
    return wrapper


# --- commands -------------------------------------------------------------------------------------

TOPOLOGY = click.argument("topology", type=click.Path(dir_okay=False))
# plan, deploy, status: several files or a directory run every site (mwanctl/sites.py)
TOPOLOGIES = click.argument("topologies", nargs=-1, required=True, type=click.Path())
CONNECTIONS = click.option("--connections", type=click.IntRange(3, 1024), default=16, show_default=True,
                           help="With several sites: connections open at once over all of them.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mwanctl")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MWANCTL_STATE_DIR",
              help="Where keys and tunnel slots are kept (default ~/.local/state/mwanctl).")
@click.option("--templates", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory of UCI blueprints overriding the built-in ones.")
@click.option("--color/--no-color", default=None, help="Force colour on or off.")
@click.pass_context
def cli(ctx: click.Context, state_dir: Optional[Path], templates: Optional[Path], color: Optional[bool]) -> None:
    """Compile, deploy and watch multi-uplink mwan3 + WireGuard setups on OpenWrt.

    Example: mwanctl validate examples/home.yaml
    """
    ctx.obj = Env(state_dir, templates, color)


@cli.command()
@TOPOLOGY
@click.pass_obj
@guarded
def validate(env: Env, topology: str) -> int:
    """Check a topology and show how fast mwan3 will react.

    Example: mwanctl validate examples/home.yaml
    """
    topo = _load(topology)
    env.templates()  # a broken override directory is a validation error too
    _print_summary(topo)
    click.echo(f"{topology}: ok")
    return ExitStatus.OK


def _print_summary(topo: Any) -> None:
    from mwanctl.tracking import family_tracking, timing
    click.echo(f"site {topo.site}: mother {topo.mother.name} ({topo.mother.host}) with "
               f"{len(topo.uplinks)} uplink(s) and {len(topo.mother.wans)} own WAN(s)")
    rows = []
    for u in topo.uplinks:
        rows.append((u.name, u.tier, u.weight, u.tracking))
        if u.ipv6:
            rows.append((f"{u.name} (IPv6)", u.tier, u.weight, family_tracking(u.tracking, "ipv6")))
    rows += [(w.name, w.tier, w.weight, family_tracking(w.tracking, w.family)) for w in topo.mother.wans]
    for name, tier, weight, tr in rows:
        t = timing(tr)
        click.echo(f"  {name}: tier {tier}, weight {weight}, tracking {tr.profile} "
                   f"({len(tr.targets)} target(s)): {t.describe()}")


@cli.command()
@TOPOLOGY
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write <router>/etc/config/<package> into.")
@click.option("--batch", is_flag=True, help="Also write <router>/uci-batch.txt: the `uci batch` "
              "script creating the same sections.")
@click.pass_obj
@guarded
def render(env: Env, topology: str, out: Path, batch: bool) -> int:
    """Write the config mwanctl owns on every router, as `uci export` prints it.

    Keys are generated on first use into the key store; the files hold private keys and are
    written with mode 0600.

    Example: mwanctl render examples/home.yaml -o out/
    """
    from mwanctl.render import write_tree
    from mwanctl.site import prepare
    topo = _load(topology)
    compiled, _ = prepare(topo, env.state_dir, env.templates())
    _print_summary(topo)
    for path in write_tree(compiled, out, batch):
        click.echo(f"wrote {path}")
    return ExitStatus.OK


@cli.command()
@TOPOLOGY
@click.pass_obj
@guarded
def graph(env: Env, topology: str) -> int:
    """Print the topology as a Mermaid diagram.

    Example: mwanctl graph examples/home.yaml > topology.mmd
    """
    from mwanctl.graph import mermaid
    from mwanctl.site import preview
    topo = _load(topology)
    click.echo(mermaid(preview(topo, env.state_dir)), nl=False)
    return ExitStatus.OK


@cli.group()
def keys() -> None:
    """WireGuard keys: list them (public halves only) or rotate them."""


@keys.command("show")
@TOPOLOGY
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@guarded
def keys_show(env: Env, topology: str, as_json: bool) -> int:
    """List each tunnel end's public key and when it was created (never private keys).

    Example: mwanctl keys show examples/home.yaml --json
    """
    from mwanctl.site import open_store
    topo = _load(topology)
    rows = list(open_store(topo, env.state_dir).public_listing())
    if as_json:
        click.echo(json.dumps({"schema": "mwanctl.keys/1", "site": topo.site, "keys": rows}, indent=2))
        return ExitStatus.OK
    if not rows:
        click.echo("no keys yet: they are generated by `mwanctl render` or `mwanctl deploy`")
        return ExitStatus.OK
    from rich.table import Table
    table = Table("uplink", "end", "state", "public key", "created", box=None)
    for r in rows:
        table.add_row(r["uplink"], r["end"], r["state"], r["public_key"], r["created"])
    env.console().print(table)
    return ExitStatus.OK


# --- deploy ---------------------------------------------------------------------------------------

def _connect_options(accept_new: bool) -> Any:
    from mwanctl.connect import ConnectOptions
    interactive = sys.stdin.isatty()
    prompt = (lambda text: click.prompt(text, hide_input=True, err=True)) if interactive else None
    return ConnectOptions(accept_new_host_key=accept_new, prompt=prompt)


def _deployment(env: Env, topology: str, accept_new: bool, confirm_timeout: Optional[int],
                parallel: int, use: str = "current") -> Any:
    from mwanctl.connect import transport_for
    from mwanctl.deploy import Deployment
    from mwanctl.site import prepare
    topo = _load(topology)
    compiled, _ = prepare(topo, env.state_dir, env.templates(), use=use)
    opts = _connect_options(accept_new)
    timeout = confirm_timeout or topo.access_for(topo.mother.name).confirm_timeout
    err = env.console(stderr=True)
    dep = Deployment(compiled, lambda r: transport_for(topo, r, opts), timeout, parallel,
                     progress=lambda r, m: err.print(f"[bold]{r}[/bold]: {m}"))
    return topo, dep


def _print_tracker_bounds(topo: Any) -> None:
    """The promise of mwanctl's handover tracker, per uplink that uses it (profile `instant`)."""
    from mwanctl.tracking import timing
    for u in topo.uplinks:
        if u.tracking.tracker:
            click.echo(f"  {u.name}: handover tracker: {timing(u.tracking).describe()}")


def _show_plan(env: Env, dep: Any) -> None:
    from mwanctl.plan import describe
    out = env.console()
    for router, state in dep.states.items():
        rec = state.extra.get("last_rollback", "").split(" ", 1)
        if rec[0].isdigit():   # the router's own record (remote/lib.sh mw_restore)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(rec[0])))
            click.echo(f"note: {router} rolled back an unconfirmed deploy at {when}"
                       + (f" (applied by {rec[1]})" if len(rec) > 1 and rec[1] else ""), err=True)
    for router, plan in dep.plans.items():
        if not plan.changed:
            out.print(f"[green]{router}[/green]: up to date")
            continue
        out.print(f"[yellow]{router}[/yellow] ({plan.role}): {plan.op_count} change(s), reloads "
                  f"{', '.join(plan.apply.reload)}"
                  + (f", restarts {', '.join(plan.apply.restart_ifaces)}" if plan.apply.restart_ifaces else "")
                  + (f", renews {', '.join(plan.apply.renew_ifaces)}" if plan.apply.renew_ifaces else "")
                  + (f"; netifd rebuilds {', '.join(plan.restarts)} (one uplink at a time)" if plan.restarts else ""))
        for line in describe(plan):
            style = "green" if line.lstrip().startswith("+") else "red" if line.lstrip().startswith("-") else None
            out.print(line, style=style, markup=False)
        for note in plan.notes:
            out.print(f"  note: {note}", markup=False)


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
def plan(env: Env, topologies: tuple[str, ...], accept_new_host_key: bool, confirm_timeout: Optional[int],
         parallel: int, connections: int) -> int:
    """Show what a deploy would change on every router, and change nothing.

    Exit status: 0 nothing to do, 2 there are changes, 4 a router could not be read.

    Example: mwanctl plan examples/home.yaml   (or several files, or a directory: sites/)
    """
    if _is_many(topologies):
        return _many_sites(env, topologies, accept_new_host_key, confirm_timeout, connections, True, False)
    topology = topologies[0]
    return _plan_or_deploy(env, topology, accept_new_host_key, confirm_timeout, parallel, dry_run=True, yes=False)


@cli.command()
@TOPOLOGIES
@click.option("--dry-run", is_flag=True, help="Only show the plan (same as `mwanctl plan`).")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@_with(DEPLOY_OPTIONS)
@CONNECTIONS
@click.pass_obj
@guarded
def deploy(env: Env, topologies: tuple[str, ...], dry_run: bool, yes: bool, accept_new_host_key: bool,
           confirm_timeout: Optional[int], parallel: int, connections: int) -> int:
    """Compile, show the plan, apply to every router (uplinks first), confirm.

    Each router keeps a copy of its old config and restores it by itself if mwanctl cannot
    reconnect and confirm within the confirm timeout.

    Example: mwanctl deploy examples/home.yaml --yes   (or several files, or a directory: sites/)
    """
    if _is_many(topologies):
        return _many_sites(env, topologies, accept_new_host_key, confirm_timeout, connections, dry_run, yes)
    topology = topologies[0]
    return _plan_or_deploy(env, topology, accept_new_host_key, confirm_timeout, parallel, dry_run, yes)


def _plan_or_deploy(env: Env, topology: str, accept_new: bool, confirm_timeout: Optional[int],
                    parallel: int, dry_run: bool, yes: bool) -> int:
    topo, dep = _deployment(env, topology, accept_new, confirm_timeout, parallel)
    try:
        dep.read()
        _show_plan(env, dep)
        _print_tracker_bounds(topo)
        if dep.blocked:
            for line in dep.blocked:
                click.echo(f"mwanctl: error: {line}", err=True)
            return ExitStatus.CONNECT if dep.errors else ExitStatus.ERROR
        if not dep.changed:
            click.echo("nothing to do: every router is up to date")
            return ExitStatus.OK
        if dry_run:
            return ExitStatus.CHANGES
        if not yes:
            if not sys.stdin.isatty():
                click.echo("mwanctl: error: not applying without confirmation; pass --yes to apply "
                           "non-interactively", err=True)
                return ExitStatus.USAGE
            if not click.confirm("Apply these changes?", default=False, err=True):
                click.echo("nothing was changed", err=True)
                return ExitStatus.OK
        outcomes = dep.apply()
        for note in dep.notes:
            click.echo(f"note: {note}", err=True)
        return _report(outcomes)
    finally:
        dep.close()


def _report(outcomes: dict[str, Any]) -> int:
    """One line per router; the exit status is the highest of the routers' (README table)."""
    code = ExitStatus.OK
    for o in outcomes.values():
        line = f"{o.router}: {o.message}"
        if o.ok:
            click.echo(line)
        else:
            click.echo(f"mwanctl: error: {line}", err=True)
            code = max(code, o.exit_status)
    return code


def _router_action(action: str, doc: str) -> None:
    """`confirm` and `rollback`: the same options, one action on each router that has a pending deploy."""
    @cli.command(name=action, help=doc)
    @TOPOLOGY
    @click.option("--router", "routers", multiple=True, help="Only this router (repeatable).")
    @click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown SSH host key.")
    @click.pass_obj
    @guarded
    def command(env: Env, topology: str, routers: tuple[str, ...], accept_new_host_key: bool) -> int:
        return _each_router(env, topology, routers, accept_new_host_key, action)


_router_action("confirm", "Confirm a deploy that was applied but not confirmed (stops the routers' "
               "rollback timers).\n\nExample: mwanctl confirm examples/home.yaml --router dsl")
_router_action("rollback", "Restore now the config a router had before an unconfirmed deploy.\n\n"
               "Example: mwanctl rollback examples/home.yaml --router mother")


def _each_router(env: Env, topology: str, routers: tuple[str, ...], accept_new: bool, action: str) -> int:
    from mwanctl.connect import transport_for
    topo = _load(topology)
    names = list(routers) or topo.routers
    unknown = [r for r in names if r not in topo.routers]
    if unknown:
        click.echo(f"mwanctl: error: no router named {', '.join(unknown)} in {topology}", err=True)
        return ExitStatus.USAGE
    from mwanctl.deploy import one_line
    code = ExitStatus.OK
    opts = _connect_options(accept_new)
    for r in names:
        try:
            with transport_for(topo, r, opts) as t:
                if t.read_state(("network",)).pending is None:
                    click.echo(f"{r}: nothing pending")
                    continue
                if action == "confirm":
                    t.confirm()
                    click.echo(f"{r}: confirmed")
                elif t.rollback():
                    click.echo(f"{r}: rolled back to its previous config")
                else:
                    click.echo(f"{r}: nothing pending")
        except MwanctlError as exc:
            click.echo(f"mwanctl: error: {r}: {one_line(r, exc)}", err=True)
            code = max(code, exc.exit_status)
        except Exception as exc:  # noqa: BLE001 - the other routers still get their line
            click.echo(f"mwanctl: error: {r}: internal error: {type(exc).__name__}: {exc}", err=True)
            code = max(code, ExitStatus.ERROR)
    return code


# --- status ---------------------------------------------------------------------------------------

MOTHER_PROBES = ("mwan3_status", "wg_dump", "uptime", "epoch")


def _status_once(topo: Any, exp: Any, opts: Any, uplinks: bool,
                 connect: Optional[Callable[[str], Any]] = None) -> Any:
    from mwanctl.connect import transport_for
    from mwanctl.status import SiteStatus, status_or_unknown
    connect = connect or (lambda r: transport_for(topo, r, opts))
    try:
        with connect(topo.mother.name) as t:
            probes = t.query(MOTHER_PROBES + (("tracker",) if any(u.tracking.tracker for u in topo.uplinks) else ()))
    except CommandError as exc:   # connected, but the probes could not be run or read
        return SiteStatus.unknown(topo.mother.name, str(exc))
    except MwanctlError as exc:
        return SiteStatus.unreachable(topo.mother.name, str(exc))
    uplink_probes = None
    if uplinks:
        uplink_probes = {}
        for u in topo.uplinks:
            try:
                with connect(u.name) as t:
                    uplink_probes[u.name] = t.query(("wan_status",))
            except MwanctlError as exc:
                uplink_probes[u.name] = {"wan_status": f"ERROR: {exc}"}
    import time
    return status_or_unknown(exp, probes, None, uplink_probes, now=time.time())


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
def status(env: Env, topologies: tuple[str, ...], as_json: bool, watch: bool, interval: int, ask_uplinks: bool,
           accept_new_host_key: bool, connections: int) -> int:
    """What every uplink is doing: mwan3 state, tracking, WireGuard handshake, traffic share.

    Exit status (monitoring-plugin convention): 0 OK, every uplink online; 1 WARNING, degraded;
    2 CRITICAL, no uplink online (for IPv4, or for IPv6 where it is balanced); 3 UNKNOWN, the state
    cannot be told (mother unreachable, mwan3 probe failed, unreadable topology or key store).

    Example: mwanctl status examples/home.yaml --json   (several sites: one table, one JSON document)
    """
    if _is_many(topologies):
        return _many_status(env, topologies, as_json, watch, ask_uplinks, accept_new_host_key, connections)
    topology = topologies[0]
    from mwanctl.expect import expectation
    from mwanctl.site import open_store
    from mwanctl.status import UNKNOWN, SiteStatus, exit_code, render_table, to_json
    try:
        topo = _load(topology)
        store = open_store(topo, env.state_dir)
        exp = expectation(topo, {u.name: store.pair(u.name, "uplink") for u in topo.uplinks})
    except MwanctlError as exc:
        # Cannot even start asking: UNKNOWN, the usual error lines on stderr, and with --json still
        # the one object (a cron job writing it to a file must not get an empty file).
        if as_json:
            click.echo(json.dumps(to_json(SiteStatus.unknown(None, str(exc))), indent=2))
        run_guarded(lambda: _raise(exc))
        return UNKNOWN
    opts = _connect_options(accept_new_host_key)
    if not watch:
        site = _status_once(topo, exp, opts, ask_uplinks)
        if as_json:
            click.echo(json.dumps(to_json(site), indent=2))
        else:
            render_table(site, env.console())
        return exit_code(site)
    return _watch(env, lambda: _status_once(topo, exp, opts, ask_uplinks), as_json, interval)


def _watch(env: Env, poll: Callable[[], Any], as_json: bool, interval: int) -> int:
    """Redraw in place until Ctrl-C; the exit status is that of the last poll."""
    import time
    from rich.live import Live
    from rich.text import Text
    from mwanctl.status import exit_code, render_table, to_json
    site = poll()
    try:
        with Live(console=env.console(), auto_refresh=False) as live:
            while True:
                if as_json:
                    live.update(Text(json.dumps(to_json(site), indent=2)), refresh=True)
                else:
                    buf = env.console()
                    with buf.capture() as cap:
                        render_table(site, buf)
                    live.update(Text.from_ansi(cap.get()), refresh=True)
                time.sleep(interval)
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
def keys_rotate(env: Env, topology: str, uplinks: tuple[str, ...], older_than: Optional[str], yes: bool,
                confirm_timeout: Optional[int], accept_new_host_key: bool) -> int:
    """Replace the key pairs of every (or one) tunnel, one tunnel at a time, without an outage.

    Each tunnel is re-keyed live on the mother (no restart, nothing for mwan3 to rebuild), then on
    the uplink, checked for a fresh handshake and only then confirmed on both. Run it again after
    any failure to finish the rotation.

    Example: mwanctl keys rotate examples/home.yaml --older-than 90d --yes
    """
    import datetime as dt
    from mwanctl.connect import transport_for
    from mwanctl.rotate import Rotation, due, parse_age
    from mwanctl.site import open_store, pool_slots, slot_spec
    topo = _load(topology)
    unknown = [n for n in uplinks if n not in {u.name for u in topo.uplinks}]
    if unknown:
        click.echo(f"mwanctl: error: no uplink named {', '.join(unknown)} in {topology}", err=True)
        return ExitStatus.USAGE
    store = open_store(topo, env.state_dir)
    if store.ensure(slot_spec(topo), pool_slots(topo)):
        click.echo("mwanctl: error: some tunnels have no keys yet: deploy the topology before rotating", err=True)
        return ExitStatus.ERROR
    names = [u.name for u in topo.uplinks if not uplinks or u.name in uplinks]
    age = parse_age(older_than) if older_than else None
    todo = due(store, names, age, dt.datetime.now(dt.timezone.utc))
    if not todo:
        click.echo("nothing to rotate" + (f": no key is older than {older_than}" if older_than else ""))
        return ExitStatus.OK
    click.echo(f"rotating {len(todo)} tunnel(s), one at a time: {', '.join(todo)}")
    if not yes:
        if not sys.stdin.isatty():
            click.echo("mwanctl: error: pass --yes to rotate non-interactively", err=True)
            return ExitStatus.USAGE
        if not click.confirm("Rotate now?", default=False, err=True):
            return ExitStatus.OK
    opts = _connect_options(accept_new_host_key)
    err = env.console(stderr=True)
    rot = Rotation(topo, store, lambda r: transport_for(topo, r, opts), env.templates(),
                   confirm_timeout or topo.access_for(topo.mother.name).confirm_timeout,
                   say=lambda m: err.print(m, markup=False))
    code = ExitStatus.OK
    for name in todo:
        res = rot.rotate(topo.uplink(name))
        if res.status == "rotated":
            click.echo(f"{name}: {res.message} ({res.seconds:.1f} s)")
        else:
            click.echo(f"mwanctl: error: {name}: {res.message}", err=True)
            code = ExitStatus.ERROR
            break
    return code


# --- web (mwanctl/web) -----------------------------------------------------------------------------

@cli.command()
@click.argument("topologies", nargs=-1, required=True, type=click.Path(dir_okay=False))
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
def web(env: Env, topologies: tuple[str, ...], host: str, port: int, interval: float, db: Optional[Path],
        history_hours: float, password_file: Optional[Path], certfile: Optional[Path], keyfile: Optional[Path],
        insecure_remote: bool, allow_hosts: tuple[str, ...], no_uplinks: bool) -> int:
    """Serve a live dashboard for one or more sites (binds 127.0.0.1; prints its URL with a token).

    Example: mwanctl web examples/home.yaml
    """
    from mwanctl.web.history import Retention
    from mwanctl.web.server import WebOptions, serve
    loaded = [(Path(p), _load(p)) for p in topologies]
    env.templates()
    opts = WebOptions(host, port, interval, db, password_file, certfile, keyfile, insecure_remote, allow_hosts,
                      Retention(sample_hours=history_hours), not no_uplinks)
    return serve(loaded, env.state_dir, env.templates_dir, opts, lambda line: click.echo(line))


# --- many sites in one run (mwanctl/sites.py) -----------------------------------------------------

def _is_many(paths: tuple[str, ...]) -> bool:
    from mwanctl.sites import is_many
    return is_many(paths)


def _loaded(paths: tuple[str, ...]) -> Any:
    """Every file loaded, every file's diagnostics shown (file:line:col), before anything runs."""
    from mwanctl.sites import expand, load_all
    files = expand(paths)
    if not files:
        click.echo(f"mwanctl: error: no topology files (*.yaml, *.yml) in {', '.join(paths)}", err=True)
        return None
    loaded = load_all(files)
    _echo_diags([d for e in loaded for d in e.diags])
    return loaded


def _summary(env: Env, rows: list[tuple[str, str, str, int]]) -> None:
    from rich.table import Table
    table = Table("site", "router", "outcome", "exit", box=None)
    for site, router, outcome, code in rows:
        table.add_row(site, router, outcome, str(int(code)))
    env.console().print(table)


def _many_sites(env: Env, paths: tuple[str, ...], accept_new: bool, confirm_timeout: Optional[int],
                connections: int, dry_run: bool, yes: bool) -> int:
    """`plan`/`deploy` over many sites: each site's plan and outcome lines, one summary table,
    the worst exit code (README, exit codes)."""
    from mwanctl.connect import transport_for
    from mwanctl.site import prepare
    from mwanctl.sites import SiteRunner, worst
    if not dry_run and not yes:
        click.echo("mwanctl: error: several sites are applied only with --yes (see `mwanctl plan` first)", err=True)
        return ExitStatus.USAGE
    loaded = _loaded(paths)
    if loaded is None:
        return ExitStatus.USAGE
    templates = env.templates()
    opts = _connect_options(accept_new)
    err = env.console(stderr=True)
    runner = SiteRunner(lambda t: prepare(t, env.state_dir, templates)[0],
                        lambda t, r: transport_for(t, r, opts), connections, confirm_timeout,
                        progress=lambda s, r, m: err.print(f"[bold]{s}/{r}[/bold]: {m}", markup=True))
    runs = runner.run(loaded, apply=not dry_run)
    for run in runs:
        click.echo(f"== {run.site} ({run.file})")
        if run.deployment is not None:
            _show_plan(env, run.deployment)
            for note in run.deployment.notes:
                click.echo(f"note: {run.site}: {note}", err=True)
        for row in run.rows:
            if row.message and row.exit:
                click.echo(f"mwanctl: error: {row.site}/{row.router}: {row.message}", err=True)
            elif row.message and not dry_run:
                click.echo(f"{row.site}/{row.router}: {row.message}")
    _summary(env, [(r.site, r.router, r.outcome, r.exit) for run in runs for r in run.rows])
    pool = runner.pool
    click.echo(f"{len(runs)} site(s); {pool.opened} connection(s), at most {pool.peak} open at once "
               f"(--connections {pool.limit})", err=True)
    return worst([run.exit for run in runs])


def _many_status(env: Env, paths: tuple[str, ...], as_json: bool, watch: bool, ask_uplinks: bool,
                 accept_new: bool, connections: int) -> int:
    """`status` over many sites: one table (or one JSON document), the worst exit code."""
    from mwanctl.connect import transport_for
    from mwanctl.expect import expectation
    from mwanctl.site import open_store
    from mwanctl.sites import STATUS_SEVERITY, run_status, status_document, worst
    from mwanctl.status import SiteStatus, exit_code, summary_line, to_json
    if watch:
        click.echo("mwanctl: error: --watch takes one site (the dashboard, `mwanctl web`, shows many)", err=True)
        return ExitStatus.USAGE
    loaded = _loaded(paths)
    if loaded is None:
        return ExitStatus.USAGE
    opts = _connect_options(accept_new)

    def poll(t: Any, connect: Callable[[str], Any]) -> Any:
        store = open_store(t, env.state_dir)
        exp = expectation(t, {u.name: store.pair(u.name, "uplink") for u in t.uplinks})
        return _status_once(t, exp, opts, ask_uplinks, connect)

    runs = run_status(loaded, poll, lambda t, r: transport_for(t, r, opts),
                      lambda why: SiteStatus.unknown(None, why), exit_code, connections)
    if as_json:
        click.echo(json.dumps(status_document(runs, to_json), indent=2))
    else:
        _summary(env, [(r.site or Path(r.file).name, r.status.router or "-",
                        summary_line(r.status) if r.site else "invalid topology", r.code) for r in runs])
        for r in runs:
            for p in r.status.problems:
                click.echo(f"{r.site or Path(r.file).name}: {p.severity}: {p.message}")
    return worst([r.code for r in runs], STATUS_SEVERITY)


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point; returns the exit status instead of raising SystemExit."""
    try:
        cli.main(args=argv, prog_name="mwanctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitStatus.USAGE
    except click.exceptions.Abort:
        click.echo("mwanctl: aborted", err=True)
        return ExitStatus.INTERRUPTED
    except SystemExit as exc:
        return int(exc.code or 0)
    return ExitStatus.OK
