"""The decision threshold: each rule on validation sets whose best threshold is known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from core.usecase import Decision, UseCaseError, parse_use_case
from models.threshold import choose_threshold, default_choice, operating_points
from tests.conftest import USECASES

#                 positives score 0.9, 0.6, 0.3; negatives 0.8, 0.5, 0.2, 0.1
Y = np.array([1, 0, 1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.6, 0.5, 0.3, 0.2, 0.1])


def test_operating_points_count_positives_at_every_distinct_score_and_above_them_all():
    points = operating_points(np.array([1, 0, 1]), np.array([0.7, 0.7, 0.2]))
    assert points["threshold"][0] > 0.7 and list(points["threshold"][1:]) == [0.7, 0.2]  # ties move together
    assert list(points["tp"]) == [0, 1, 2] and list(points["fp"]) == [0, 1, 1]


def test_the_cost_rule_minimises_the_cost_by_hand():
    # cost(t) = 10 FN + 1 FP. t=0.9: 2 FN -> 20; t=0.6: 1 FN + 1 FP -> 11; t=0.3: 2 FP -> 2; t=0.1: 4 FP -> 4
    choice = choose_threshold(Y, P, Decision(cost_false_negative=10, cost_false_positive=1))
    assert choice.threshold == 0.3 and choice.recall == 1.0 and choice.precision == 0.6
    assert choice.cost_per_row == pytest.approx(2 / 7) and "10 per missed positive" in choice.rule
    # when false alarms cost more than misses, nobody is worth flagging but the surest
    strict = choose_threshold(Y, P, Decision(cost_false_negative=1, cost_false_positive=10))
    assert strict.threshold == 0.9 and strict.precision == 1.0 and strict.recall == pytest.approx(1 / 3)


def test_the_recall_rule_takes_the_highest_threshold_that_reaches_it():
    choice = choose_threshold(Y, P, Decision(target_recall=0.6))
    assert choice.threshold == 0.6 and choice.recall == pytest.approx(2 / 3)  # 0.9 catches only 1 of 3


def test_the_f1_rule_and_the_default():
    best = choose_threshold(Y, P, Decision(best_f1=True))
    # F1 at 0.9: 0.5; 0.8: 0.4; 0.6: 0.571; 0.5: 0.5; 0.3: 0.75; 0.2: 0.667; 0.1: 0.6
    assert best.threshold == 0.3 and best.f1 == pytest.approx(0.75)
    default = default_choice(Y, P)
    assert (default.threshold, default.precision, default.recall) == (0.5, 0.5, pytest.approx(2 / 3))


def test_one_class_in_the_validation_window_is_a_clear_error():
    with pytest.raises(ValueError, match="holds 0 positive rows of 3"):
        choose_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3]), Decision(best_f1=True))


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"cost_false_negative": -1, "cost_false_positive": 1}, "decision.cost_false_negative"),
        ({"cost_false_negative": 5}, "give both cost_false_negative and cost_false_positive"),
        ({"target_recall": 0.8, "best_f1": True}, "give exactly one rule"),
        ({"target_recall": 1.5}, "decision.target_recall"),
    ],
)
def test_a_bad_rule_is_refused_at_load_naming_the_field(decision, message):
    data = yaml.safe_load((USECASES / "credit_default.yaml").read_text())
    data["decision"] = decision
    with pytest.raises(UseCaseError, match=message):
        parse_use_case(data, origin="test.yaml", base_dir=USECASES)


def test_a_threshold_rule_on_a_regression_use_case_is_refused():
    data = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    data["decision"] = {"best_f1": True}
    with pytest.raises(UseCaseError, match=r"decision \(a threshold rule\) applies to classification only"):
        parse_use_case(data, origin="test.yaml", base_dir=USECASES)
    with pytest.raises(ValidationError):
        Decision()
