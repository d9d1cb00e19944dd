"""The champion/challenger rule."""

from __future__ import annotations

import math

import pytest

from models.promotion import decide_promotion


def test_first_model_becomes_champion():
    d = decide_promotion(metric="rmse", candidate_score=10.0, champion_score=None, margin=0.02, higher_is_better=False)
    assert d.verdict == "champion" and "no champion yet" in d.reason


@pytest.mark.parametrize(
    ("candidate", "champion", "higher", "verdict"),
    [
        (9.7, 10.0, False, "challenger"),  # 3 % lower error
        (9.9, 10.0, False, "rejected"),  # better, but by less than the margin
        (10.5, 10.0, False, "rejected"),  # worse
        (0.92, 0.90, True, "challenger"),  # AUC up by more than 2 %
        (0.91, 0.90, True, "rejected"),
    ],
)
def test_challenger_must_beat_champion_by_margin(candidate, champion, higher, verdict):
    d = decide_promotion(
        metric="m", candidate_score=candidate, champion_score=champion, margin=0.02, higher_is_better=higher
    )
    assert d.verdict == verdict
    assert f"champion {champion:.4g}" in d.reason and "margin 2.0%" in d.reason


def test_undefined_candidate_score_is_rejected():
    d = decide_promotion(
        metric="roc_auc", candidate_score=math.nan, champion_score=0.9, margin=0.0, higher_is_better=True
    )
    assert d.verdict == "rejected" and not d.promoted
