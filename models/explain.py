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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_FEATURES = 12  # 4,096 subsets times the background rows, per record
BACKGROUND_ROWS = 32  # training rows registered with a model as its background


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
    n = len(features)
    if n > MAX_FEATURES:
        raise ValueError(f"exact explanations cover at most {MAX_FEATURES} features; this model has {n}")
    if not background:
        raise ValueError("an explanation needs background rows")
    subsets = 1 << n
    rows = [
        {f: (record[f] if mask >> i & 1 else row[f]) for i, f in enumerate(features)}
        for mask in range(subsets)
        for row in background
    ]
    value = np.asarray(predict(rows), dtype=np.float64).reshape(subsets, len(background)).mean(axis=1)
    sizes = np.array([bin(mask).count("1") for mask in range(subsets)])
    weights = shapley_weights(n)
    contributions = {}
    for i, feature in enumerate(features):
        without = np.array([mask for mask in range(subsets) if not mask >> i & 1])
        contributions[feature] = float(np.sum(weights[sizes[without]] * (value[without | 1 << i] - value[without])))
    return Explanation(prediction=float(value[-1]), base_value=float(value[0]), contributions=contributions)
