"""Peer model servers for the serving benchmark: Seldon MLServer and BentoML, serving the same model.

Each runs from a virtual environment of its own under ``.venv-peers/<name>``, installed once from
the pinned list beside this file (``mlserver.txt``, ``bentoml.txt``: every package, as resolved)
and installed again only when that list changes. Both serve the benchmark's registered v1,
dumped with joblib (the benchmark trained it: a trusted file), through the pipeline's own
``predict``; the pipeline's custom transformer comes from this repository (``PYTHONPATH``).

- MLServer 1.7.1 with its scikit-learn runtime and adaptive batching (at most 32 requests,
  2 ms), ``parallel_workers: 0``: its inference-pool workers die at start with today's uvloop
  ("There is no current event loop"), and two cores call for none anyway. Requests speak the
  Open Inference Protocol with the ``pd`` content type, one tensor per column.
- BentoML 1.4.40, one worker, a batchable API (at most 32 requests; its dispatcher sizes the
  wait): ``benchmarks/peers/bento_service.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = ("mlserver", "bentoml")
MODEL_NAME = "bike-demand"


class PeerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Peer:
    """How to start one peer and talk to it."""

    name: str
    command: list[str]
    env: dict[str, str]
    probe: str
    url: str

    def body(self, record: dict[str, Any]) -> str:
        """One record as this peer's request."""
        if self.name == "bentoml":
            return json.dumps({"records": [record]})
        return json.dumps({"parameters": {"content_type": "pd"}, "inputs": [_tensor(k, v) for k, v in record.items()]})

    def values(self, answer: dict[str, Any]) -> list[float]:
        """The predicted values in this peer's answer."""
        if self.name == "bentoml":
            return [float(v) for v in answer]  # type: ignore[union-attr]
        return [float(v) for v in answer["outputs"][0]["data"]]


def _tensor(name: str, value: Any) -> dict[str, Any]:
    datatype = "BYTES" if isinstance(value, str) else "INT64" if isinstance(value, int) else "FP64"
    return {"name": name, "shape": [1], "datatype": datatype, "data": [value]}


def environment(name: str) -> Path:
    """The peer's virtual environment, installed from its pinned list when missing or out of date."""
    pins = HERE / f"{name}.txt"
    venv = ROOT / ".venv-peers" / name
    stamp = venv / ".pins-sha256"
    digest = hashlib.sha256(pins.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return venv
    print(f"installing {name} into {venv} (once; from {pins.relative_to(ROOT)})", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(pins),
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1200, check=False)
        if done.returncode != 0:
            raise PeerUnavailable(f"could not install {name}: {(done.stderr or done.stdout)[-1500:]}")
    stamp.write_text(digest)
    return venv


def write_model(pipeline: Any, directory: Path) -> Path:
    """The pipeline as a joblib file, which both peers' loaders read."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.joblib"
    joblib.dump(pipeline, path)
    return path


def mlserver(model: Path, *, port: int, grpc_port: int, metrics_port: int, env: dict[str, str]) -> Peer:
    folder = model.parent
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "host": "127.0.0.1",
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model), "version": "1"},
                "max_batch_size": 32,
                "max_batch_time": 0.002,
            }
        )
    )
    venv = environment("mlserver")
    base = f"http://127.0.0.1:{port}"
    return Peer(
        name="mlserver",
        command=[str(venv / "bin" / "mlserver"), "start", str(folder)],
        env=_peer_env(env),
        probe=f"{base}/v2/models/{MODEL_NAME}/ready",
        url=f"{base}/v2/models/{MODEL_NAME}/infer",
    )


def bentoml(model: Path, *, port: int, env: dict[str, str]) -> Peer:
    venv = environment("bentoml")
    base = f"http://127.0.0.1:{port}"
    service = "benchmarks.peers.bento_service:BikeDemand"
    return Peer(
        name="bentoml",
        command=[str(venv / "bin" / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", str(port)],
        env=_peer_env(env) | {"MLOPS_PEER_MODEL": str(model), "BENTOML_HOME": str(model.parent / "bentoml-home")},
        probe=f"{base}/readyz",
        url=f"{base}/predict",
    )


def _peer_env(env: dict[str, str]) -> dict[str, str]:
    """The benchmark's environment without this project's virtual environment, plus the model's code."""
    out = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    out["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    out |= {"PYTHONPATH": str(ROOT), "BENTOML_DO_NOT_TRACK": "True", "OMP_NUM_THREADS": "1"}
    return out
