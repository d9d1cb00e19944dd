"""Progress on long work (demo months, training fits, large ingests): a bar on a terminal, plain
lines elsewhere (CI logs, a worker's output, a pipe), so that logs stay greppable.

The work calls ``step(n, message)``: advance by ``n`` and, when there is one, say what happened. On
a terminal the message is printed above the bar; elsewhere it is printed as a line and the bar is
left out. rich comes with Typer, so nothing is installed for it; it is imported only for a bar.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Step = Callable[[float, str | None], None]


def interactive(stream: TextIO) -> bool:
    """A person watches: a terminal, and not a CI run (CI=true) or a dumb terminal."""
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


@contextmanager
def progress(description: str, *, total: float, stream: TextIO | None = None) -> Iterator[Step]:
    """A bar of ``total`` units on ``stream`` (default: stderr) when it is a terminal; else messages as lines."""
    stream = stream or sys.stderr
    if not interactive(stream):

        def line(n: float, message: str | None = None) -> None:
            if message:
                print(message, flush=True)

        yield line
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float, message: str | None = None) -> None:
            if message:
                bar.console.print(message, highlight=False, markup=False)
            bar.advance(task, n)

        yield advance
