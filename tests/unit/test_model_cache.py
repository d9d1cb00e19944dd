"""How the service prepares a version as it loads: compiled when that reproduces it, one predict worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from models.frames import coerce_features, feature_frame, target_vector
from models.training import make_pipeline
from services.serving.model_store import LoadedModel, ModelCache
from tests.support.records import json_records


class InMemorySource:
    """The registry as the service sees it (the ModelSource port), holding fitted models in memory."""

    def __init__(self, models: dict[str, Any]) -> None:
        self.models = models

    def alias_version(self, name: str, alias: str) -> str | None:
        return None

    def load_version(self, name: str, version: str) -> LoadedModel:
        return LoadedModel(name=name, version=version, model=self.models[version], loaded_at=time.time())

    def record_promotion(self, name: str, *, new: str, old: str | None) -> None:
        raise NotImplementedError


def test_a_version_is_compiled_and_predicts_on_one_worker_while_one_it_cannot_compile_serves_as_is(bike, bike_frame):
    train = bike_frame.iloc[:1200]
    X, y = coerce_features(train, bike), target_vector(train, bike)
    forest = make_pipeline(bike, "random_forest").set_params(model__n_estimators=10).fit(X, y)
    assert forest.named_steps["model"].n_jobs == 2  # as training sets it
    odd = Pipeline(
        [
            ("features", ColumnTransformer([("scaled", MinMaxScaler(), ["temp", "hum", "hr"])])),
            ("model", HistGradientBoostingRegressor(max_iter=20)),
        ]
    ).fit(X, y)
    cache = ModelCache(InMemorySource({"1": forest, "2": odd}), name="bike-demand", compile_for=bike, predict_jobs=1)

    compiled, as_is = asyncio.run(cache.ensure("1")), asyncio.run(cache.ensure("2"))

    assert compiled.compiled is not None and as_is.compiled is None
    assert forest.named_steps["model"].n_jobs == 1
    batch = json_records(coerce_features(bike_frame.iloc[3000:3050], bike), bike)
    for loaded, model in ((compiled, forest), (as_is, odd)):
        want = model.predict(feature_frame(batch, bike))
        np.testing.assert_allclose(loaded.predict(batch, bike), want, rtol=1e-9)
