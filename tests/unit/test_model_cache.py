"""How the service loads a version: from its compiled file when it has one, else its pipeline (compiled if it can)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from models.compiled import TREE_WALK_CELLS
from models.compiler import compile_model
from models.frames import coerce_features, feature_frame, target_vector
from models.training import make_pipeline
from services.serving.model_store import ModelCache, ModelUnavailable
from tests.support.model_files import registered_files
from tests.support.records import json_records


class InMemorySource:
    """The registry as the service sees it (the ModelSource port): each version's files, in memory."""

    def __init__(self, versions: dict[str, dict[str, bytes]]) -> None:
        self.versions = versions
        self.read: list[tuple[str, str]] = []

    def alias_version(self, name: str, alias: str) -> str | None:
        return None

    def read_file(self, name: str, version: str, path: str) -> bytes:
        if version not in self.versions:
            raise ModelUnavailable(f"model '{name}' v{version} is not in the registry")
        self.read.append((version, path))
        return self.versions[version][path]


@pytest.fixture(scope="module")
def fitted(bike, bike_frame) -> dict[str, Any]:
    train = bike_frame.iloc[:1200]
    X, y = coerce_features(train, bike), target_vector(train, bike)
    odd = Pipeline(
        [
            ("features", ColumnTransformer([("scaled", MinMaxScaler(), ["temp", "hum", "hr"])])),
            ("model", HistGradientBoostingRegressor(max_iter=20)),
        ]
    )
    return {
        "forest": make_pipeline(bike, "random_forest").set_params(model__n_estimators=10).fit(X, y),
        "ridge": make_pipeline(bike, "ridge").fit(X, y),
        "odd": odd.fit(X, y),
        "batch": json_records(coerce_features(bike_frame.iloc[3000:4100], bike), bike),
    }


def predicted(model: Any, records: list[dict[str, Any]], use_case: Any) -> np.ndarray:
    return model.predict(feature_frame(records, use_case))


def test_a_version_with_its_compiled_file_serves_from_it_then_gets_its_pipeline_for_large_batches(bike, fitted):
    forest = fitted["forest"]
    source = InMemorySource({"1": registered_files(forest, compiled=compile_model(forest, bike))})
    cache = ModelCache(source, name="bike-demand", compile_for=bike, native_tree_walk=True, predict_jobs=1)

    async def load() -> tuple[Any, Any]:
        first = await cache.ensure("1", complete=False)  # as a service with nothing to serve yet
        await cache.completed()
        return first, cache.get("1")

    first, complete = asyncio.run(load())

    assert first.pipeline is None and first.compiled is not None and first.compiled.native is None
    assert [p for _, p in source.read[:2]] == ["MLmodel", "extra_files/compiled_model.npz"]  # no skops file yet
    assert complete.pipeline is not None and complete.compiled.native is complete.pipeline.steps[-1][1]
    assert any(path.endswith(".skops") for _, path in source.read)  # read in the background
    assert complete.pipeline.named_steps["model"].n_jobs == 1  # training's 2 workers cost a small request
    batch = fitted["batch"]
    assert len(batch) * complete.compiled.estimator.n_trees > TREE_WALK_CELLS  # through scikit-learn's walk
    for loaded in (first, complete):
        for records in (batch, batch[:1]):
            np.testing.assert_allclose(loaded.predict(records, bike), predicted(forest, records, bike), rtol=1e-9)


def test_a_version_loaded_while_another_serves_comes_complete(bike, fitted):
    forest = fitted["forest"]
    source = InMemorySource({"2": registered_files(forest, compiled=compile_model(forest, bike))})

    loaded = asyncio.run(ModelCache(source, name="bike-demand", compile_for=bike, native_tree_walk=True).ensure("2"))

    assert loaded.pipeline is not None and loaded.compiled.native is loaded.pipeline.steps[-1][1]


def test_without_the_native_tree_walk_a_tree_model_never_reads_its_pipeline(bike, fitted):
    """The default: scikit-learn's memory is not paid for; large batches walk the trees in NumPy, as exactly."""
    forest = fitted["forest"]
    source = InMemorySource({"1": registered_files(forest, compiled=compile_model(forest, bike))})
    cache = ModelCache(source, name="bike-demand", compile_for=bike)

    async def load() -> Any:
        await cache.ensure("1", complete=False)
        await cache.completed()
        return cache.get("1")

    loaded = asyncio.run(load())

    assert loaded.pipeline is None and loaded.compiled.native is None
    assert not any(path.endswith(".skops") for _, path in source.read)
    batch = fitted["batch"]
    assert len(batch) * loaded.compiled.estimator.n_trees > TREE_WALK_CELLS  # would have gone to scikit-learn
    np.testing.assert_allclose(loaded.predict(batch, bike), predicted(forest, batch, bike), rtol=1e-9)


