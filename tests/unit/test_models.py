"""Splits, metrics and the custom transformer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.utils.estimator_checks import check_estimator

from models.features import CyclicalEncoder, build_preprocessor
from models.metrics import evaluate
from models.splits import time_ordered_split, time_series_cv


def test_cyclical_encoder_follows_the_estimator_contract():
    check_estimator(CyclicalEncoder())


def test_cyclical_encoder_puts_midnight_next_to_23h():
    enc = CyclicalEncoder(period=24).fit(pd.DataFrame({"hr": [0, 12, 23]}))
    out = enc.transform(pd.DataFrame({"hr": [0, 12, 23]}))
    assert list(enc.get_feature_names_out()) == ["hr_sin", "hr_cos"]
    distance = lambda a, b: float(np.linalg.norm(out[a] - out[b]))  # noqa: E731
    assert distance(0, 2) < distance(0, 1)


@pytest.mark.parametrize("period", [24, 7, 12])
def test_symmetric_points_on_the_circle_encode_exactly_equal(period):
    """Mirror images share a cosine (h and period - h) or a sine (h and period/2 - h) to the last bit:
    a tree must not tell 8:00 from 16:00 by rounding noise."""
    steps = np.arange(period, dtype=float)[:, None]
    out = CyclicalEncoder(period=period).fit(steps).transform(steps)
    sin, cos = out[:, 0], out[:, 1]
    for h in range(1, period):
        assert cos[h] == cos[period - h]
        assert sin[h] == -sin[period - h]
        if period % 2 == 0 and h < period // 2:
            assert sin[h] == sin[period // 2 - h]
    assert not np.signbit(out[out == 0]).any()  # no -0.0 beside 0.0


def test_cyclical_encoder_rejects_bad_period():
    with pytest.raises(ValueError, match="period must be positive"):
        CyclicalEncoder(period=0).fit(np.ones((3, 1)))


def test_preprocessor_names_every_output(bike, bike_frame):
    pre = build_preprocessor(bike).fit(bike_frame[bike.features])
    names = list(pre.get_feature_names_out())
    assert "cyclical_hr__hr_sin" in names and "categorical__weathersit_clear" in names
    assert not any("bikers" in n or "casual" in n for n in names)


def test_time_split_never_leaks_the_future(bike_frame):
    split = time_ordered_split(
        bike_frame.sample(frac=1, random_state=1),
        time_column="event_time",
        validation_fraction=0.15,
        test_fraction=0.15,
    )
    assert split.train.event_time.max() < split.validation.event_time.min()
    assert split.validation.event_time.max() < split.test.event_time.min()
    assert len(split.train) + len(split.validation) + len(split.test) == len(bike_frame)


def test_time_split_keeps_equal_timestamps_together():
    frame = pd.DataFrame({"t": np.repeat(np.arange(10), 10), "x": range(100)})
    split = time_ordered_split(frame, time_column="t", validation_fraction=0.25, test_fraction=0.25)
    assert set(split.train.t).isdisjoint(split.validation.t) and set(split.validation.t).isdisjoint(split.test.t)


def test_time_split_refuses_too_little_data():
    with pytest.raises(ValueError, match="at least 30 rows"):
        time_ordered_split(pd.DataFrame({"t": range(5)}), time_column="t", validation_fraction=0.2, test_fraction=0.2)


def test_cv_folds_validate_after_they_train():
    for train_idx, val_idx in time_series_cv(3).split(np.arange(100)):
        assert train_idx.max() < val_idx.min()


def test_regression_metrics():
    m = evaluate("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3)) and m["mae"] == pytest.approx(2 / 3)


def test_classification_metrics_and_confusion_matrix():
    m = evaluate("classification", np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.8, 0.3]))
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["roc_auc"] == 0.75
    # by hand: Brier = (0.1² + 0.6² + 0.2² + 0.7²) / 4; average precision = 0.5 x 1 + 0.5 x 2/3
    assert m["brier"] == pytest.approx(0.225) and m["pr_auc"] == pytest.approx(5 / 6)


def test_with_rare_positives_pr_auc_tells_what_roc_auc_hides():
    """1 positive in 100, ranked 3rd: ROC AUC looks excellent, average precision says 1 in 3."""
    y = np.zeros(100, dtype=int)
    y[0] = 1
    scores = np.linspace(0.9, 0.0, 100)
    scores[[0, 2]] = scores[[2, 0]]  # two negatives score above the positive
    m = evaluate("classification", y, scores)
    assert m["roc_auc"] == pytest.approx(97 / 99) and m["pr_auc"] == pytest.approx(1 / 3)


def test_roc_auc_on_one_class_is_nan_not_an_error():
    assert math.isnan(evaluate("classification", np.array([0, 0]), np.array([0.2, 0.4]))["roc_auc"])


def test_class_weights_reach_every_classifier_and_a_regression_use_case_refuses_them(credit):
    from core.usecase import UseCaseError, parse_use_case
    from models.training import make_pipeline
    from tests.conftest import USECASES

    weighted = credit.model_copy(update={"training": credit.training.model_copy(update={"class_weight": "balanced"})})
    for algorithm in credit.training.candidates:
        assert make_pipeline(weighted, algorithm).named_steps["model"].class_weight == "balanced", algorithm
        assert make_pipeline(credit, algorithm).named_steps["model"].class_weight is None, algorithm
    data = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    data["training"]["class_weight"] = "balanced"
    with pytest.raises(UseCaseError, match=r"training\.class_weight applies to classification only"):
        parse_use_case(data, origin="test.yaml", base_dir=USECASES)


def test_bootstrap_intervals_hold_the_metric_and_narrow_with_more_rows():
    from models.metrics import bootstrap_intervals

    rng = np.random.default_rng(1)
    small_y = rng.normal(0, 1, 100)
    small = bootstrap_intervals("regression", small_y, small_y + rng.normal(0, 1, 100), resamples=300)
    large_y = rng.normal(0, 1, 2500)
    large = bootstrap_intervals("regression", large_y, large_y + rng.normal(0, 1, 2500), resamples=300)
    low, high = large["rmse"]
    assert low < 1.0 < high  # the noise's standard deviation, which is the true RMSE
    assert high - low < (small["rmse"][1] - small["rmse"][0]) / 2  # 25x the rows: about a fifth as wide
    assert set(small) == {"rmse", "mae", "r2"}
