"""The serving side of the registry over MLflow's REST API, against a real `mlflow server` process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import sklearn

from models.compiler import compile_model
from models.frames import coerce_features, feature_frame, target_vector
from models.promotion import record_promotion
from models.registry import CHALLENGER, CHAMPION, PREVIOUS, MlflowRegistry, TrainingRecord
from models.training import make_pipeline
from pipelines.traffic import running_tracking_server
from services.serving.model_store import ModelUnavailable, RestModelSource, load_pipeline, load_version
from tests.support.records import BIKE_RECORD, json_records
from tests.support.scripts import last_json_line

MODEL = "bike-demand"  # the use case's name, in a registry of this module's own


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking server as the compose stack runs it: a database, and artifacts proxied by the server."""
    with running_tracking_server(tmp_path_factory.mktemp("mlflow-server"), env=dict(os.environ)) as url:
        yield url


@pytest.fixture(scope="module")
def registered(tracking_server: str, bike, bike_frame) -> dict:
    """Two versions of the bike model registered through the server; v1 is champion."""
    frame = bike_frame.head(3000)
    X, y = coerce_features(frame, bike), target_vector(frame, bike)
    registry = MlflowRegistry(tracking_uri=tracking_server)
    models, versions = [], []
    for seed in (0, 1):
        model = make_pipeline(bike, "hist_gradient_boosting").set_params(model__random_state=seed, model__max_iter=20)
        model.fit(X, y)
        ref = registry.log_and_register(
            TrainingRecord(
                experiment="rest-source",
                model_name=MODEL,
                model=model,
                params={"seed": seed},
                metrics={},
                tags={},
                input_example=X.head(2),
                reference=X.head(20).assign(prediction=model.predict(X.head(20)), target=y[:20]),
                artifacts=[],
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                compiled=compile_model(model, bike) if seed == 0 else None,  # v2 as registered before compiling
            )
        )
        models.append(model)
        versions.append(ref.version)
    registry.set_alias(MODEL, CHAMPION, versions[0])
    return {"registry": registry, "models": models, "versions": versions, "X": X.head(200)}


def test_aliases_versions_and_artifacts_come_over_rest(tracking_server: str, registered: dict, bike):
    source = RestModelSource(tracking_uri=tracking_server)
    v1, v2 = registered["versions"]
    assert source.alias_version(MODEL, CHAMPION) == v1
    assert source.alias_version(MODEL, "no-such-alias") is None
    assert source.alias_version("no-such-model", CHAMPION) is None
    X = registered["X"]
    for version, model in zip((v1, v2), registered["models"], strict=True):
        assert np.array_equal(load_pipeline(source, MODEL, version).predict(X), model.predict(X))
    compiled, as_registered = load_version(source, MODEL, v1), load_version(source, MODEL, v2)
    assert compiled.pipeline is None and as_registered.compiled is None  # v2 has no compiled file
    records = json_records(X, bike)
    assert np.array_equal(compiled.predict(records, bike), registered["models"][0].predict(X))
    with pytest.raises(ModelUnavailable, match="v99"):
        load_version(source, MODEL, "99")


def test_a_promotion_over_rest_is_the_pipelines_promotion(tracking_server: str, registered: dict):
    """The service records a promotion with the same routine as the retraining flow: aliases and tags."""
    v1, v2 = registered["versions"]
    registry: MlflowRegistry = registered["registry"]
    registry.set_alias(MODEL, CHALLENGER, v2)
    source = RestModelSource(tracking_uri=tracking_server)
    record_promotion(source, MODEL, new=v2, old=v1, actor="controller", reason="rollout r1 promoted it")
    assert registry.by_alias(MODEL, CHAMPION).version == v2
    assert registry.by_alias(MODEL, PREVIOUS).version == v1
    assert registry.by_alias(MODEL, CHALLENGER) is None  # it named the new champion
    promoted, retired = registry.get(MODEL, v2).tags, registry.get(MODEL, v1).tags
    assert promoted["promoted_by"] == "controller" and promoted["promoted_because"] == "rollout r1 promoted it"
    assert retired["retired_by"] == "controller"
    source.delete_alias(MODEL, CHALLENGER)  # deleting what is not there is no error
    registry.set_alias(MODEL, CHAMPION, v1)  # as the other tests expect it


def test_the_service_on_a_tracking_server_never_imports_mlflow(tracking_server: str, registered: dict, tmp_path):
    """The MLflow client costs over a second of start-up; with a server the service does without it."""
    script = (
        "import sys, json\n"
        "from fastapi.testclient import TestClient\n"
        "from services.serving.app import app_from_env\n"
        "with TestClient(app_from_env()) as c:\n"
        "    assert c.get('/ready').status_code == 200, c.get('/ready').text\n"
        f"    r = c.post('/predict', json={BIKE_RECORD!r})\n"
        "    assert r.status_code == 200, r.text\n"
        "print(json.dumps({'version': r.json()['model_version'], 'mlflow': 'mlflow' in sys.modules}))\n"
    )
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_TRACKING_URI": tracking_server,
        "MLOPS_USE_CASE": "bike_demand",
    }
    assert last_json_line(script, env=env) == {"version": registered["versions"][0], "mlflow": False}


def test_a_compiled_version_loads_and_predicts_with_numpy_alone(tracking_server: str, registered: dict, bike):
    """What the serving process needs to start: none of scikit-learn, SciPy, pandas, skops or MLflow."""
    script = (
        "import json, sys\n"
        "import services.serving.app\n"
        "from core.settings import default_usecases_dir\n"
        "from core.usecase import load_use_case\n"
        "from services.serving.model_store import RestModelSource, load_version\n"
        f"loaded = load_version(RestModelSource(tracking_uri={tracking_server!r}), {MODEL!r}, sys.argv[1])\n"
        "use_case = load_use_case('bike_demand', usecases_dir=default_usecases_dir())\n"
        f"value = loaded.predict([{BIKE_RECORD!r}], use_case).tolist()\n"
        "heavy = {'sklearn', 'scipy', 'pandas', 'skops', 'mlflow'} & {m.split('.')[0] for m in sys.modules}\n"
        "print(json.dumps({'value': value, 'heavy': sorted(heavy)}))\n"
    )
    v1 = registered["versions"][0]
    answer = last_json_line(script, v1)
    assert answer["heavy"] == []
    want = registered["models"][0].predict(feature_frame([BIKE_RECORD], bike))
    assert np.array_equal(answer["value"], want)
