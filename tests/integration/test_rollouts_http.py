"""Rollouts through the admin API of a real service app, on a real MLflow registry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from core.layout import StateLayout
from services.serving.app import create_app
from services.serving.rollouts.clock import ManualClock
from services.serving.settings import ServingSettings
from tests.support.records import BIKE_RECORD as RECORD

TOKEN = "rollout-token"
ADMIN = {"X-Admin-Token": TOKEN, "X-Actor": "tester"}
QUICK = {
    "analysis_interval_seconds": 1,
    "failure_limit": 1,
    "checks": [{"metric": "error_rate", "threshold": 0.05, "min_samples": 5, "window_seconds": 30}],
}


@pytest.fixture
def fresh_registry(registry_state: Path, tmp_path: Path) -> Path:
    """Each test gets its own copy: promotions move aliases."""
    import shutil

    copy = tmp_path / "state"
    shutil.copytree(registry_state, copy, ignore=shutil.ignore_patterns("predictions.db*"))
    return copy


def _client(root: Path, db: Path, clock: ManualClock | None = None) -> TestClient:
    settings = ServingSettings(
        state_dir=root,
        admin_token=TOKEN,
        prediction_log_url=f"sqlite:///{db}",
        sync_interval_seconds=0.05,
        control_interval_seconds=0.05,
    )
    return TestClient(create_app(settings, clock=clock))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=time.time())


@pytest.fixture
def api(fresh_registry: Path, tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with _client(fresh_registry, tmp_path / "serving.db", clock) as c:
        yield c


def _wait(predicate, timeout: float = 15.0) -> None:  # generous: a loaded CI machine is slow, a met condition is not
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _logged(api: TestClient) -> None:
    """Every answered request in the prediction log now: a rollout's analysis reads them there, and the
    log's writer may still hold the last ones (a label flushes it)."""
    rid = f"flush-{time.time_ns()}"
    assert api.post("/predict", json=RECORD, headers={"X-Request-ID": rid}).status_code == 200
    assert api.post("/feedback", json={"labels": [{"id": rid, "label": 100}]}).json()["accepted"] == 1


def _predict(api: TestClient, n: int, **headers) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        r = api.post("/predict", json=RECORD, headers={"X-Request-ID": f"r-{time.time_ns()}-{i}", **headers})
        assert r.status_code == 200
        out.append((r.headers["X-Model-Version"], r.headers["X-Variant"]))
    return out


def _aliases(root: Path) -> dict[str, str]:
    uri = StateLayout(root).tracking_uri
    return {
        k: str(v)
        for k, v in MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model("bike-demand").aliases.items()
    }


def test_canary_splits_traffic_then_promotes_and_moves_the_aliases(api, clock, fresh_registry):
    r = api.post(
        "/admin/rollouts",
        headers=ADMIN,
        json={
            "strategy": "canary",
            "candidate_version": "2",
            **QUICK,
            "steps": [{"weight": 0.5, "bake_seconds": 5}, {"weight": 1.0, "bake_seconds": 0}],
        },
    )
    assert r.status_code == 201 and r.json()["weight"] == 0.5
    seen = set(_predict(api, 60))
    assert seen == {("1", "stable"), ("2", "candidate")}
    _logged(api)
    clock.advance(6)
    _wait(lambda: api.get("/admin/status", headers=ADMIN).json()["stable_version"] == "2")
    assert set(_predict(api, 10)) == {("2", "stable")}
    assert _aliases(fresh_registry) == {"champion": "2", "previous": "1"}
    rollout = api.get("/admin/rollouts", headers=ADMIN).json()[0]
    assert rollout["phase"] == "promoted"
    why = api.get(f"/admin/rollouts/{rollout['id']}/why", headers=ADMIN).text
    assert "was PROMOTED" in why and "every canary step passed analysis" in why
    # rolling back after promotion is one call
    back = api.post("/admin/rollback", headers=ADMIN)
    assert back.status_code == 200 and back.json() == {"stable_version": "1", "previous_version": "2"}
    assert set(_predict(api, 5)) == {("1", "stable")}
    assert _aliases(fresh_registry)["champion"] == "1"
    # ... and it is not toggled back by a second one
    again = api.post("/admin/rollback", headers=ADMIN)
    assert again.status_code == 409 and "already rolled back" in again.json()["detail"]
    assert set(_predict(api, 3)) == {("1", "stable")}


