"""The candidate algorithms a use case may name, and how each is built."""

from __future__ import annotations

from collections.abc import Callable

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from core.usecase import Task

Factory = Callable[[int], BaseEstimator]

CANDIDATES: dict[Task, dict[str, Factory]] = {
    "regression": {
        "ridge": lambda seed: Ridge(),
        "random_forest": lambda seed: RandomForestRegressor(random_state=seed, n_jobs=2),
        "hist_gradient_boosting": lambda seed: HistGradientBoostingRegressor(random_state=seed),
    },
    "classification": {
        "logistic_regression": lambda seed: LogisticRegression(max_iter=2000),
        "random_forest": lambda seed: RandomForestClassifier(random_state=seed, n_jobs=2, class_weight="balanced"),
        "hist_gradient_boosting": lambda seed: HistGradientBoostingClassifier(random_state=seed),
    },
}


def make_estimator(task: Task, name: str, *, seed: int) -> BaseEstimator:
    try:
        return CANDIDATES[task][name](seed)
    except KeyError:
        raise ValueError(f"unknown algorithm '{name}' for {task}; known: {sorted(CANDIDATES[task])}") from None
