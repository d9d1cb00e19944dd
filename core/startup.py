"""Start-up checks: wait for what a process depends on, with backoff, then fail with a message that says which.

A process in a stack starts before its neighbours are ready (a database still
running its migrations, a tracking server still importing). Retrying with
backoff rides that out; giving up after a deadline with the dependency's name
and address turns a hung container into a clear error.

Also the healthcheck command of the stack: ``python -m core.startup URL``
exits 0 when the URL answers 2xx, so images need no curl or wget.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class DependencyUnavailable(RuntimeError):
    """A dependency did not answer before the deadline."""


@dataclass(frozen=True)
class Dependency:
    name: str  # what users call it: "MLflow tracking server", "prediction-log database"
    address: str  # where it was looked for, secrets removed
    check: Callable[[], None]  # raises when the dependency is not usable yet


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def http_ok(url: str, *, timeout: float = 3.0) -> None:
    """Raise unless ``url`` answers with a 2xx status."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)


def http_dependency(name: str, url: str) -> Dependency:
    return Dependency(name=name, address=redact(url), check=lambda: http_ok(url))


def database_dependency(name: str, url: str) -> Dependency:
    """A SQLAlchemy URL; SQLite files need no waiting, so they are checked once like the rest."""

    def check() -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, pool_pre_ping=False)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    return Dependency(name=name, address=redact(url), check=check)


def mlflow_dependency(tracking_uri: str) -> Dependency | None:
    """The tracking server, when the URI names one (a SQLite or file store needs no server)."""
    if tracking_uri.startswith(("http://", "https://")):
        return http_dependency("MLflow tracking server", tracking_uri.rstrip("/") + "/health")
    return None


def wait_for(
    dependencies: list[Dependency],
    *,
    timeout_s: float,
    initial_delay_s: float = 0.5,
    max_delay_s: float = 5.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Check each dependency in turn, retrying with exponential backoff until ``timeout_s`` has passed."""
    deadline = clock() + timeout_s
    for dep in dependencies:
        delay, attempts = initial_delay_s, 0
        while True:
            attempts += 1
            try:
                dep.check()
                break
            except Exception as err:
                if clock() + delay > deadline:
                    raise DependencyUnavailable(
                        f"cannot reach the {dep.name} at {dep.address} after {attempts} attempts "
                        f"in {timeout_s:.0f} s: {type(err).__name__}: {err}"
                    ) from err
                if attempts == 1:
                    log(f"waiting for the {dep.name} at {dep.address} ({type(err).__name__})")
                sleep(delay)
                delay = min(delay * 2, max_delay_s)


def main(argv: list[str] | None = None) -> int:
    """Healthcheck: ``python -m core.startup URL`` exits 0 when URL answers 2xx, else 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m core.startup URL", file=sys.stderr)
        return 2
    try:
        http_ok(args[0])
    except Exception as err:  # noqa: BLE001 - a healthcheck reports, it does not raise
        print(f"unhealthy: {args[0]}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
