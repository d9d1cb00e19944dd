"""The local Prefect server: started once by the first command that runs a flow, found again by the rest.

Without ``PREFECT_API_URL``, Prefect starts a temporary server for every process that runs a flow
and stops it when the process ends: about 6 s of a 744-row ``mlops ingest`` went to that start, and
1 s to the stop (measured). Here the first ``mlops`` command that runs a flow starts Prefect's own
API app (the same ``create_app`` the temporary server runs, on the same ``PREFECT_HOME`` database,
so the same flow runs are recorded) in a process of its own, detached from the command, and leaves
a note in ``PREFECT_HOME/local-server.json``. Every later command finds it there and talks to it.

Its lifetime is explicit: it stops itself once no request has been open for ``idle_seconds``
(``MLOPS_LOCAL_PREFECT_IDLE_MINUTES``; an open connection, such as a running flow's event stream,
counts as busy), or at once with ``mlops prefect stop``. One lock file keeps two commands that
start at the same moment from starting two servers.

    python -m pipelines.local_server --port 4242 --idle-seconds 600   # what ``ensure`` starts
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NOTE = "local-server.json"
LOCK = "local-server.lock"
LOG = "local-server.log"
STARTUP_TIMEOUT_S = 120.0  # a first start creates the database: ~10 s on 2 cores, more on a busy machine


class LocalServerError(RuntimeError):
    """The local Prefect server could not be started: the message says why, with its log's last lines."""


@dataclass(frozen=True)
class LocalServer:
    pid: int
    url: str  # the API's base, as PREFECT_API_URL takes it: http://127.0.0.1:PORT/api
    home: str
    idle_seconds: float


def _note(home: Path) -> Path:
    return home / NOTE


def _healthy(url: str, *, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's process under a reused pid
        return False
    return True


def find(home: Path) -> LocalServer | None:
    """The running server this ``PREFECT_HOME`` noted, or None (a note left by a dead one is removed)."""
    try:
        server = LocalServer(**json.loads(_note(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    alive = _alive(server.pid)
    if alive and _healthy(server.url):
        return server
    if not alive:
        _note(home).unlink(missing_ok=True)
    return None


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure(home: Path, *, idle_seconds: float, timeout_s: float = STARTUP_TIMEOUT_S) -> LocalServer:
    """The server for ``home``: the running one, or a new one started and noted. Raises LocalServerError."""
    with _locked(home):
        running = find(home)
        if running is not None:
            return running
        port = _free_port()
        log_path = home / LOG
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipelines.local_server",
                    "--port",
                    str(port),
                    "--idle-seconds",
                    str(idle_seconds),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own session: the command's Ctrl-C, or its end, does not stop the server.
                start_new_session=True,
                cwd=home,
            )
        server = LocalServer(
            pid=process.pid, url=f"http://127.0.0.1:{port}/api", home=str(home), idle_seconds=idle_seconds
        )
        deadline = time.monotonic() + timeout_s
        while not _healthy(server.url, timeout=1.0):
            if process.poll() is not None:
                raise LocalServerError(
                    f"the local Prefect server exited with code {process.returncode} at start; "
                    f"its log ({log_path}) ends:\n{_log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise LocalServerError(
                    f"the local Prefect server did not answer within {timeout_s:.0f} s; "
                    f"its log ({log_path}) ends:\n{_log_tail(log_path)}"
                )
            time.sleep(0.1)
        _note(home).write_text(json.dumps(asdict(server)))
        return server


def stop(home: Path, *, timeout_s: float = 30.0) -> LocalServer | None:
    """Stop the server ``home`` noted, as its own idle stop would; the server stopped, or None."""
    with _locked(home):
        server = find(home)
        if server is None:
            return None
        os.kill(server.pid, signal.SIGTERM)  # uvicorn's graceful shutdown: open requests finish
        deadline = time.monotonic() + timeout_s
        while _alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(server.pid):
            os.kill(server.pid, signal.SIGKILL)
        _note(home).unlink(missing_ok=True)
        return server


# --- the server process ---------------------------------------------------------------------------


class IdleWatch:
    """ASGI middleware: how long the app has had no request open (a websocket counts while open)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = 0
        self.quiet_since = time.monotonic()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.quiet_since = time.monotonic()

    def quiet_for(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.quiet_since


async def _serve(*, port: int, idle_seconds: float) -> None:
    import asyncio

    import uvicorn
    from prefect.server.api.server import create_app

    # What Prefect's temporary server runs: the API without the UI, with the services an ephemeral
    # server runs (events, task-run recording), on PREFECT_HOME's database.
    watch = IdleWatch(create_app(ephemeral=True, final=True))
    server = uvicorn.Server(uvicorn.Config(watch, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))

    async def stop_when_idle() -> None:
        while not server.started and not server.should_exit:  # the clock starts once it can be asked
            await asyncio.sleep(0.1)
        watch.quiet_since = time.monotonic()
        while not server.should_exit:
            await asyncio.sleep(min(5.0, max(idle_seconds / 4, 0.2)))
            if watch.quiet_for() >= idle_seconds:
                print(f"idle for {idle_seconds:.0f} s: stopping", flush=True)
                server.should_exit = True

    watchdog = asyncio.create_task(stop_when_idle())
    try:
        await server.serve()
    finally:
        watchdog.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Prefect API server that stops itself when idle.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    import asyncio

    from core.telemetry import disable_telemetry

    disable_telemetry()
    os.environ["PREFECT_UI_ENABLED"] = "false"
    home = Path(os.environ["PREFECT_HOME"])
    try:
        asyncio.run(_serve(port=args.port, idle_seconds=args.idle_seconds))
    finally:
        # The note names this process only; a newer server's note is left alone.
        with contextlib.suppress(OSError, ValueError, TypeError):
            if json.loads(_note(home).read_text())["pid"] == os.getpid():
                _note(home).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
