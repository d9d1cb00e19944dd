"""What every `mlops` command shares: its common options, and how it prints a result or an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

UseCaseOpt = Annotated[
    str,
    typer.Option(
        "--use-case",
        "-u",
        envvar="MLOPS_USE_CASE",
        help="Use case name (a YAML in MLOPS_USECASES_DIR, default usecases/) or path to a use-case YAML.",
    ),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="MLOPS_STATE_DIR", help="Where everything is written (default: ./.mlops)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the whole result as one JSON object (for scripts).")]


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def fail(message: str, code: int = 2) -> NoReturn:
    """The error on stderr, and the exit code of its kind (`mlops --help` lists them)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
