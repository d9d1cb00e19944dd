"""The serving app on a real registry: predictions, validation errors, feedback, readiness, reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.layout import StateLayout
from core.predlog import PredictionLog
from models.frames import feature_frame
from services.serving.app import create_app
from services.serving.schemas import PredictResponse
from services.serving.settings import ServingSettings
from tests.support.records import BIKE_RECORD as RECORD

TOKEN = "test-token"


def _settings(root: Path, **extra) -> ServingSettings:
    return ServingSettings(state_dir=root, use_case="bike_demand", admin_token=TOKEN, **extra)


@pytest.fixture
def client(trained_state: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(
        trained_state, prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}", max_records=50, max_body_bytes=20_000
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == "1"


def test_predict_one_record(client):
    r = client.post("/predict", json=RECORD, headers={"X-Request-ID": "req-1"})
    assert r.status_code == 200
    body = r.json()
    assert r.headers["X-Model-Version"] == "1" == body["model_version"] and body["model_name"] == "bike-demand"
    assert body["predictions"][0]["id"] == "req-1" and body["predictions"][0]["value"] > 0
    assert r.headers["content-type"] == "application/json"
    assert PredictResponse.model_validate(body).variant == "stable"  # the documented response shape


def test_predict_a_batch_gives_each_record_an_id(client):
    r = client.post("/predict", json=[RECORD, {**RECORD, "hr": 3}], headers={"X-Request-ID": "b"})
    ids = [p["id"] for p in r.json()["predictions"]]
    assert ids == ["b/0", "b/1"]
    rush, night = (p["value"] for p in r.json()["predictions"])
    assert rush > night


@pytest.mark.parametrize(
    ("record", "field", "value"),
    [
        ({k: v for k, v in RECORD.items() if k != "temp"}, "temp", None),
        ({**RECORD, "colour": "red"}, "colour", "red"),
        ({**RECORD, "hr": "eight"}, "hr", "eight"),
        ({**RECORD, "hr": 8.5}, "hr", 8.5),
        ({**RECORD, "temp": 1.7}, "temp", 1.7),
        ({**RECORD, "weathersit": "sunny"}, "weathersit", "sunny"),
    ],
)
def test_bad_records_get_a_422_naming_field_and_value(client, record, field, value):
    r = client.post("/predict", json=record)
    assert r.status_code == 422
    errors = r.json()["detail"]
    assert any(e["loc"][-1] == field for e in errors)
    if value is not None:
        assert any(e.get("input") == value for e in errors)


def test_nan_and_infinity_are_rejected(client):
    body = json.dumps(RECORD).replace('"temp": 0.5', '"temp": NaN')
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"type": "finite_number", "loc": ["body", "temp"], "msg": "Input should be a finite number", "input": "nan"}
    ]


def test_batch_errors_name_the_record_index(client):
    r = client.post("/predict", json=[RECORD, {**RECORD, "hum": -1}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "hum"]


def test_malformed_json_and_wrong_shapes(client):
    assert (
        client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    )
    assert client.post("/predict", json="a string").status_code == 422
    assert client.post("/predict", json=[]).status_code == 422


def test_oversized_requests_are_refused(client):
    assert client.post("/predict", json=[RECORD] * 51).status_code == 413
    huge = json.dumps([RECORD] * 300)
    r = client.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds" in r.json()["detail"]
    # chunked, with no Content-Length to refuse it by: the limit holds while the body is read
    chunked = client.post("/predict", content=iter([huge.encode()]), headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["detail"] == "request body exceeds 20000 bytes"
    labels = json.dumps({"labels": [{"id": f"x{i}", "label": 1} for i in range(2000)]}).encode()
    feedback = client.post("/feedback", content=iter([labels]), headers={"content-type": "application/json"})
    assert feedback.status_code == 413 and feedback.json()["detail"] == "request body exceeds 20000 bytes"


def test_feedback_is_stored_against_logged_predictions(client, tmp_path):
    client.post("/predict", json=[RECORD, RECORD], headers={"X-Request-ID": "fb"})
    r = client.post("/feedback", json={"labels": [{"id": "fb/0", "label": 120}, {"id": "fb/1", "label": 80.0}]})
    assert r.status_code == 200 and r.json()["accepted"] == 2
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    rows = log.window(use_case="bike_demand", since=0, until=1e12)
    assert [(r.prediction_id, r.label, r.model_version) for r in rows] == [("fb/0", 120, "1"), ("fb/1", 80.0, "1")]
    assert rows[0].features == RECORD


def test_feedback_is_answered_per_id_and_stores_what_it_can(client, tmp_path):
    client.post("/predict", json=[RECORD, RECORD, RECORD], headers={"X-Request-ID": "mix"})
    labels = [
        {"id": "mix/0", "label": 120},
        {"id": "ghost", "label": 2},
        {"id": "mix/1", "label": "abc"},
        {"id": "mix/2", "label": 7},
        {"id": "mix/2", "label": 8},  # the same id twice in one request: the last label wins
    ]
    r = client.post("/feedback", json={"labels": labels})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["unknown"], body["invalid"]) == (2, 1, 1)
    assert [(x["id"], x["status"]) for x in body["results"]] == [
        ("mix/0", "stored"),
        ("ghost", "unknown"),
        ("mix/1", "invalid"),
        ("mix/2", "stored"),
    ]
    assert "not a finite number" in body["results"][2]["problem"]
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    stored = {row.prediction_id: row.label for row in log.window(use_case="bike_demand", since=0, until=1e12)}
    assert stored == {"mix/0": 120, "mix/1": None, "mix/2": 8}


def test_feedback_is_idempotent_per_id_the_last_label_winning(client, tmp_path):
    client.post("/predict", json=RECORD, headers={"X-Request-ID": "again"})
    for label in (5, 5, 6):  # a retried request, then a correction
        assert client.post("/feedback", json={"labels": [{"id": "again", "label": label}]}).json()["accepted"] == 1
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    (row,) = log.window(use_case="bike_demand", since=0, until=1e12)
    assert row.label == 6


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("abc", "not a finite number"),
        ("12", "not a finite number"),  # a number is sent as a number
        (-3, "outside the target's range"),
        (12.5, "not a whole number"),  # bikers are counted
    ],
)
def test_a_label_that_does_not_fit_the_target_is_refused_naming_it(client, tmp_path, label, problem):
    client.post("/predict", json=[RECORD, RECORD], headers={"X-Request-ID": "lbl"})
    r = client.post("/feedback", json={"labels": [{"id": "lbl/0", "label": 120}, {"id": "lbl/1", "label": label}]})
    assert r.status_code == 200, r.text
    refused = r.json()["results"][1]
    assert refused["id"] == "lbl/1" and refused["status"] == "invalid" and problem in refused["problem"]
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    labels = {row.prediction_id: row.label for row in log.window(use_case="bike_demand", since=0, until=1e12)}
    assert labels["lbl/0"] == 120 and labels["lbl/1"] is None


def test_a_retried_request_id_is_answered_again_and_logged_once_another_use_is_refused(client, tmp_path):
    first = client.post("/predict", json=RECORD, headers={"X-Request-ID": "retry-me"})
    retry = client.post("/predict", json=RECORD, headers={"X-Request-ID": "retry-me"})
    assert first.status_code == retry.status_code == 200
    assert retry.json()["predictions"] == first.json()["predictions"]
    other = client.post("/predict", json={**RECORD, "hr": 3}, headers={"X-Request-ID": "retry-me"})
    assert other.status_code == 409 and "used for other records" in other.json()["detail"]
    client.post("/feedback", json={"labels": [{"id": "retry-me", "label": 1}]})  # flushes the log's writer
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    (row,) = log.window(use_case="bike_demand", since=0, until=1e12)
    assert row.features == RECORD
    # once written, the id is still taken
    late = client.post("/predict", json={**RECORD, "hr": 4}, headers={"X-Request-ID": "retry-me"})
    assert late.status_code == 409


def test_feedback_waits_for_a_prediction_that_another_replica_is_still_writing(client, tmp_path):
    """Behind the gateway, the label may reach this replica before the other one has logged the prediction."""
    import threading

    from core.predlog import LoggedRequest

    def other_replica_writes() -> None:
        PredictionLog(f"sqlite:///{tmp_path / 'log.db'}").write(
            [LoggedRequest("elsewhere", time.time(), "bike_demand", "bike-demand", "1", "stable", [RECORD], [9.0], 1.0)]
        )

    writer = threading.Timer(0.4, other_replica_writes)
    writer.start()
    r = client.post("/feedback", json={"labels": [{"id": "elsewhere", "label": 10.0}]})
    writer.join()
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_admin_reload_needs_the_token(client):
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403
    r = client.post("/admin/reload", headers={"X-Admin-Token": TOKEN})
    assert r.status_code == 200 and r.json()["model_version"] == "1"


def test_the_token_is_checked_before_the_body_is_read(client):
    """A caller without the token learns nothing of the body's rules, and costs no parsing."""
    for body in (b"{not json", b'{"strategy": "nonsense"}'):
        headers = {"content-type": "application/json"}
        assert client.post("/admin/rollouts", content=body, headers=headers).status_code == 401
        assert (
            client.post("/admin/rollouts", content=body, headers={**headers, "X-Admin-Token": "x"}).status_code == 403
        )
        assert (
            client.post("/admin/rollouts", content=body, headers={**headers, "X-Admin-Token": TOKEN}).status_code == 422
        )


