"""Behavioural tests of the trained bike-demand model: what any sound model of this data must do.

Trained once, in-process, on the whole year with the use case's own pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.frames import coerce_features
from models.training import train

BASE = {
    "hr": 8,
    "weekday": 2,
    "workingday": 1,
    "holiday": 0,
    "weathersit": "clear",
    "temp": 0.6,
    "atemp": 0.58,
    "hum": 0.55,
    "windspeed": 0.15,
}


@pytest.fixture(scope="module")
def model(bike, bike_frame):
    return train(bike_frame, bike).model


def _predict(model, bike, **changes) -> float:
    return float(model.predict(coerce_features(pd.DataFrame([{**BASE, **changes}]), bike))[0])


def test_minimum_functionality_commute_beats_night(model, bike):
    assert _predict(model, bike, hr=8) > 3 * _predict(model, bike, hr=3)
    assert _predict(model, bike, hr=17) > 3 * _predict(model, bike, hr=3)


def test_directional_rain_lowers_demand(model, bike):
    assert _predict(model, bike, weathersit="light rain/snow", hum=0.9) < _predict(model, bike)


def test_directional_freezing_lowers_demand(model, bike):
    assert _predict(model, bike, temp=0.1, atemp=0.1) < _predict(model, bike)


def test_invariance_to_tiny_wind_changes(model, bike):
    base = _predict(model, bike)
    assert abs(_predict(model, bike, windspeed=0.16) - base) < 0.1 * base


def test_predictions_are_never_wildly_negative(model, bike, bike_frame):
    predictions = model.predict(coerce_features(bike_frame, bike))
    assert np.quantile(predictions, 0.01) > -20


def test_tuning_uses_the_newest_rows_but_the_model_learns_from_all(bike, bike_frame):
    """training.tuning_rows caps model selection, not the final fit (which sees the whole window)."""
    import numpy as np

    from models.training import train

    frame = bike_frame[bike_frame.mnth.isin(["Jan", "Feb", "March", "April"])]

    def with_cap(cap):
        training = bike.training.model_copy(update={"tuning_rows": cap, "candidates": {"ridge": {"alpha": [1.0]}}})
        return train(frame, bike.model_copy(update={"training": training}))

    capped, full = with_cap(1000), with_cap(None)
    assert len(capped.split.train) > 1000
    # tuning saw different rows...
    assert capped.candidates[0].cv_score != full.candidates[0].cv_score
    # ...but with one grid point the winner is the same, refitted on the same whole window
    np.testing.assert_allclose(capped.model[-1].coef_, full.model[-1].coef_)