def test_abort_sends_all_traffic_back_at_once(api):
    rid = api.post("/admin/rollouts", headers=ADMIN, json={"strategy": "ab", "candidate_version": "2"}).json()["id"]
    assert {v for v, _ in _predict(api, 40)} == {"1", "2"}
    r = api.post(f"/admin/rollouts/{rid}/abort", headers=ADMIN)
    assert r.status_code == 200 and r.json()["phase"] == "aborted"
    assert set(_predict(api, 30)) == {("1", "stable")}
    events = api.get(f"/admin/rollouts/{rid}/events", headers=ADMIN).json()
    assert [e["kind"] for e in events] == ["started", "aborted"] and events[1]["actor"] == "tester"
    # an aborted rollout promoted nothing: there is nothing to roll back, and nothing changes
    back = api.post("/admin/rollback", headers=ADMIN)
    assert back.status_code == 409 and "ended aborted" in back.json()["detail"], back.text
    assert set(_predict(api, 3)) == {("1", "stable")}


def test_pinning_and_sticky_ab_assignment(api):
    api.post("/admin/rollouts", headers=ADMIN, json={"strategy": "ab", "candidate_version": "2"})
    assert set(_predict(api, 5, **{"X-Pin-Variant": "candidate"})) == {("2", "candidate")}
    for user in ("u1", "u2", "u3", "u4"):
        assert len(set(_predict(api, 8, **{"X-Routing-Key": user}))) == 1


def test_blue_green_preview_is_reachable_before_any_user_traffic(api):
    api.post(
        "/admin/rollouts",
        headers=ADMIN,
        json={"strategy": "blue-green", "candidate_version": "2", "duration_seconds": 600},
    )
    assert set(_predict(api, 20)) == {("1", "stable")}  # users: stable only
    assert set(_predict(api, 3, **{"X-Pin-Variant": "candidate"})) == {("2", "candidate")}  # preview route


def test_blue_green_keeps_the_old_slot_for_the_rollback_window(api, clock):
    rid = api.post(
        "/admin/rollouts",
        headers=ADMIN,
        json={
            "strategy": "blue-green",
            "candidate_version": "2",
            "duration_seconds": 2,
            "rollback_window_seconds": 30,
            **QUICK,
        },
    ).json()["id"]
    _predict(api, 30)  # mirrored to the candidate during the preview
    # In the log before the clock moves: the analysis at the end of the preview reads them from there.
    _wait(lambda: api.get(f"/admin/rollouts/{rid}/shadow", headers=ADMIN).json().get("pairs", 0) >= 30)
    clock.advance(3)
    _wait(lambda: api.get("/admin/status", headers=ADMIN).json()["stable_version"] == "2")
    assert api.get("/admin/status", headers=ADMIN).json()["loaded_versions"] == ["1", "2"]  # old slot warm
    clock.advance(31)
    _wait(lambda: api.get("/admin/status", headers=ADMIN).json()["loaded_versions"] == ["2"])  # then released


def test_shadow_mirrors_and_compares_on_the_same_requests(api):
    rid = api.post(
        "/admin/rollouts", headers=ADMIN, json={"strategy": "shadow", "candidate_version": "2", "duration_seconds": 600}
    ).json()["id"]
    assert set(_predict(api, 30)) == {("1", "stable")}
    _wait(lambda: api.get(f"/admin/rollouts/{rid}/shadow", headers=ADMIN).json().get("pairs", 0) >= 30)
    comparison = api.get(f"/admin/rollouts/{rid}/shadow", headers=ADMIN).json()
    assert (
        comparison["pairs"] == 30 and comparison["agreement_rate"] == 1.0
    )  # v2 retrained on the same data: the same answers
    assert comparison["diff_p99"] == pytest.approx(0, abs=1e-6)


def _failing_canary(api: TestClient, clock: ManualClock, *, failure_limit: int) -> str:
    """A canary whose analysis must fail: no real model answers in a microsecond.

    At 50 % the candidate is sure to get its 3 samples out of 40 requests (at 10 % it would miss
    them about one time in five, and the check would rightly be inconclusive).
    """
    rid = api.post(
        "/admin/rollouts",
        headers=ADMIN,
        json={
            "strategy": "canary",
            "candidate_version": "2",
            "analysis_interval_seconds": 1,
            "failure_limit": failure_limit,
            "steps": [{"weight": 0.5, "bake_seconds": 60}, {"weight": 1.0, "bake_seconds": 0}],
            "checks": [{"metric": "latency_p50", "threshold": 1e-6, "min_samples": 3}],
        },
    ).json()["id"]
    _predict(api, 40)
    _logged(api)
    clock.advance(2)
    return rid


