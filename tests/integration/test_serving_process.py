"""The serving role as its own process: real HTTP, and none of the pipeline's heavy dependencies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from pipelines.traffic import free_port, running_process, running_service
from tests.conftest import ROOT
from tests.support.scripts import last_json_line

HEAVY = ("prefect", "great_expectations", "evidently")


RECORD = {
    "hr": 17,
    "weekday": 3,
    "workingday": 1,
    "holiday": 0,
    "weathersit": "clear",
    "temp": 0.4,
    "atemp": 0.4,
    "hum": 0.5,
    "windspeed": 0.1,
}


def test_serve_over_real_http(trained_state: Path, tmp_path: Path):
    with running_service(use_case="bike_demand", state_dir=trained_state, log_path=tmp_path / "serve.log") as url:
        r = httpx.post(f"{url}/predict", json=RECORD, headers={"X-Request-ID": "proc-1"})
        assert r.status_code == 200 and r.headers["x-model-version"] == "1"
        fb = httpx.post(f"{url}/feedback", json={"labels": [{"id": "proc-1", "label": 250}]})
        assert fb.status_code == 200
        assert httpx.get(f"{url}/docs").status_code == 200


def test_mlops_serve_on_the_embedded_defaults_loads_and_answers(trained_state: Path, tmp_path: Path):
    """The documented entry point with a database registry: the MLflow client fetches the files, and
    the model goes through the service's own loader (skops imported the fast way, trust by prefix)."""
    port = free_port()
    env = {**os.environ, "MLOPS_STATE_DIR": str(trained_state), "MLOPS_USE_CASE": "bike_demand"}
    mlops = str(Path(sys.executable).with_name("mlops"))
    url = f"http://127.0.0.1:{port}"
    with running_process(
        [mlops, "serve", "--port", str(port)], env=env, probe=f"{url}/ready", log_path=tmp_path / "serve.log", cwd=ROOT
    ):
        ready = httpx.get(f"{url}/ready").json()
        r = httpx.post(f"{url}/predict", json=[RECORD, {**RECORD, "hr": 3}])
    assert ready["ready"] is True and ready["model_version"] == "1"
    assert r.status_code == 200, r.text
    values = [p["value"] for p in r.json()["predictions"]]
    assert len(values) == 2 and values[0] != values[1]


def test_serving_process_never_imports_pipeline_dependencies(trained_state: Path):
    """Start the app with its lifespan (model loaded from the registry), then list what got imported."""
    script = (
        "import sys, json\n"
        "from fastapi.testclient import TestClient\n"
        "from services.serving.app import app_from_env\n"
        "with TestClient(app_from_env()) as c:\n"
        "    assert c.get('/ready').status_code == 200\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    env = {**os.environ, "MLOPS_STATE_DIR": str(trained_state), "MLOPS_USE_CASE": "bike_demand"}
    assert last_json_line(script, env=env) == []


def test_by_default_a_tree_model_serves_large_batches_without_scikit_learn_in_the_process(trained_state: Path):
    """The compiled model alone serves every batch: scikit-learn (with SciPy and pandas) would cost 170 MB a replica.

    (Here the registry is a database, read through the MLflow client, which imports pandas and SciPy itself;
    against a tracking server, as in the stack, neither is imported: the serving benchmark's memory shows it.)"""
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from services.serving.app import app_from_env\n"
        "app = app_from_env()\n"
        f"record = {RECORD!r}\n"
        "with TestClient(app) as c:\n"
        "    batch = [{**record, 'hr': i % 24} for i in range(1000)]\n"
        "    r = c.post('/predict', json=batch)\n"
        "    assert r.status_code == 200 and len(r.json()['predictions']) == 1000, r.text\n"
        "    assert app.state.service.control.snapshot.stable.compiled.estimator.n_trees > 0  # a tree model\n"
        "    c.portal.call(app.state.service.control.cache.completed)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops'})))\n"
    )
    env = {**os.environ, "MLOPS_STATE_DIR": str(trained_state), "MLOPS_USE_CASE": "bike_demand"}
    env.pop("MLOPS_NATIVE_TREE_WALK", None)
    assert last_json_line(script, env=env) == []


def test_native_thread_pools_loaded_after_start_keep_the_configured_size(trained_state: Path):
    """scikit-learn (OpenMP) loads only when a tree model's pipeline joins (MLOPS_NATIVE_TREE_WALK), after the
    limits were set."""
    script = (
        "import json, time\n"
        "from fastapi.testclient import TestClient\n"
        "from threadpoolctl import threadpool_info\n"
        "from services.serving.app import app_from_env\n"
        "app = app_from_env()\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/ready').status_code == 200\n"
        "    control = app.state.service.control\n"
        "    deadline = time.monotonic() + 60\n"
        "    while control.snapshot.stable.pipeline is None and time.monotonic() < deadline:\n"
        "        time.sleep(0.2)\n"
        "    joined = control.snapshot.stable.pipeline is not None\n"
        "pools = sorted({(i['internal_api'], i['num_threads']) for i in threadpool_info()})\n"
        "print(json.dumps({'joined': joined, 'pools': pools}))\n"
    )
    env = {**os.environ, "MLOPS_STATE_DIR": str(trained_state), "MLOPS_USE_CASE": "bike_demand"}
    env |= {"MLOPS_NATIVE_TREE_WALK": "true"}
    env.pop("OMP_NUM_THREADS", None)
    answer = last_json_line(script, env=env)
    assert answer["joined"] is True
    assert ["openmp", 1] in answer["pools"] and all(threads == 1 for _, threads in answer["pools"])
