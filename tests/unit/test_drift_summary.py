"""Turning Evidently's result into a verdict (pure; no Evidently needed)."""

from __future__ import annotations

import pytest

from monitoring.drift import column_drift, summarize


def _value_drift(column: str, value: float, method: str = "Wasserstein distance (normed)", threshold: float = 0.1):
    return {
        "config": {
            "type": "evidently:metric_v2:ValueDrift",
            "column": column,
            "method": method,
            "threshold": threshold,
        },
        "value": value,
    }


def test_distance_drifts_at_or_above_threshold():
    assert column_drift(_value_drift("a", 0.1)).drifted
    assert not column_drift(_value_drift("a", 0.09)).drifted


def test_p_value_drifts_below_threshold():
    assert column_drift(_value_drift("a", 0.01, method="K-S p_value", threshold=0.05)).drifted
    assert not column_drift(_value_drift("a", 0.2, method="K-S p_value", threshold=0.05)).drifted


def test_summary_share_and_verdict():
    result = {
        "metrics": [
            {"config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"count": 1, "share": 0.33}},
            _value_drift("a", 0.5),
            _value_drift("b", 0.01),
            _value_drift("c", 0.02),
            _value_drift("prediction", 0.4),
        ]
    }
    s = summarize(result, features=["a", "b", "c"], threshold=0.3, rows=100)
    assert s.drift_share == pytest.approx(1 / 3) and s.drift_detected and s.drifted_features == ["a"]
    assert s.prediction is not None and s.prediction.drifted
    assert not summarize(result, features=["a", "b", "c"], threshold=0.5, rows=100).drift_detected


def test_summary_refuses_a_result_without_a_feature():
    with pytest.raises(ValueError, match=r"no entry for features \['b'\]"):
        summarize({"metrics": [_value_drift("a", 0.5)]}, features=["a", "b"], threshold=0.5, rows=1)