def test_promote_after_failed_analysis_is_refused_unless_forced(api, clock):
    rid = _failing_canary(api, clock, failure_limit=3)
    _wait(lambda: api.get(f"/admin/rollouts/{rid}", headers=ADMIN).json()["failures"] >= 1)
    refused = api.post(f"/admin/rollouts/{rid}/promote", headers=ADMIN)
    assert refused.status_code == 409 and "promotion refused" in refused.json()["detail"]
    forced = api.post(f"/admin/rollouts/{rid}/promote", headers=ADMIN, params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["phase"] == "promoted"
    kinds = {e["kind"]: e for e in api.get(f"/admin/rollouts/{rid}/events", headers=ADMIN).json()}
    assert kinds["promoted"]["data"]["forced"] is True


def test_failures_roll_back_automatically(api, clock):
    rid = _failing_canary(api, clock, failure_limit=1)
    _wait(lambda: api.get(f"/admin/rollouts/{rid}", headers=ADMIN).json()["phase"] == "rolled_back")
    assert set(_predict(api, 10)) == {("1", "stable")}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"strategy": "canary", "candidate_version": "99"}, 409, "cannot be served"),
        ({"strategy": "canary", "candidate_version": "3"}, 409, "failed to load"),
        ({"strategy": "canary", "candidate_version": "1"}, 409, "already the stable version"),
        ({"strategy": "rainbow", "candidate_version": "2"}, 422, "strategy"),
        (
            {"strategy": "canary", "candidate_version": "2", "steps": [{"weight": 0.5, "bake_seconds": 1}]},
            422,
            "must reach weight 1.0",
        ),
    ],
)
def test_bad_rollout_requests_change_nothing(api, body, status, message):
    r = api.post("/admin/rollouts", headers=ADMIN, json=body)
    assert r.status_code == status and message in str(r.json()["detail"])
    assert api.get("/admin/rollouts/current", headers=ADMIN).status_code == 404
    assert set(_predict(api, 3)) == {("1", "stable")}


def test_one_rollout_at_a_time(api):
    assert (
        api.post("/admin/rollouts", headers=ADMIN, json={"strategy": "ab", "candidate_version": "2"}).status_code == 201
    )
    second = api.post("/admin/rollouts", headers=ADMIN, json={"strategy": "canary", "candidate_version": "2"})
    assert second.status_code == 409 and "one rollout at a time" in second.json()["detail"]


def test_admin_needs_the_token(api):
    assert api.get("/admin/status").status_code == 401
    assert api.get("/admin/status", headers={"X-Admin-Token": "nope"}).status_code == 403
    assert api.post("/admin/rollouts", json={"strategy": "ab", "candidate_version": "2"}).status_code == 401


def test_state_survives_a_restart_and_replicas_converge(fresh_registry, tmp_path):
    db = tmp_path / "shared.db"
    with _client(fresh_registry, db) as a, _client(fresh_registry, db) as b:
        rid = a.post("/admin/rollouts", headers=ADMIN, json={"strategy": "ab", "candidate_version": "2"}).json()["id"]
        started = time.monotonic()  # from the rollout's start on a: the POST itself loads the candidate there
        _wait(lambda: (b.get("/admin/status", headers=ADMIN).json()["rollout"] or {}).get("id") == rid, timeout=2)
        assert time.monotonic() - started < 2
        a.post(f"/admin/rollouts/{rid}/pause", headers=ADMIN)
        _wait(lambda: b.get("/admin/status", headers=ADMIN).json()["rollout"]["phase"] == "paused", timeout=2)
    with _client(fresh_registry, db) as restarted:
        current = restarted.get("/admin/rollouts/current", headers=ADMIN).json()
        assert current["id"] == rid and current["phase"] == "paused"


def test_prometheus_metrics_are_labelled_by_version(api):
    api.post("/admin/rollouts", headers=ADMIN, json={"strategy": "ab", "candidate_version": "2"})
    _predict(api, 40)
    text = api.get("/metrics").text
    assert 'mlops_predict_requests_total{model_version="1",variant="stable"}' in text
    assert 'mlops_predict_requests_total{model_version="2",variant="candidate"}' in text
    assert "mlops_rollout_weight 0.5" in text and 'mlops_rollout_phase{phase="progressing"} 1.0' in text
    assert 'mlops_predict_latency_seconds_bucket{le="0.01",model_version="2",variant="candidate"}' in text


def test_a_restarted_service_adopts_a_champion_promoted_while_it_was_down(fresh_registry, tmp_path):
    db = tmp_path / "serving.db"
    with _client(fresh_registry, db) as before:
        assert before.get("/ready").json()["model_version"] == "1"
    uri = StateLayout(fresh_registry).tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias("bike-demand", "champion", "2")
    with _client(fresh_registry, db) as after:
        assert after.get("/ready").json()["model_version"] == "2"
        assert set(_predict(after, 3)) == {("2", "stable")}
