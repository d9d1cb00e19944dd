"""A classifier's decision threshold, chosen on the validation window by the use case's rule.

A probability is not a decision. With 3 % positives, 0.5 labels almost everyone negative; where a
missed positive costs ten false alarms, the threshold that costs least is far lower. The rule is
declared in the YAML (``decision``) and applied here to the winning candidate's probabilities on
the validation window (rows it was not fitted on, older than the test window that then judges it).

Every distinct probability is a candidate threshold ("positive when the probability is at least
t"), and so is one above them all (nobody positive): the counts of true and false positives at
each come from one sort, so the choice is exact, not a grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.usecase import Decision

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    rule: str
    precision: float  # on the validation window, at the threshold
    recall: float
    f1: float
    cost_per_row: float | None  # with the cost rule: the expected cost of one decision

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def operating_points(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, np.ndarray]:
    """Thresholds, highest first, with the true and false positives of "score >= threshold"."""
    y = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(y_score, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    above_all = np.nextafter(s[0], np.inf) if len(s) else DEFAULT_THRESHOLD
    return {
        "threshold": np.r_[above_all, s[last]],
        "tp": np.r_[0, tp].astype(np.float64),
        "fp": np.r_[0, fp].astype(np.float64),
    }


def choose_threshold(y_true: np.ndarray, y_score: np.ndarray, decision: Decision) -> ThresholdChoice:
    """The threshold ``decision`` asks for on these labels and probabilities (1 = positive)."""
    y = np.asarray(y_true, dtype=np.int64)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValueError(
            f"the validation window holds {positives} positive rows of {len(y)}: "
            "no threshold can be chosen on one class"
        )
    points = operating_points(y, y_score)
    tp, fp = points["tp"], points["fp"]
    fn = positives - tp
    recall = tp / positives
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)  # nobody positive: no error
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    cost = None
    if decision.cost_false_negative is not None:
        cost = (decision.cost_false_negative * fn + decision.cost_false_positive * fp) / len(y)
        best = int(np.argmin(cost))  # the first minimum: the highest threshold among equals
    elif decision.target_recall is not None:
        # recall only grows as the threshold falls: the first that reaches the target is the highest
        best = int(np.flatnonzero(recall >= decision.target_recall - 1e-12)[0])
    else:
        best = int(np.argmax(f1))
    return ThresholdChoice(
        threshold=float(points["threshold"][best]),
        rule=decision.describe(),
        precision=float(precision[best]),
        recall=float(recall[best]),
        f1=float(f1[best]),
        cost_per_row=None if cost is None else float(cost[best]),
    )


def default_choice(y_true: np.ndarray, y_score: np.ndarray) -> ThresholdChoice:
    """0.5, for a use case that declares no rule, with what it does on the same window."""
    from models.metrics import evaluate

    m = evaluate("classification", y_true, y_score, threshold=DEFAULT_THRESHOLD)
    # nobody labelled positive: precision 1 (no false alarm), as choose_threshold counts it
    precision = m["precision"] if m["tp"] + m["fp"] else 1.0
    return ThresholdChoice(
        DEFAULT_THRESHOLD, "default 0.5 (no decision rule declared)", precision, m["recall"], m["f1"], None
    )


def registered_threshold(tags: dict[str, str]) -> float:
    """A version's decision threshold from its registry tags; 0.5 for one registered without it."""
    return float(tags.get("decision_threshold", DEFAULT_THRESHOLD))
