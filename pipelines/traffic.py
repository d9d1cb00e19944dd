"""Live traffic against a running service: records to /predict, labels back to /feedback, over real HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Started:
    pid: int
    ready_after_s: float  # from process start to the probe's first 200: the cold start


@contextlib.contextmanager
def running_process(
    cmd: list[str], *, env: dict[str, str], probe: str, log_path: Path, timeout: float = 120, cwd: Path | None = None
) -> Iterator[Started]:
    """Run ``cmd`` as its own process group until the block ends; enter once ``probe`` answers 200.

    Fails with the log's tail when the process exits or is not ready in time. On exit the whole
    group is stopped (servers that fork workers leave none behind): SIGTERM, then SIGKILL.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with code {proc.returncode}: {_tail(log_path)}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(probe, timeout=2).status_code == 200:
                        break
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"{probe} did not answer within {timeout:.0f} s: {_tail(log_path)}")
                time.sleep(0.02)
            yield Started(pid=proc.pid, ready_after_s=time.perf_counter() - started)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextlib.contextmanager
def running_tracking_server(root: Path, *, env: dict[str, str], timeout: float = 180) -> Iterator[str]:
    """An MLflow tracking server as the compose stack runs it: a database, artifacts proxied by the
    server, no job runner. Everything lives under ``root``; yields the server's URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "mlartifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running_process(cmd, env=env, probe=f"{url}/health", log_path=root / "tracking.log", timeout=timeout):
        yield url


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def running_service(
    *, use_case: str, state_dir: Path, log_path: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start the service as its own process and wait until /ready answers 200; yields its URL."""
    port = free_port()
    env = {**os.environ, "MLOPS_STATE_DIR": str(state_dir), "MLOPS_USE_CASE": use_case, **(env or {})}
    url = f"http://127.0.0.1:{port}"
    with running_process(service_command(port), env=env, probe=f"{url}/ready", log_path=log_path, timeout=timeout):
        yield url


def service_command(port: int) -> list[str]:
    """The serving process on a loopback port, as ``mlops serve`` starts it."""
    return [
        sys.executable, "-m", "uvicorn", "services.serving.app:app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


@dataclass
class ServedMonth:
    ids: list[str]
    predictions: np.ndarray
    versions: list[str]
    labels: list[str | None] = field(default_factory=list)  # a classifier's label per record, as users got it
    thresholds: list[float | None] = field(default_factory=list)  # the threshold that labelled each record


def serve_month(
    client: httpx.Client,
    *,
    month: str,
    features: list[dict[str, Any]],
    labels: list[Any],
    per_request: int = 24,
    label_every: int = 24,
    pace_per_s: float | None = None,
    pace_while: threading.Event | None = None,
) -> ServedMonth:
    """Send the month's records (``per_request`` per call) and post the labels back a day's worth at a time.

    With ``pace_per_s``, at most that many calls a second while ``pace_while`` is set (always, without
    it): live traffic arrives at a rate, and a rollout judges the candidate on traffic as it arrives,
    so a month sent as fast as the service answers could be over before the rollout's first step is.
    """
    paced_from: tuple[float, int] | None = None  # (when, calls so far) as pacing (re)started
    ids: list[str] = []
    values: list[float] = []
    given: list[str | None] = []
    thresholds: list[float | None] = []
    versions: set[str] = set()
    labelled = 0

    def post_labels(upto: int) -> None:
        fb = client.post(
            "/feedback",
            json={
                "labels": [
                    {"id": i, "label": y} for i, y in zip(ids[labelled:upto], labels[labelled:upto], strict=True)
                ]
            },
        )
        fb.raise_for_status()

    for n, start in enumerate(range(0, len(features), per_request)):
        if pace_per_s and (pace_while is None or pace_while.is_set()):
            paced_from = paced_from or (time.monotonic(), n)
            time.sleep(max(0.0, paced_from[0] + (n - paced_from[1]) / pace_per_s - time.monotonic()))
        else:
            paced_from = None
        chunk = features[start : start + per_request]
        response = client.post(
            "/predict", json=chunk if len(chunk) > 1 else chunk[0], headers={"X-Request-ID": f"{month}-{n:04d}"}
        )
        response.raise_for_status()
        body = response.json()
        versions.add(response.headers["X-Model-Version"])
        ids += [p["id"] for p in body["predictions"]]
        values += [p["value"] for p in body["predictions"]]
        given += [p.get("label") for p in body["predictions"]]
        thresholds += [body.get("threshold")] * len(body["predictions"])
        if len(ids) - labelled >= label_every:
            post_labels(len(ids))
            labelled = len(ids)
    if labelled < len(ids):
        post_labels(len(ids))
    return ServedMonth(ids, np.asarray(values), sorted(versions, key=int), given, thresholds)
