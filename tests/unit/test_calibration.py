"""Calibration of a classifier's probabilities: each map on cases whose answer is known, the time-aware
choice, the registered form, and the YAML that declares it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from core.usecase import UseCaseError, parse_use_case
from models.calibration import (
    CalibratedClassifier,
    Calibration,
    brier,
    choose_calibration,
    fit_calibration,
    registered_calibration,
)
from tests.conftest import USECASES


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _distorted(n: int, *, seed: int, slope: float = 2.0, intercept: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose truth is sigmoid(slope * logit(score) + intercept): a model that is too timid."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.02, 0.98, n)
    truth = 1 / (1 + np.exp(-(slope * _logit(score) + intercept)))
    return (rng.uniform(size=n) < truth).astype(int), score


def test_the_sigmoid_recovers_a_known_distortion_and_keeps_the_ranking():
    y, score = _distorted(40_000, seed=1)
    calibration = fit_calibration(y, score, "sigmoid")
    assert calibration.slope == pytest.approx(2.0, abs=0.1) and calibration.intercept == pytest.approx(-1.0, abs=0.1)
    calibrated = calibration.apply(score)
    assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(score, kind="stable"))
    assert brier(y, calibrated) < brier(y, score)


def test_isotonic_pools_adjacent_violators_by_hand():
    # scores 0.1 0.2 0.3 0.4 with labels 0 1 0 1: the middle two pool to 0.5
    calibration = fit_calibration(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4]), "isotonic")
    np.testing.assert_allclose(calibration.apply(np.array([0.1, 0.2, 0.3, 0.4])), [0, 0.5, 0.5, 1])
    # linear between knots, flat beyond them
    np.testing.assert_allclose(calibration.apply(np.array([0.0, 0.15, 0.9])), [0, 0.25, 1])


def test_brier_by_hand():
    assert brier(np.array([1, 0]), np.array([0.75, 0.5])) == pytest.approx((0.0625 + 0.25) / 2)


def test_a_map_is_kept_where_it_helps_judged_on_newer_rows_then_refitted_on_both():
    fit_y, fit_score = _distorted(4000, seed=2)
    judge_y, judge_score = _distorted(2000, seed=3)
    choice = choose_calibration(
        fit_y=fit_y,
        fit_score=fit_score,
        judge_y=judge_y,
        judge_score=judge_score,
        methods=["sigmoid", "isotonic"],
        min_positives=30,
        min_gain=0.01,
    )
    assert choice.calibration is not None and set(choice.brier) == {"none", "sigmoid", "isotonic"}
    kept = choice.calibration.method
    assert choice.brier[kept] == min(choice.brier.values()) < choice.brier["none"]
    assert choice.reason.startswith(f"{kept}: Brier") and (choice.fitted_rows, choice.judged_rows) == (4000, 2000)
    both = fit_calibration(np.r_[fit_y, judge_y], np.r_[fit_score, judge_score], kept)
    assert choice.calibration == both  # the kept map learns from the judging window too


def test_calibrated_scores_are_left_alone_and_too_few_positives_fit_nothing():
    rng = np.random.default_rng(4)
    score = rng.uniform(size=6000)
    y = (rng.uniform(size=6000) < score).astype(int)  # already calibrated
    common = {"methods": ["sigmoid", "isotonic"], "min_positives": 30, "min_gain": 0.01}
    judged = {"judge_y": y[4000:], "judge_score": score[4000:]}
    choice = choose_calibration(fit_y=y[:4000], fit_score=score[:4000], **judged, **common)
    assert choice.calibration is None and "no map lowered the Brier score by 1%" in choice.reason
    rare = np.zeros(4000, dtype=int)
    rare[:29] = 1
    choice = choose_calibration(fit_y=rare, fit_score=score[:4000], **judged, **common)
    assert choice.calibration is None and "29 positives to fit on" in choice.reason and set(choice.brier) == {"none"}


def test_scores_that_rank_backwards_are_not_calibrated_into_a_reversal():
    y, score = _distorted(4000, seed=5)
    with pytest.raises(ValueError, match="finite positive slope"):
        fit_calibration(y, 1 - score, "sigmoid")
    with pytest.raises(ValueError, match="both classes"):
        fit_calibration(np.zeros(10), score[:10], "isotonic")


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_the_registered_form_round_trips(method):
    y, score = _distorted(3000, seed=6)
    calibration = fit_calibration(y, score, method)
    decision = yaml.safe_load(yaml.safe_dump({"threshold": 0.1, "calibration": calibration.as_dict()}))
    again = registered_calibration(decision)
    assert again == calibration
    np.testing.assert_array_equal(again.apply(score), calibration.apply(score))
    assert registered_calibration({"threshold": 0.1}) is None  # registered before calibration existed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "platt"}, "needs a method among"),
        ({"method": "sigmoid", "slope": -1.0}, "finite positive slope"),
        ({"method": "sigmoid", "slope": "steep"}, "not numbers"),
        ({"method": "isotonic", "knots_x": [0.1], "knots_y": [0.2]}, "two or more knots"),
        ({"method": "isotonic", "knots_x": [0.2, 0.1], "knots_y": [0.1, 0.2]}, "must rise in x"),
        ({"method": "isotonic", "knots_x": [0.1, 0.2], "knots_y": [0.5, 1.5]}, "within \\[0, 1\\]"),
    ],
)
def test_a_damaged_registered_calibration_says_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        Calibration.from_dict(data)


def test_a_calibrated_classifier_answers_calibrated_probabilities():
    class Fixed:
        def predict_proba(self, X):
            p = np.asarray(X, dtype=float)
            return np.column_stack([1 - p, p])

    calibration = Calibration("sigmoid", slope=1.0, intercept=np.log(3))  # odds times three
    proba = CalibratedClassifier(Fixed(), calibration).predict_proba([0.5, 0.25])
    np.testing.assert_allclose(proba[:, 1], [0.75, 0.5])
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_calibration_is_declared_for_classification_only_with_known_methods():
    bike = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    bike["calibration"] = {"methods": ["sigmoid"]}
    with pytest.raises(UseCaseError, match=r"calibration \(of probabilities\) applies to classification only"):
        parse_use_case(bike, origin="test.yaml", base_dir=USECASES)
    credit = yaml.safe_load((USECASES / "credit_default.yaml").read_text())
    credit["calibration"] = {"methods": ["platt"]}
    with pytest.raises(UseCaseError, match=r"calibration\.methods"):
        parse_use_case(credit, origin="test.yaml", base_dir=USECASES)
