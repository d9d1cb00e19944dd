"""The deploy flow against a running service process: a challenger through a canary, outcome recorded."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from core.layout import StateLayout
from pipelines.deploy import DeployError, deploy_flow
from pipelines.runtime import get_runtime
from pipelines.traffic import running_service
from tests.support.records import BIKE_RECORD as RECORD

TOKEN = "deploy-token"
FAST = {
    "steps": [{"weight": 0.5, "bake_seconds": 1}, {"weight": 1.0, "bake_seconds": 0}],
    "analysis_interval_seconds": 0.5,
    "checks": [{"metric": "error_rate", "threshold": 0.05, "min_samples": 5}],
}


@pytest.mark.slow
def test_challenger_is_rolled_out_and_the_outcome_recorded(registry_state: Path, tmp_path: Path):
    state = tmp_path / "state"
    shutil.copytree(registry_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    uri = StateLayout(state).tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("bike-demand", "challenger", "2")
    with running_service(
        use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log", env={"MLOPS_ADMIN_TOKEN": TOKEN}
    ) as url:
        rt = get_runtime(str(state))
        rt.settings.serving_url, rt.settings.admin_token = url, TOKEN
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url) as c:
                while not stop.is_set():
                    c.post("/predict", json=RECORD)
                    time.sleep(0.01)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            outcome = deploy_flow(use_case="bike_demand", overrides=FAST, timeout_s=60, state_dir=str(state))
        finally:
            stop.set()
            thread.join()
        status = httpx.get(f"{url}/admin/status", headers={"X-Admin-Token": TOKEN}).json()

    assert outcome["outcome"] == "promoted" and outcome["candidate_version"] == "2"
    assert outcome["final_weight"] == 1.0 and status["stable_version"] == "2"
    tags = client.get_model_version("bike-demand", "2").tags
    assert tags["rollout_outcome"] == "promoted" and tags["rollout_id"] == outcome["rollout_id"]
    aliases = {k: str(v) for k, v in client.get_registered_model("bike-demand").aliases.items()}
    assert aliases == {"champion": "2", "previous": "1"}  # the challenger alias is consumed


def test_no_service_configured_is_a_clear_error(registry_state: Path, tmp_path: Path):
    state = tmp_path / "state"
    shutil.copytree(registry_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    with pytest.raises(DeployError, match="no serving service configured"):
        deploy_flow(use_case="bike_demand", candidate_version="2", state_dir=str(state))
