"""``mlops prefect``: the local Prefect server the flow commands share (pipelines/local_server.py)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cli.env import prepare_environment
from cli.options import JsonOpt, StateDirOpt
from cli.options import fail as _fail
from cli.options import print_json as _print

prefect_app = typer.Typer(
    help="The local Prefect server that the flow commands start once and reuse (when PREFECT_API_URL is not set).",
    no_args_is_help=True,
)


def _home() -> Path:
    return Path(os.environ["PREFECT_HOME"])


def use_local_server() -> None:
    """Point this process's flows at a Prefect API before Prefect is imported: PREFECT_API_URL when set,
    else the local server of PREFECT_HOME, started now if none runs (unless its idle time is 0)."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from pipelines import local_server
    from pipelines.settings import PipelineSettings

    idle_seconds = PipelineSettings().local_prefect_idle_minutes * 60
    if idle_seconds <= 0:
        return  # Prefect's temporary server, started and stopped by this process
    server = local_server.find(_home())
    if server is None:
        try:
            server = local_server.ensure(_home(), idle_seconds=idle_seconds)
        except local_server.LocalServerError as err:
            hint = "MLOPS_LOCAL_PREFECT_IDLE_MINUTES=0 runs each command on a temporary server instead"
            _fail(f"{err}\n({hint})", code=3)
        typer.echo(
            f"started a local Prefect server at {server.url}; later commands reuse it, and it stops after "
            f"{idle_seconds / 60:g} idle minutes (`mlops prefect status | stop`)",
            err=True,
        )
    os.environ["PREFECT_API_URL"] = server.url


@prefect_app.command()
def status(state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """Whether the local server of this state folder runs: its API address and process. Exits 1 when none does."""
    prepare_environment(state_dir)
    from pipelines import local_server

    server = local_server.find(_home())
    if as_json:
        _print(None if server is None else vars(server))
    elif server is None:
        typer.echo(f"no local Prefect server runs for {_home()}")
    else:
        typer.echo(
            f"local Prefect server: {server.url} (pid {server.pid}, stops after {server.idle_seconds:.0f} s idle)"
        )
        typer.echo(f"  to use it from the prefect CLI: export PREFECT_API_URL={server.url}")
    if server is None:
        raise typer.Exit(1)


@prefect_app.command()
def stop(state_dir: StateDirOpt = None) -> None:
    """Stop the local server of this state folder now (the next flow command starts another)."""
    prepare_environment(state_dir)
    from pipelines import local_server

    try:
        server = local_server.stop(_home())
    except OSError as err:
        _fail(f"could not stop the local Prefect server: {err}", code=3)
    typer.echo("no local Prefect server was running" if server is None else f"stopped {server.url} (pid {server.pid})")
