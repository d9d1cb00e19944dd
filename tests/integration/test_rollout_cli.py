"""`mlops rollout` against a running service process, as an operator would use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.traffic import running_service
from tests.conftest import ROOT

MLOPS = str(Path(sys.executable).with_name("mlops"))
TOKEN = "cli-token"


def rollout(url: str, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_SERVING_URL": url, "MLOPS_ADMIN_TOKEN": token}
    return subprocess.run([MLOPS, "rollout", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_operator_session(registry_state: Path, tmp_path: Path):
    state = tmp_path / "state"
    shutil.copytree(registry_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    with running_service(
        use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log", env={"MLOPS_ADMIN_TOKEN": TOKEN}
    ) as url:
        started = rollout(url, "start", "2", "--strategy", "canary", "--steps", "0.2:600,1:0")
        assert started.returncode == 0, started.stderr
        rid = json.loads(started.stdout)["id"]
        assert json.loads(rollout(url, "status", "--json").stdout)["rollout"]["weight"] == 0.2
        assert "rollout: " in rollout(url, "status").stdout
        assert json.loads(rollout(url, "pause").stdout)["phase"] == "paused"
        assert json.loads(rollout(url, "resume").stdout)["phase"] == "progressing"
        again = rollout(url, "start", "2")
        assert again.returncode == 1 and "one rollout at a time" in again.stderr
        assert json.loads(rollout(url, "abort").stdout)["phase"] == "aborted"
        why = rollout(url, "why", rid).stdout
        assert "was ABORTED" in why and "paused" in why and "resumed" in why
        assert rid in rollout(url, "history").stdout
        (latest, *_) = json.loads(rollout(url, "history", "--json").stdout)
        assert latest["id"] == rid and latest["phase"] == "aborted"
        account = json.loads(rollout(url, "why", rid, "--json").stdout)
        assert "was ABORTED" in account["why"] and [e["kind"] for e in account["events"]][-1] == "aborted"
        # nothing was promoted: there is nothing to roll back, and the CLI says why
        back = rollout(url, "rollback")
        assert back.returncode == 1 and "ended aborted" in back.stderr
        wrong = rollout(url, "status", token="nope")
        assert wrong.returncode == 1 and "403" in wrong.stderr
    down = rollout(url, "status")
    assert down.returncode == 3 and "cannot be reached" in down.stderr


def test_simulate_prints_the_promised_json():
    out = subprocess.run(
        [MLOPS, "rollout", "simulate", "errors", "--strategy", "canary", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(out.stdout)
    assert set(result) == {"outcome", "requests_to_candidate", "time_to_detect_s", "time_to_rollback_s"}
    assert result["outcome"] == "rolled_back" and 0 < result["requests_to_candidate"] < 100
