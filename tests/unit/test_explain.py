"""Exact Shapley values: known answers by hand, and contributions that add up to the prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.explain import MAX_FEATURES, explain


def linear(rows):
    return np.array([2 * r["a"] + 3 * r["b"] for r in rows], dtype=float)


def product(rows):
    return np.array([r["a"] * r["b"] for r in rows], dtype=float)


BACKGROUND = [{"a": 0.0, "b": 0.0}, {"a": 2.0, "b": 4.0}]  # means 1 and 2


def test_a_linear_model_gets_its_coefficient_times_the_distance_from_the_background_mean():
    e = explain(linear, {"a": 5.0, "b": 1.0}, BACKGROUND, ["a", "b"])
    assert e.contributions == pytest.approx({"a": 2 * (5 - 1), "b": 3 * (1 - 2)})
    assert e.base_value == pytest.approx(2 * 1 + 3 * 2) and e.prediction == 13.0


def test_an_interaction_is_shared_as_shapley_says_and_everything_adds_up():
    e = explain(product, {"a": 3.0, "b": 5.0}, BACKGROUND, ["a", "b"])
    # v({}) = mean(0, 8) = 4; v({a}) = mean(0, 12) = 6; v({b}) = mean(0, 10) = 5; v({a, b}) = 15
    assert e.contributions["a"] == pytest.approx(0.5 * (6 - 4) + 0.5 * (15 - 5))
    assert e.contributions["b"] == pytest.approx(0.5 * (5 - 4) + 0.5 * (15 - 6))
    assert e.base_value + sum(e.contributions.values()) == pytest.approx(e.prediction, abs=1e-12)


def test_too_many_features_or_no_background_is_refused():
    wide = [f"x{i}" for i in range(MAX_FEATURES + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_FEATURES} features"):
        explain(linear, dict.fromkeys(wide, 0.0), [dict.fromkeys(wide, 0.0)], wide)
    with pytest.raises(ValueError, match="needs background rows"):
        explain(linear, {"a": 1.0, "b": 1.0}, [], ["a", "b"])


def test_a_random_nonlinear_model_over_many_features_adds_up():
    rng = np.random.default_rng(0)
    features = [f"x{i}" for i in range(7)]
    weights = rng.normal(size=7)

    def model(rows):
        X = np.array([[r[f] for f in features] for r in rows])
        return np.tanh(X @ weights) + X[:, 0] * X[:, 3]

    background = [dict(zip(features, rng.normal(size=7), strict=True)) for _ in range(5)]
    record = dict(zip(features, rng.normal(size=7), strict=True))
    e = explain(model, record, background, features)
    assert e.base_value + sum(e.contributions.values()) == pytest.approx(e.prediction, abs=1e-9)
    assert e.prediction == pytest.approx(model([record])[0])


def test_many_records_at_once_give_what_one_at_a_time_gives(credit):
    """The global summary's batched enumeration (columns, several records per predict call) agrees with
    the per-record explanation that /explain serves, on a real pipeline with a category."""
    import pandas as pd

    from models.explain import explain_columns, global_explanation
    from models.frames import coerce_features, feature_frame, target_vector
    from models.metrics import model_output
    from models.training import make_pipeline
    from tests.conftest import DATA

    data = pd.read_csv(DATA / "Default.csv").head(2000)
    X = coerce_features(data, credit)
    model = make_pipeline(credit, "logistic_regression").fit(X, target_vector(data, credit))
    rows, background = X.iloc[[5, 50, 500]], X.iloc[:8]
    values, base = global_explanation(model, rows, background, credit)
    predicted = model_output(model, rows, "classification")
    np.testing.assert_allclose(base + values.sum(axis=1), predicted, atol=1e-9)
    records = json.loads(rows.to_json(orient="records"))
    one = [
        explain(lambda r: model_output(model, feature_frame(r, credit), "classification"), rec,
                json.loads(background.to_json(orient="records")), credit.features)
        for rec in records
    ]  # fmt: skip
    np.testing.assert_allclose(values, [[e.contributions[f] for f in credit.features] for e in one], atol=1e-9)
    # one predict call per record, or all at once: the same numbers
    calls = []

    def counted(columns):
        calls.append(len(columns["balance"]))
        frame = pd.DataFrame({f: columns[f] for f in credit.features}).astype({"balance": float, "income": float})
        return model_output(model, frame, "classification")

    as_columns = {f: rows[f].to_numpy(dtype=object) for f in credit.features}
    bg = {f: background[f].to_numpy(dtype=object) for f in credit.features}
    # one record (8 subsets x 8 rows) per call
    again, _ = explain_columns(counted, as_columns, bg, credit.features, predict_rows=64)
    assert calls == [64, 64, 64]
    np.testing.assert_allclose(again, values, atol=1e-12)