def test_a_read_only_token_reads_and_changes_nothing(trained_state, tmp_path):
    reader = "reader-token-0123456789"
    settings = _settings(trained_state, prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}", read_token=reader)
    with TestClient(create_app(settings)) as c:
        assert c.get("/admin/status", headers={"X-Admin-Token": reader}).json()["stable_version"] == "1"
        assert c.get("/admin/rollouts", headers={"X-Admin-Token": reader}).status_code == 200
        refused = c.post("/admin/reload", headers={"X-Admin-Token": reader})
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert c.get("/admin/status", headers={"X-Admin-Token": TOKEN}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_a_body_declared_as_anything_but_json_gets_a_415(client, content_type):
    body = json.dumps(RECORD).encode()
    for path in ("/predict", "/explain", "/feedback", "/invocations"):
        r = client.post(path, content=body, headers={"content-type": content_type})
        assert r.status_code == 415 and "must be JSON" in r.json()["detail"], (path, r.text)
    for declared in ("application/json; charset=utf-8", None):  # no Content-Type: read as JSON (OIP clients)
        headers = {"content-type": declared} if declared else {}
        assert client.post("/predict", content=body, headers=headers).status_code == 200, declared


def test_the_openapi_documents_every_answer_and_the_token_scheme(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["AdminToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-Token",
        "description": "MLOPS_ADMIN_TOKEN for every admin call; MLOPS_READ_TOKEN for the read-only ones (GET).",
    }
    answers = lambda path, method: set(spec["paths"][path][method]["responses"])  # noqa: E731
    assert answers("/predict", "post") >= {"200", "400", "409", "413", "415", "422", "500", "503"}
    assert answers("/feedback", "post") >= {"200", "413", "415", "422", "503"}
    assert answers("/admin/rollouts", "post") >= {"201", "401", "403", "409", "413", "415", "422"}
    assert answers("/admin/rollback", "post") >= {"200", "401", "403", "409"}
    assert spec["paths"]["/admin/status"]["get"]["security"] == [{"AdminToken": []}]


def test_every_rollout_number_is_bounded(client):
    admin = {"X-Admin-Token": TOKEN}
    huge = {"strategy": "ab", "candidate_version": "2", "ab": {"min_samples_per_arm": 2**31}}
    r = client.post("/admin/rollouts", json=huge, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "min_samples_per_arm"
    r = client.post(
        "/admin/rollouts",
        json={"strategy": "shadow", "candidate_version": "2", "duration_seconds": 1e12},
        headers=admin,
    )
    assert r.status_code == 422


def test_no_champion_yet(tmp_path):
    settings = _settings(tmp_path / "empty")
    with TestClient(create_app(settings)) as c:
        ready = c.get("/ready")
        assert ready.status_code == 503 and "no 'champion' for model 'bike-demand'" in ready.json()["reason"]
        r = c.post("/predict", json=RECORD)
        assert r.status_code == 503 and "no model to serve" in r.json()["detail"]
        assert c.get("/ping").status_code == 503
        assert c.post("/admin/reload", headers={"X-Admin-Token": TOKEN}).status_code == 503


def test_default_token_refused_outside_dev_mode(tmp_path):
    with pytest.raises(ValueError, match="MLOPS_ADMIN_TOKEN must be set"):
        ServingSettings(state_dir=tmp_path, dev_mode=False)


def test_prediction_log_default_lives_in_the_state_dir(trained_state: Path):
    with TestClient(create_app(_settings(trained_state))) as c:
        c.post("/predict", json=RECORD, headers={"X-Request-ID": "default-log"})
    log = PredictionLog(StateLayout(trained_state).prediction_log_url)
    assert "default-log" in {r.prediction_id for r in log.window(use_case="bike_demand", since=0, until=1e12)}


def test_the_served_version_starts_from_its_compiled_model_and_takes_on_its_pipeline(trained_state, tmp_path, bike):
    """At start the registered compiled model serves; with the native tree walk on, a tree model's pipeline joins
    it in the background."""
    from models.registry import MlflowRegistry

    settings = _settings(trained_state, prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}", native_tree_walk=True)
    app = create_app(settings)
    batch = [{**RECORD, "hr": h % 24, "temp": 0.1 + (h % 9) / 10} for h in range(200)]
    with TestClient(app) as c:
        control = app.state.service.control
        first = control.snapshot.stable  # the pipeline may have joined already: it loads in the background
        assert first.compiled is not None and first.compiled.estimator.n_trees > 0  # gradient boosting
        deadline = time.monotonic() + 60
        while control.snapshot.stable.pipeline is None and time.monotonic() < deadline:
            time.sleep(0.2)
        served = control.snapshot.stable
        values = [p["value"] for p in c.post("/predict", json=batch).json()["predictions"]]
    assert served.pipeline is not None and served.compiled.native is served.pipeline.steps[-1][1]
    model = MlflowRegistry(tracking_uri=StateLayout(trained_state).tracking_uri).load("bike-demand", "1")
    np.testing.assert_allclose(values, model.predict(feature_frame(batch, bike)), rtol=1e-9)


class SwitchableRegistry:
    """The real registry (the ModelSource port), which a test can take away as a stopped server would be."""

    def __init__(self, inner) -> None:
        self.inner, self.down = inner, False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("[Errno 111] Connection refused")

    def alias_version(self, name: str, alias: str) -> str | None:
        self._check()
        return self.inner.alias_version(name, alias)

    def read_file(self, name: str, version: str, path: str) -> bytes:
        self._check()
        return self.inner.read_file(name, version, path)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._check()
        self.inner.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._check()
        self.inner.delete_alias(name, alias)

    def tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        self._check()
        self.inner.tag(name, version, tags)


def test_without_the_registry_the_loaded_model_serves_and_ready_says_so(trained_state, tmp_path):
    from services.serving.model_store import model_source_for

    settings = _settings(
        trained_state, prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}", registry_check_interval_seconds=0.1
    )
    registry = SwitchableRegistry(model_source_for(settings.resolved_tracking_uri))
    with TestClient(create_app(settings, model_source=registry)) as c:
        assert c.get("/ready").json()["registry"] == "ok"
        registry.down = True
        deadline = time.monotonic() + 10
        while (ready := c.get("/ready").json())["registry"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready["ready"] and ready["registry"] == "unreachable" and "Connection refused" in ready["registry_error"]
        assert c.post("/predict", json=RECORD).status_code == 200  # the loaded version keeps answering
        registry.down = False
        deadline = time.monotonic() + 10
        while (ready := c.get("/ready").json())["registry"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready["registry"] == "ok" and ready["registry_error"] is None


def _database_restarting() -> Exception:
    """What the driver raises, through SQLAlchemy, while the database restarts."""
    import sqlalchemy as sa

    return sa.exc.OperationalError("SELECT ...", {}, ConnectionRefusedError("connection refused"))


class RestartingDatabaseLog(PredictionLog):
    """The real prediction log, whose database goes away (a restart) for the lookups of /feedback."""

    def unknown_ids(self, ids):
        raise _database_restarting()


def test_a_database_that_is_restarting_gets_a_503_to_retry_not_a_500(trained_state, tmp_path):
    settings = _settings(trained_state)
    log = RestartingDatabaseLog(f"sqlite:///{tmp_path / 'log.db'}")
    with TestClient(create_app(settings, prediction_log=log), raise_server_exceptions=False) as c:
        predicted = c.post("/predict", json=RECORD).json()["predictions"][0]["id"]
        r = c.post("/feedback", json={"labels": [{"id": predicted, "label": 1.0}]})
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert "database is unavailable" in r.json()["detail"]


class RestartingDatabaseForLookups(PredictionLog):
    """The real prediction log, whose database refuses the request-id lookup (a restart) but takes writes."""

    def request_records(self, request_ids):
        raise _database_restarting()


def test_a_database_restart_does_not_fail_a_prediction_that_carries_a_request_id(trained_state, tmp_path):
    """Behind the gateway every request carries an X-Request-ID; its check must not turn a restart into 503s."""
    settings = _settings(trained_state)
    log = RestartingDatabaseForLookups(f"sqlite:///{tmp_path / 'log.db'}")
    with TestClient(create_app(settings, prediction_log=log), raise_server_exceptions=False) as c:
        answered = c.post("/predict", json=RECORD, headers={"X-Request-ID": "during-restart"})
        assert answered.status_code == 200, answered.text
        c.post("/feedback", json={"labels": [{"id": "during-restart", "label": 1}]})  # flushes the log's writer
    (row,) = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}").window(use_case="bike_demand", since=0, until=1e12)
    assert row.features == RECORD  # answered and logged, not lost


class ChampionInMemory:
    """A registry of in-memory model files (the ModelSource port) whose champion is version 1."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def alias_version(self, name: str, alias: str) -> str | None:
        return "1" if alias == "champion" else None

    def read_file(self, name: str, version: str, path: str) -> bytes:
        return self.files[path]


CREDIT_RECORDS = [{"student": "No", "balance": b, "income": 40000.0} for b in (300.0, 1200.0, 1500.0, 2200.0)]


@pytest.fixture(scope="module")
def credit_model(credit):
    """A credit classifier fitted on the first 3,000 rows, and those rows."""
    import pandas as pd

    from models.frames import coerce_features, target_vector
    from models.training import make_pipeline
    from tests.conftest import DATA

    data = pd.read_csv(DATA / "Default.csv").head(3000)
    return make_pipeline(credit, "logistic_regression").fit(
        coerce_features(data, credit), target_vector(data, credit)
    ), data


def _credit_client(tmp_path: Path, files: dict[str, bytes]) -> TestClient:
    """The service for the credit use case, serving one in-memory version as its champion."""
    settings = ServingSettings(
        state_dir=tmp_path,
        use_case="credit_default",
        admin_token=TOKEN,
        prediction_log_url=f"sqlite:///{tmp_path}/l.db",
    )
    return TestClient(create_app(settings, model_source=ChampionInMemory(files)))


@pytest.mark.parametrize("threshold", [0.05, 0.5])
def test_a_classifier_labels_at_its_registered_threshold_and_says_which(credit, credit_model, tmp_path, threshold):
    from models.compiler import compile_model
    from tests.support.model_files import registered_files

    model, _ = credit_model
    files = registered_files(
        model, compiled=compile_model(model, credit), decision={"threshold": threshold, "rule": "test"}
    )
    with _credit_client(tmp_path, files) as c:
        body = c.post("/predict", json=CREDIT_RECORDS).json()
    assert body["threshold"] == threshold
    probabilities = [p["value"] for p in body["predictions"]]
    assert [p["label"] for p in body["predictions"]] == ["Yes" if v >= threshold else "No" for v in probabilities]
    assert any(0.05 <= v < 0.5 for v in probabilities)  # a record whose label the threshold decides


def test_a_calibrated_classifier_answers_labels_and_explains_its_calibrated_probability(credit, credit_model, tmp_path):
    from models.calibration import Calibration
    from models.compiler import compile_model
    from models.frames import feature_frame
    from tests.support.model_files import registered_files

    model, data = credit_model
    calibration = Calibration("sigmoid", slope=0.8, intercept=1.2)  # raises every probability
    decision = {"threshold": 0.3, "rule": "test", "calibration": calibration.as_dict()}
    background = json.loads(data[credit.features].head(8).to_json(orient="records"))
    files = registered_files(model, compiled=compile_model(model, credit), decision=decision, background=background)
    raw = model.predict_proba(feature_frame(CREDIT_RECORDS, credit))[:, 1]
    with _credit_client(tmp_path, files) as c:
        body = c.post("/predict", json=CREDIT_RECORDS).json()
        explained = c.post("/explain", json=CREDIT_RECORDS).json()
    served = np.array([p["value"] for p in body["predictions"]])
    np.testing.assert_allclose(served, calibration.apply(raw), rtol=1e-9)
    assert np.all(served > raw)
    assert [p["label"] for p in body["predictions"]] == ["Yes" if v >= 0.3 else "No" for v in served]
    for explanation, value in zip(explained["explanations"], served, strict=True):
        assert explained["base_value"] + sum(explanation["contributions"].values()) == pytest.approx(value, abs=1e-6)


def test_explanations_add_up_to_the_prediction_and_are_checked_like_predictions(client, bike):
    records = [RECORD, {**RECORD, "hr": 3, "temp": 0.1}]
    predicted = [p["value"] for p in client.post("/predict", json=records).json()["predictions"]]
    r = client.post("/explain", json=records)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "1"
    for explanation, value in zip(body["explanations"], predicted, strict=True):
        assert set(explanation["contributions"]) == set(bike.features)
        assert body["base_value"] + sum(explanation["contributions"].values()) == pytest.approx(value, abs=1e-6)
        assert explanation["prediction"] == pytest.approx(value, abs=1e-9)
    rush, night = body["explanations"]
    assert rush["contributions"]["hr"] > night["contributions"]["hr"]  # 17h is busier than 3h
    # the same checks as /predict, and a limit of its own
    assert client.post("/explain", json={**RECORD, "hr": 25}).status_code == 422
    too_many = client.post("/explain", json=[RECORD] * 21)
    assert too_many.status_code == 413 and "the limit is 20" in too_many.json()["detail"]


def test_a_version_registered_without_background_rows_cannot_be_explained(credit, tmp_path):
    import pandas as pd

    from models.frames import coerce_features, target_vector
    from models.training import make_pipeline
    from tests.conftest import DATA
    from tests.support.model_files import registered_files

    data = pd.read_csv(DATA / "Default.csv").head(2000)
    model = make_pipeline(credit, "logistic_regression").fit(coerce_features(data, credit), target_vector(data, credit))
    settings = ServingSettings(
        state_dir=tmp_path,
        use_case="credit_default",
        admin_token=TOKEN,
        prediction_log_url=f"sqlite:///{tmp_path}/l.db",
    )
    with TestClient(create_app(settings, model_source=ChampionInMemory(registered_files(model)))) as c:
        r = c.post("/explain", json={"student": "No", "balance": 1500.0, "income": 40000.0})
    assert r.status_code == 409 and "registered without background rows" in r.json()["detail"]


def test_the_registered_signature_and_input_example_fit_the_service(client, trained_state):
    """One input contract: what the registry publishes about the model is what the service accepts."""
    import yaml

    from models.registry import MlflowRegistry

    registry = MlflowRegistry(tracking_uri=StateLayout(trained_state).tracking_uri)
    mlmodel = yaml.safe_load(registry.model_file("bike-demand", "1", "MLmodel"))
    declared = {c["name"]: c["type"] for c in json.loads(mlmodel["signature"]["inputs"])}
    assert declared["hr"] == declared["weekday"] == "long" and declared["temp"] == "double"
    assert declared["weathersit"] == "string"
    example = json.loads(registry.model_file("bike-demand", "1", "serving_input_example.json"))["dataframe_split"]
    records = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    answered = client.post("/predict", json=records)
    assert answered.status_code == 200, answered.text
    # a client built on data frames sends integers as floats: the same answer
    as_floats = [{k: float(v) if isinstance(v, int) else v for k, v in r.items()} for r in records]
    again = client.post("/predict", json=as_floats)
    assert again.status_code == 200
    assert [p["value"] for p in again.json()["predictions"]] == [p["value"] for p in answered.json()["predictions"]]


def test_mlflow_clients_score_through_invocations_with_the_answers_of_predict(client):
    """`mlflow models serve`'s protocol: each of its body formats, as MLflow's own helper writes one."""
    import pandas as pd
    from mlflow.models import convert_input_example_to_serving_input

    records = [RECORD, {**RECORD, "hr": 3}]
    expected = [p["value"] for p in client.post("/predict", json=records).json()["predictions"]]
    frame = pd.DataFrame(records)
    columns = {name: [r[name] for r in records] for name in RECORD}
    rows = [[r[name] for name in RECORD] for r in records]  # in the features' order
    bodies = {
        "mlflow's helper (dataframe_split)": convert_input_example_to_serving_input(frame),
        "dataframe_records": json.dumps({"dataframe_records": records}),
        "instances": json.dumps({"instances": records}),
        "inputs as columns": json.dumps({"inputs": columns}),
        "inputs as rows": json.dumps({"inputs": rows}),
    }
    for name, body in bodies.items():
        r = client.post("/invocations", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, (name, r.text)
        assert r.json() == {"predictions": expected}, name
        assert r.headers["X-Model-Version"] == "1"
    # the same checks as /predict, naming the field; a body that is none of the formats is refused as such
    wrong = client.post("/invocations", json={"dataframe_records": [{**RECORD, "hr": 24}]})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", 0, "hr"]
    unknown = client.post("/invocations", json={"records": records})
    assert unknown.status_code == 422 and "expected exactly one of" in unknown.json()["detail"][0]["msg"]
    assert client.get("/ping").status_code == 200
    assert client.get("/version").text == __import__("importlib.metadata").metadata.version("mlops-loop")
