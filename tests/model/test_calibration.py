"""Behavioural tests of calibration on the credit data: it repairs probabilities that a known cause
has distorted, and leaves alone those that already mean what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from models.training import train
from tests.conftest import DATA


@pytest.fixture(scope="module")
def credit_frame() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "Default.csv")
    # a month per 800 rows, as monthly batches would arrive
    frame["event_time"] = pd.Timestamp("2011-01-01") + pd.to_timedelta(np.arange(len(frame)) // 800 * 30, unit="D")
    return frame


def _logistic(credit, **training):
    candidates = {"logistic_regression": {"C": [1.0]}}
    training = credit.training.model_copy(update={"candidates": candidates, **training})
    return credit.model_copy(update={"training": training})


def test_class_weights_inflate_probabilities_and_calibration_puts_them_back(credit, credit_frame):
    result = train(credit_frame, _logistic(credit, class_weight="balanced"))
    choice = result.calibration
    assert choice is not None and choice.calibration is not None, choice
    assert choice.brier[choice.calibration.method] < 0.5 * choice.brier["none"]  # far from a marginal gain
    test = result.split.test
    X, y = coerce_features(test, credit), target_vector(test, credit)
    raw = model_output(result.model, X, "classification")
    served = model_output(result.answering_model, X, "classification")
    assert evaluate("classification", y, served)["brier"] < 0.5 * evaluate("classification", y, raw)["brier"]
    # calibrated, the probability reads as a rate: predicted and observed defaults agree on the test window
    assert served.mean() == pytest.approx(y.mean(), abs=0.015) and raw.mean() > 3 * y.mean()
    # the reported test metrics are the served model's, and the reference sample's predictions too
    assert result.test_metrics["brier"] == pytest.approx(evaluate("classification", y, served)["brier"])
    assert result.reference["prediction"].mean() < 2 * credit_frame["default"].eq("Yes").mean()


def test_probabilities_that_are_already_calibrated_are_served_raw(credit, credit_frame):
    result = train(credit_frame, _logistic(credit))
    assert result.calibration is not None and result.calibration.calibration is None
    assert "no map lowered the Brier score" in result.calibration.reason
    assert result.answering_model is result.model
    # with costs of 10 to 1, calibrated probabilities put the least-cost threshold near 1 / (1 + 10)
    assert result.decision is not None and 0.04 < result.decision.threshold < 0.2