def test_without_a_usable_compiled_file_the_pipeline_serves_compiled_when_it_can(bike, fitted):
    ridge, odd = fitted["ridge"], fitted["odd"]
    source = InMemorySource(
        {
            "1": registered_files(ridge),  # registered before compiled files existed
            "2": registered_files(odd),  # not compilable
            "3": registered_files(ridge, compiled=b"not a compiled model"),
        }
    )
    cache = ModelCache(source, name="bike-demand", compile_for=bike)

    loaded = {v: asyncio.run(cache.ensure(v)) for v in ("1", "2", "3")}

    assert loaded["1"].compiled is not None and loaded["1"].pipeline is not None  # compiled at load
    assert loaded["2"].compiled is None and loaded["2"].pipeline is not None
    assert loaded["3"].compiled is not None and loaded["3"].pipeline is not None  # compiled again at load
    batch = fitted["batch"][:50]
    for version, model in (("1", ridge), ("2", odd), ("3", ridge)):
        np.testing.assert_allclose(loaded[version].predict(batch, bike), predicted(model, batch, bike), rtol=1e-9)


def test_with_compiling_off_every_version_serves_through_its_pipeline(bike, fitted):
    forest = fitted["forest"]
    source = InMemorySource({"1": registered_files(forest, compiled=compile_model(forest, bike))})

    loaded = asyncio.run(ModelCache(source, name="bike-demand").ensure("1"))

    assert loaded.compiled is None and loaded.pipeline is not None
    assert "extra_files/compiled_model.npz" not in [p for _, p in source.read]


def test_a_compiled_model_for_other_inputs_is_refused_with_the_reason(bike, credit, fitted):
    ridge = fitted["ridge"]
    source = InMemorySource({"1": registered_files(ridge, compiled=compile_model(ridge, bike))})
    cache = ModelCache(source, name="credit-default", compile_for=credit)

    with pytest.raises(ModelUnavailable, match=r"v1 cannot serve here: .*use case 'credit_default'"):
        asyncio.run(cache.ensure("1"))
    with pytest.raises(ModelUnavailable, match="v2 is not in the registry"):
        asyncio.run(cache.ensure("2"))


def test_a_classifiers_threshold_is_loaded_with_it_and_a_broken_one_refuses_the_version(fitted):
    from services.serving.model_store import load_version
    from tests.support.model_files import registered_files

    ridge = fitted["ridge"]
    source = InMemorySource(
        {
            "1": registered_files(ridge, decision={"threshold": 0.085, "rule": "least cost"}),
            "2": registered_files(ridge),  # registered before thresholds were
            "3": registered_files(ridge, decision={"threshold": 7, "rule": "?"}),
        }
    )
    assert load_version(source, "m", "1").threshold == 0.085
    assert load_version(source, "m", "2").threshold == 0.5
    with pytest.raises(ModelUnavailable, match="its decision threshold 7 is not a probability"):
        load_version(source, "m", "3")


def test_a_classifiers_calibration_is_loaded_with_it_and_a_damaged_one_refuses_the_version(fitted):
    from services.serving.model_store import load_version

    ridge = fitted["ridge"]
    sigmoid = {"method": "sigmoid", "slope": 1.5, "intercept": -0.5}
    source = InMemorySource(
        {
            "1": registered_files(ridge, decision={"threshold": 0.1, "rule": "r", "calibration": sigmoid}),
            "2": registered_files(ridge, decision={"threshold": 0.1, "rule": "r", "calibration": None}),
            "3": registered_files(ridge, decision={"threshold": 0.1, "rule": "r", "calibration": {"method": "magic"}}),
        }
    )
    calibration = load_version(source, "m", "1").calibration
    assert calibration is not None and (calibration.method, calibration.slope, calibration.intercept) == (
        "sigmoid",
        1.5,
        -0.5,
    )
    assert load_version(source, "m", "2").calibration is None
    with pytest.raises(ModelUnavailable, match="v3: its calibration is damaged: a calibration needs a method"):
        load_version(source, "m", "3")
