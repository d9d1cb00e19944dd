"""Feature sets compared with the same time-series CV: which sets, and what the scores say."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from core.usecase import UseCaseError, parse_use_case
from models.selection import as_markdown, compare_feature_sets, feature_sets, restricted
from tests.conftest import USECASES


def synthetic_bike(bike, n: int = 720, seed: int = 0) -> pd.DataFrame:
    """Hourly rows whose demand is all weather (temperature), none of it clock or day type."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "hr": np.arange(n) % 24,
            "weekday": (np.arange(n) // 24) % 7,
            "workingday": rng.integers(0, 2, n),
            "holiday": rng.integers(0, 2, n),
            "weathersit": rng.choice(["clear", "cloudy/misty"], n),
            "temp": rng.uniform(0, 1, n),
            "hum": rng.uniform(0, 1, n),
            "windspeed": rng.uniform(0, 1, n),
        }
    )
    frame["atemp"] = frame["temp"] * 0.9
    frame["bikers"] = 400 * frame["temp"] + rng.normal(0, 10, n)
    frame["event_time"] = pd.Timestamp("2011-01-01") + pd.to_timedelta(np.arange(n), unit="h")
    return frame


def test_the_sets_are_all_then_all_but_each_group_then_the_top_k_in_the_use_cases_order(bike):
    importance = {"temp": 0.9, "hr": 0.5, "atemp": 0.4, "hum": 0.3, "weekday": 0.01}
    sets = feature_sets(bike, importance)
    assert list(sets) == ["all", "without clock", "without day_type", "without weather", "top 4"]
    assert sets["all"] == bike.features
    assert sets["without clock"] == [f for f in bike.features if f not in ("hr", "weekday")]
    assert sets["top 4"] == ["hr", "temp", "atemp", "hum"]


def test_a_restricted_use_case_keeps_only_the_periodic_encodings_of_its_features(bike):
    without_clock = restricted(bike, ["workingday", "temp"])
    assert without_clock.features == ["workingday", "temp"] and without_clock.training.cyclical == {}
    assert restricted(bike, ["hr", "temp"]).training.cyclical == {"hr": 24}
    assert bike.training.cyclical == {"hr": 24, "weekday": 7}  # the original is untouched


def test_leaving_out_the_group_that_carries_the_signal_is_clearly_worse_and_the_others_cost_nothing(bike):
    scores = {
        s.name: s
        for s in compare_feature_sets(
            synthetic_bike(bike), bike, algorithm="ridge", params={"alpha": 1.0}, importance={"temp": 1.0}
        )
    }
    assert scores["all"].change == 0.0 and 5 < scores["all"].cv_mean < 20  # RMSE near the noise's 10
    assert scores["without weather"].change > 50  # RMSE, lower is better: positive is worse
    assert abs(scores["without clock"].change) < 2 and abs(scores["without day_type"].change) < 2
    table = as_markdown(list(scores.values()), bike)
    assert "| without weather | hr, weekday, workingday, holiday |" in table and "lower is better" in table


def test_feature_groups_must_name_features_and_top_k_must_leave_some_out():
    data = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    broken = copy.deepcopy(data)
    broken["training"]["feature_groups"]["weather"].append("casual")
    with pytest.raises(UseCaseError, match=r"feature_groups.weather: \['casual'\] are not features"):
        parse_use_case(broken, origin="test.yaml", base_dir=USECASES)
    broken = copy.deepcopy(data)
    broken["training"]["feature_selection"]["top_k"] = 9
    with pytest.raises(UseCaseError, match="top_k must be below the 9 features"):
        parse_use_case(broken, origin="test.yaml", base_dir=USECASES)
