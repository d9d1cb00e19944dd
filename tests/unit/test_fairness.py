"""Fairness between groups: per-group rates and gaps by hand, and the promotion gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from core.usecase import Fairness, UseCaseError, parse_use_case
from models.fairness import assess, fairness_verdict, flat_metrics
from models.promotion import PromotionDecision, gate_on_fairness
from tests.conftest import USECASES

# group a: truth 1 1 0 0, labelled 1 0 0 0 -> TPR 0.5, FPR 0, selection 0.25
# group b: truth 1 1 0 0, labelled 1 1 1 0 -> TPR 1.0, FPR 0.5, selection 0.75
GROUPS = pd.DataFrame({"student": ["a"] * 4 + ["b"] * 4})
Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
SCORES = np.array([0.9, 0.1, 0.2, 0.1, 0.9, 0.8, 0.7, 0.1])


def test_classification_rates_and_gaps_by_hand(credit):
    (report,) = assess(GROUPS, Y, SCORES, credit, threshold=0.5)
    assert report.by_group["a"] == {
        "rows": 4,
        "selection_rate": 0.25,
        "true_positive_rate": 0.5,
        "false_positive_rate": 0,
    }
    assert report.by_group["b"] == pytest.approx(
        {"rows": 4, "selection_rate": 0.75, "true_positive_rate": 1.0, "false_positive_rate": 0.5}
    )
    # demographic parity: 0.75 - 0.25; equalized odds: max(TPR gap 0.5, FPR gap 0.5)
    assert report.gaps == pytest.approx({"demographic_parity_difference": 0.5, "equalized_odds_difference": 0.5})
    assert report.gap == pytest.approx(0.5) and flat_metrics([report]) == {
        "fairness_student_demographic_parity_difference": pytest.approx(0.5),
        "fairness_student_equalized_odds_difference": pytest.approx(0.5),
    }
    # the threshold decides the labels, so the rates: at 0.75 group b's false positive goes
    (strict,) = assess(GROUPS, Y, SCORES, credit, threshold=0.75)
    assert strict.by_group["b"]["false_positive_rate"] == 0 and strict.by_group["b"]["true_positive_rate"] == 1


def test_regression_gap_is_the_rmse_spread_relative_to_the_overall_rmse(bike):
    slices = pd.DataFrame({"workingday": [0, 0, 1, 1]})
    (report,) = assess(slices, np.array([10.0, 20.0, 10.0, 20.0]), np.array([14.0, 16.0, 10.0, 20.0]), bike)
    # RMSE: slice 0 -> 4, slice 1 -> 0, overall sqrt(32 / 4) = 2.83: gap 4 / 2.83
    assert report.by_group["0"]["rmse"] == 4.0 and report.by_group["1"]["rmse"] == 0.0
    assert report.gap == pytest.approx(4 / np.sqrt(8))


def test_the_gate_refuses_a_gap_over_the_limit_or_wider_than_the_champions_by_more_than_the_margin(credit):
    cfg = Fairness(groups=["student"], max_gap=0.6, margin=0.05)
    (unfair,) = assess(GROUPS, Y, SCORES, credit)  # gap 0.5
    (fairer,) = assess(GROUPS, Y, np.array([0.9, 0.8, 0.1, 0.1, 0.9, 0.8, 0.7, 0.1]), credit)  # FPR gap 0.5, TPR 0
    assert fairness_verdict([unfair], None, cfg) == (True, "fair within 0.600: student 0.500")
    too_wide = Fairness(groups=["student"], max_gap=0.4)
    assert fairness_verdict([unfair], None, too_wide) == (
        False,
        "equalized odds difference for 'student' 0.500 exceeds the limit 0.400",
    )
    (fair,) = assess(GROUPS, Y, np.array([0.9, 0.8, 0.1, 0.1, 0.9, 0.8, 0.1, 0.1]), credit)  # gap 0
    ok, why = fairness_verdict([fairer], [fair], cfg)
    assert not ok and why.startswith("equalized odds difference for 'student' widens from 0.000 (champion) to 0.500")


def test_a_challenger_that_fails_is_rejected_with_the_reason_and_a_first_model_still_serves():
    beats = PromotionDecision("challenger", "beats champion: roc_auc 0.95 >= 0.93", 0.95, 0.92, 0.93)
    refused = gate_on_fairness(beats, fair=False, why="equalized odds difference for 'student' 0.3 exceeds 0.15")
    assert refused.verdict == "rejected" and refused.reason.startswith("fails the fairness check: equalized odds")
    assert "beats champion" in refused.reason  # what it would have been, kept
    first = PromotionDecision("champion", "no champion yet", 0.9, None, None)
    assert gate_on_fairness(first, fair=False, why="gap").verdict == "champion"
    assert gate_on_fairness(beats, fair=True, why="fine") is beats


def test_a_fairness_group_outside_the_schema_is_refused_at_load():
    data = yaml.safe_load((USECASES / "credit_default.yaml").read_text())
    data["fairness"]["groups"] = ["age"]
    with pytest.raises(UseCaseError, match=r"fairness.groups \['age'\] are not in schema.columns"):
        parse_use_case(data, origin="test.yaml", base_dir=USECASES)


def test_monitoring_measures_the_gaps_on_labelled_live_rows(credit):
    from pipelines.monitor import PREDICTION, TARGET, live_fairness

    live = pd.DataFrame({"student": GROUPS["student"], PREDICTION: SCORES, TARGET: Y}).assign(balance=1.0)
    gaps = live_fairness(live, credit, threshold=0.5)
    assert gaps["fairness_student_equalized_odds_difference"] == pytest.approx(0.5)
    assert live_fairness(live.drop(columns="student"), credit, threshold=0.5) == {}  # not carried by requests


def test_without_a_margin_only_the_limit_counts(credit):
    (unfair,) = assess(GROUPS, Y, SCORES, credit)  # gap 0.5
    (fair,) = assess(GROUPS, Y, np.array([0.9, 0.8, 0.1, 0.1, 0.9, 0.8, 0.1, 0.1]), credit)  # gap 0
    assert fairness_verdict([unfair], [fair], Fairness(groups=["student"], max_gap=0.6, margin=None))[0]
    assert not fairness_verdict([unfair], [fair], Fairness(groups=["student"], max_gap=0.6, margin=0.1))[0]
