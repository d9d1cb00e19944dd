"""Live traffic against a running service: records to /predict, labels back to /feedback, over real HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_service(
    *, use_case: str, state_dir: Path, log_path: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start the service as its own process and wait until /ready answers 200."""
    port = free_port()
    env = {**os.environ, "MLOPS_STATE_DIR": str(state_dir), "MLOPS_USE_CASE": use_case, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "services.serving.app:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited with code {proc.returncode}; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the service was not ready after {timeout:.0f}s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class ServedMonth:
    ids: list[str]
    predictions: np.ndarray
    versions: list[str]


def serve_month(
    client: httpx.Client,
    *,
    month: str,
    features: list[dict[str, Any]],
    labels: list[Any],
    per_request: int = 24,
    label_every: int = 24,
) -> ServedMonth:
    """Send the month's records (``per_request`` per call) and post the labels back a day's worth at a time."""
    ids: list[str] = []
    values: list[float] = []
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
        chunk = features[start : start + per_request]
        response = client.post(
            "/predict", json=chunk if len(chunk) > 1 else chunk[0], headers={"X-Request-ID": f"{month}-{n:04d}"}
        )
        response.raise_for_status()
        body = response.json()
        versions.add(response.headers["X-Model-Version"])
        ids += [p["id"] for p in body["predictions"]]
        values += [p["value"] for p in body["predictions"]]
        if len(ids) - labelled >= label_every:
            post_labels(len(ids))
            labelled = len(ids)
    if labelled < len(ids):
        post_labels(len(ids))
    return ServedMonth(ids, np.asarray(values), sorted(versions, key=int))
