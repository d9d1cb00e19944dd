"""Metrics that fit the task, computed the same way in training and in monitoring."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.usecase import Task

# GridSearchCV scorer per metric name (sign convention: greater is better).
SCORERS: dict[str, str] = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "roc_auc": "roc_auc",
    "f1": "f1",
    "precision": "precision",
    "recall": "recall",
    "accuracy": "accuracy",
    "log_loss": "neg_log_loss",
    "pr_auc": "average_precision",
    "brier": "neg_brier_score",
}


def model_output(model: Any, X: Any, task: Task) -> np.ndarray:
    """Regression: the prediction. Classification: the probability of the positive class."""
    if task == "classification":
        return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)
    return np.asarray(model.predict(X), dtype=np.float64)


def evaluate(task: Task, y_true: np.ndarray, y_score: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of the task. Undefined values (ROC AUC on one class) are NaN, never an exception."""
    # Here, not at the top: the serving process imports this module for ``model_output`` alone.
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on zero rows")
    if task == "regression":
        return {
            "rmse": float(skm.root_mean_squared_error(y_true, y_score)),
            "mae": float(skm.mean_absolute_error(y_true, y_score)),
            "r2": float(skm.r2_score(y_true, y_score)) if len(y_true) > 1 else math.nan,
        }
    y_pred = (y_score >= threshold).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "roc_auc": float(skm.roc_auc_score(y_true, y_score)) if both_classes else math.nan,
        # With few positives ROC AUC flatters a model; the area under the precision-recall curve
        # (average precision) does not. Its baseline is the positive share, not 0.5.
        "pr_auc": float(skm.average_precision_score(y_true, y_score)) if both_classes else math.nan,
        # How far the probabilities are from what happened (mean squared error of the probability):
        # lower is better, and it rewards calibrated probabilities, not only a good ranking.
        "brier": float(skm.brier_score_loss(y_true, y_score, labels=[0, 1])),
        "log_loss": float(skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "tn": float(tn),
        "fp": float(fp),
        "fn": float(fn),
        "tp": float(tp),
    }


def bootstrap_intervals(
    task: Task,
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: float = 0.5,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric of the task: rows drawn with replacement.

    A test window of a few hundred rows says a metric to about a few per cent at best; the interval
    says how much, so that two models are not told apart by noise. Resamples on which a metric is
    undefined (one class only) are left out of that metric's interval.
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        rows = rng.integers(0, len(y_true), len(y_true))
        for name, value in evaluate(task, y_true[rows], y_score[rows], threshold=threshold).items():
            if not math.isnan(value):
                draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        for name, values in draws.items()
        if name not in ("tn", "fp", "fn", "tp")
    }
