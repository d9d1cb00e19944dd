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

Factory = Callable[[int, str | None], BaseEstimator]  # (seed, class weight) -> an unfitted estimator

CANDIDATES: dict[Task, dict[str, Factory]] = {
    "regression": {
        "ridge": lambda seed, _: Ridge(),
        "random_forest": lambda seed, _: RandomForestRegressor(random_state=seed, n_jobs=2),
        "hist_gradient_boosting": lambda seed, _: HistGradientBoostingRegressor(random_state=seed),
    },
    # Every classifier here takes class weights: "balanced" weighs each class by the inverse of its
    # share, so that a rare class counts as much as a common one in the fit.
    "classification": {
        "logistic_regression": lambda seed, weight: LogisticRegression(max_iter=2000, class_weight=weight),
        "random_forest": lambda seed, weight: RandomForestClassifier(random_state=seed, n_jobs=2, class_weight=weight),
        "hist_gradient_boosting": lambda seed, weight: HistGradientBoostingClassifier(
            random_state=seed, class_weight=weight
        ),
    },
}


def make_estimator(task: Task, name: str, *, seed: int, class_weight: str | None = None) -> BaseEstimator:
    try:
        factory = CANDIDATES[task][name]
    except KeyError:
        raise ValueError(f"unknown algorithm '{name}' for {task}; known: {sorted(CANDIDATES[task])}") from None
    return factory(seed, class_weight)
