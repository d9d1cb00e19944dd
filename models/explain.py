"""Why a model predicted what it did, for one record: exact Shapley values of its input features.

The value of a set S of features is the model's average output when the record's values of S are
kept and the other features take the values of each row of a background sample (rows of the
training data, registered with the model): the interventional expectation. Each feature's
contribution is its Shapley value over every subset of the others, computed exactly (2^n
subsets of n features, all predicted in one call), so the contributions add up to the
prediction minus the base value (the average output over the background) up to float rounding.

Model-agnostic: it needs only the served model's ``predict`` over records, the compiled model or
the pipeline alike, and NumPy. Exact enumeration suits the few features of a tabular use case;
past ``MAX_FEATURES`` it refuses rather than approximate silently.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_FEATURES = 12  # 4,096 subsets times the background rows, per record
BACKGROUND_ROWS = 32  # training rows registered with a model as its background
PREDICT_ROWS = 200_000  # coalition rows per predict call of a global summary


@dataclass(frozen=True)
class Explanation:
    prediction: float
    base_value: float
    contributions: dict[str, float]


def shapley_weights(n: int) -> np.ndarray:
    """Weight of a subset of size s (of the other n - 1 features): s! (n - s - 1)! / n!."""
    return np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])


def explain(
    predict: Callable[[list[dict[str, Any]]], np.ndarray],
    record: Mapping[str, Any],
    background: Sequence[Mapping[str, Any]],
    features: Sequence[str],
) -> Explanation:
    """The exact Shapley values of ``features`` for ``record`` against ``background``."""
    n = _check(features, len(background))
    subsets = 1 << n
    rows = [
        {f: (record[f] if mask >> i & 1 else row[f]) for i, f in enumerate(features)}
        for mask in range(subsets)
        for row in background
    ]
    value = np.asarray(predict(rows), dtype=np.float64).reshape(subsets, len(background)).mean(axis=1)
    return Explanation(
        prediction=float(value[-1]),
        base_value=float(value[0]),
        contributions=dict(zip(features, _contributions(value, n), strict=True)),
    )


def explain_columns(
    predict: Callable[[dict[str, np.ndarray]], np.ndarray],
    records: Mapping[str, np.ndarray],
    background: Mapping[str, np.ndarray],
    features: Sequence[str],
    *,
    predict_rows: int = PREDICT_ROWS,
) -> tuple[np.ndarray, float]:
    """The same values for many records at once, as columns (one array per feature), for a global
    summary: a (records x features) matrix of contributions, and the base value. ``predict`` takes
    columns too (the training flow wraps them in the pipeline's frame)."""
    rows = len(next(iter(background.values())))
    n = _check(features, rows)
    subsets = 1 << n
    keep = ((np.arange(subsets)[:, None] >> np.arange(n)) & 1).astype(bool).repeat(rows, axis=0)
    count = len(next(iter(records.values())))
    out = np.empty((count, n))
    base = 0.0
    per_call = max(1, predict_rows // (subsets * rows))  # records per predict call: few calls, bounded memory
    for start in range(0, count, per_call):
        chosen = range(start, min(start + per_call, count))
        columns = {
            f: np.concatenate(
                [np.where(keep[:, j], records[f][i], np.tile(np.asarray(background[f]), subsets)) for i in chosen]
            )
            for j, f in enumerate(features)
        }
        values = np.asarray(predict(columns), dtype=np.float64).reshape(len(chosen), subsets, rows).mean(axis=2)
        for i, value in zip(chosen, values, strict=True):
            out[i], base = _contributions(value, n), float(value[0])
    return out, base


def _check(features: Sequence[str], background_rows: int) -> int:
    n = len(features)
    if n > MAX_FEATURES:
        raise ValueError(f"exact explanations cover at most {MAX_FEATURES} features; this model has {n}")
    if not background_rows:
        raise ValueError("an explanation needs background rows")
    return n


def _contributions(value: np.ndarray, n: int) -> np.ndarray:
    """Each feature's Shapley value from the value of every subset (``value[mask]``, bit i: feature i kept)."""
    out = np.empty(n)
    for i, (without, weights) in enumerate(_coalitions(n)):
        out[i] = np.sum(weights * (value[without | 1 << i] - value[without]))
    return out


@functools.cache
def _coalitions(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per feature i, the subsets without it and their Shapley weights: the same for every record of
    a model, so worked out once per feature count, not per record."""
    subsets = 1 << n
    sizes = np.array([bin(mask).count("1") for mask in range(subsets)])
    weights = shapley_weights(n)
    out = []
    for i in range(n):
        without = np.array([mask for mask in range(subsets) if not mask >> i & 1])
        out.append((without, weights[sizes[without]]))
    return out


SUMMARY_ROWS = 16  # test rows whose explanations make a model's global summary (a few seconds for 9 features)
SUMMARY_BACKGROUND = 16  # of the registered background rows, against which they are computed


def global_explanation(model: Any, rows: Any, background: Any, use_case: Any) -> tuple[np.ndarray, float]:
    """Exact Shapley values of a fitted pipeline for test rows (pandas frames of the use case's
    features), against training background rows: the global summary's matrix and base value.

    The interventional values that SHAP's tree explainer computes, by enumeration rather than
    over the trees: any model, and no dependency beyond NumPy and pandas.
    """
    import pandas as pd

    from models.metrics import model_output

    features = list(use_case.features)
    numeric = set(use_case.numeric_features)

    def predict(columns: dict[str, np.ndarray]) -> np.ndarray:
        frame = pd.DataFrame({f: columns[f].astype("float64" if f in numeric else object) for f in features})
        return model_output(model, frame, use_case.task)

    as_columns = lambda frame: {f: frame[f].to_numpy(dtype=object) for f in features}  # noqa: E731
    return explain_columns(predict, as_columns(rows), as_columns(background), features)
