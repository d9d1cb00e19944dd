"""Zero downtime, proved: two replicas under load from another process while versions change hands.

A canary (every step, then promotion), a blue-green preview and switch, and an
aborted canary each happen under continuous HTTP load. Not one request may
fail, and no request may be answered by a version outside the set intended at
that moment (allowing each replica up to 2 s to converge).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.traffic import running_service
from tests.conftest import ROOT

TOKEN = "zd-token"
ADMIN = {"X-Admin-Token": TOKEN, "X-Actor": "zero-downtime-test"}
CONVERGE = 2.0
CHECKS = [{"metric": "error_rate", "threshold": 0.05, "min_samples": 5, "window_seconds": 30}]


def intended_during(timeline: list[tuple[float, set[str]]], start: float, end: float) -> set[str]:
    """Every version intended at some moment of [start, end]; each timeline entry holds until the next."""
    bounds = [*(t for t, _ in timeline[1:]), float("inf")]
    return set().union(*(v for (t, v), until in zip(timeline, bounds, strict=True) if t <= end and until >= start))


def _finished_at(url: str, rollout_id: str) -> float:
    return httpx.get(f"{url}/admin/rollouts/{rollout_id}", headers=ADMIN, timeout=5).json()["finished_at"]


def _start(url: str, **body) -> dict:
    response = httpx.post(f"{url}/admin/rollouts", headers=ADMIN, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _wait_for(url: str, predicate, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{url}/admin/status", headers=ADMIN, timeout=5).json()
        if predicate(status):
            return time.time()
        assert time.monotonic() < deadline, f"timed out; last status {status}"
        time.sleep(0.1)


@pytest.mark.slow
def test_no_failed_request_and_no_unintended_version(registry_state: Path, tmp_path: Path):
    state = tmp_path / "state"
    shutil.copytree(registry_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    env = {"MLOPS_ADMIN_TOKEN": TOKEN, "MLOPS_SYNC_INTERVAL_SECONDS": "0.2", "MLOPS_CONTROL_INTERVAL_SECONDS": "0.3"}
    logs = tmp_path / "logs"
    with (
        running_service(use_case="bike_demand", state_dir=state, log_path=logs / "a.log", env=env) as a,
        running_service(use_case="bike_demand", state_dir=state, log_path=logs / "b.log", env=env) as b,
    ):
        out = tmp_path / "load.jsonl"
        load = subprocess.Popen(
            [sys.executable, "-m", "tests.support.loadgen", str(out), a, b, "--seconds", "90", "--threads", "4"],
            cwd=ROOT,
        )
        # (from, versions users may get from then on): v1 is the champion from the start
        timeline: list[tuple[float, set[str]]] = [(0.0, {"1"})]
        try:
            time.sleep(1.5)
            # 1. canary: every step, then promotion
            steps = [
                {"weight": 0.2, "bake_seconds": 1.5},
                {"weight": 0.6, "bake_seconds": 1.5},
                {"weight": 1.0, "bake_seconds": 0},
            ]
            canary = _start(
                a, strategy="canary", candidate_version="2", analysis_interval_seconds=0.5, checks=CHECKS, steps=steps
            )
            timeline.append((canary["started_at"], {"1", "2"}))
            _wait_for(b, lambda s: s["stable_version"] == "2" and s["rollout"] is None)
            timeline.append((_finished_at(a, canary["id"]), {"2"}))  # the switch as recorded, not as polled
            time.sleep(1.5)
            # 2. blue-green back to v1: users stay on v2 through the preview, then switch at once
            blue_green = _start(
                b,
                strategy="blue-green",
                candidate_version="1",
                analysis_interval_seconds=0.5,
                checks=CHECKS,
                duration_seconds=2,
            )
            _wait_for(a, lambda s: s["stable_version"] == "1" and s["rollout"] is None)
            timeline.append((_finished_at(a, blue_green["id"]), {"1"}))
            time.sleep(1.5)
            # 3. a canary that is aborted half-way
            aborting = _start(
                a,
                strategy="canary",
                candidate_version="2",
                checks=CHECKS,
                steps=[{"weight": 0.5, "bake_seconds": 60}, {"weight": 1.0, "bake_seconds": 0}],
            )
            timeline.append((aborting["started_at"], {"1", "2"}))
            time.sleep(2)
            aborted = httpx.post(f"{b}/admin/rollouts/{aborting['id']}/abort", headers=ADMIN)
            assert aborted.status_code == 200
            timeline.append((aborted.json()["finished_at"], {"1"}))
            time.sleep(2.5)
        finally:
            out.with_suffix(".stop").touch()
            load.wait(timeout=60)

    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(rows) > 500, f"only {len(rows)} requests: the load did not run"
    failed = [r for r in rows if r["status"] != 200]
    assert failed == [], f"{len(failed)} failed requests, first: {failed[:3]}"
    assert {r["version"] for r in rows} == {"1", "2"}
    for row in rows:
        allowed = intended_during(timeline, row["start"] - CONVERGE, row["end"])
        assert row["version"] in allowed, f"v{row['version']} answered at {row['start']:.2f}; intended {allowed}"
    # during the blue-green preview users were never sent to the candidate (v1) before the switch
    promoted_at, switched_at = timeline[2][0], timeline[3][0]
    preview = [r for r in rows if promoted_at + CONVERGE <= r["start"] and r["end"] < switched_at - 0.1]
    assert preview and {r["version"] for r in preview} == {"2"}
