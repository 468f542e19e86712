"""The command line: parsing, output and exit codes. The only module that prints or exits."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from mwanctl import __version__
from mwanctl.errors import Diagnostic, ExitStatus, MwanctlError, TopologyError

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


def guarded(fn: Callable[..., int]) -> Callable[..., None]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        code = run_guarded(lambda: fn(*args, **kwargs))
        sys.exit(int(code))
    return wrapper


# --- commands -------------------------------------------------------------------------------------

TOPOLOGY = click.argument("topology", type=click.Path(dir_okay=False))


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
    from mwanctl.tracking import timing
    click.echo(f"site {topo.site}: mother {topo.mother.name} ({topo.mother.host}) with "
               f"{len(topo.uplinks)} uplink(s) and {len(topo.mother.wans)} own WAN(s)")
    rows = [(u.name, u.tier, u.weight, u.tracking) for u in topo.uplinks]
    rows += [(w.name, w.tier, w.weight, w.tracking) for w in topo.mother.wans]
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
