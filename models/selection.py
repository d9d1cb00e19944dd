"""Which features earn their place: feature sets compared with the same time-series cross-validation.

Pure: the training window and the winning candidate in, one score per feature set out. Each set is
scored with the winner's algorithm and parameters, on the same expanding-window folds that tuned it,
so the only thing that differs between two rows of the table is the features:

- ``all``: every feature of the use case (the reference row);
- ``without <group>``: all but one group of the YAML's ``training.feature_groups``;
- ``top <k>``: the k features with the largest permutation importance on the test window.

A set whose score is about as good as ``all`` with fewer features says the others add nothing;
one that is clearly worse says the group it leaves out carries signal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score

from core.usecase import UseCase
from models.frames import coerce_features, target_vector
from models.metrics import SCORERS
from models.splits import time_series_cv


@dataclass(frozen=True)
class FeatureSetScore:
    name: str
    features: list[str]
    cv_mean: float  # the promotion metric, as the use case reads it (RMSE in its units, ROC AUC...)
    cv_std: float
    change: float  # cv_mean minus that of "all": for a lower-is-better metric, positive means worse

    def as_row(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "features": len(self.features),
            "cv_mean": self.cv_mean,
            "cv_std": self.cv_std,
            "change_vs_all": self.change,
        }


def feature_sets(use_case: UseCase, importance: dict[str, float]) -> dict[str, list[str]]:
    """The sets to compare, in the order of the table."""
    features = list(use_case.features)
    sets = {"all": features}
    for group, members in use_case.training.feature_groups.items():
        rest = [f for f in features if f not in members]
        if rest:
            sets[f"without {group}"] = rest
    k = use_case.training.feature_selection.top_k
    if k is not None and importance:
        ranked = sorted(features, key=lambda f: importance.get(f, 0.0), reverse=True)[:k]
        sets[f"top {k}"] = [f for f in features if f in ranked]  # in the use case's order
    return sets


def restricted(use_case: UseCase, features: list[str]) -> UseCase:
    """The use case with only ``features`` (and the periodic encodings of those that remain)."""
    cyclical = {f: p for f, p in use_case.training.cyclical.items() if f in features}
    training = use_case.training.model_copy(update={"cyclical": cyclical})
    return use_case.model_copy(update={"features": features, "training": training})


def compare_feature_sets(
    frame: pd.DataFrame, use_case: UseCase, *, algorithm: str, params: dict[str, Any], importance: dict[str, float]
) -> list[FeatureSetScore]:
    """Score every set of ``feature_sets`` on ``frame`` (the tuning window) with the time-series CV."""
    from models.training import make_pipeline, with_params

    metric = use_case.promotion.metric
    negated = SCORERS[metric].startswith("neg_")  # scorers maximise: errors come negated
    cv = time_series_cv(use_case.training.split.cv_folds)
    y = target_vector(frame, use_case)
    scores: list[tuple[str, list[str], np.ndarray]] = []
    for name, features in feature_sets(use_case, importance).items():
        subset = restricted(use_case, features)
        model = with_params(make_pipeline(subset, algorithm), params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            folds = cross_val_score(
                model, coerce_features(frame, subset), y, scoring=SCORERS[metric], cv=cv, n_jobs=1, error_score="raise"
            )
        scores.append((name, features, -folds if negated else folds))
    reference = float(scores[0][2].mean())
    return [
        FeatureSetScore(name, features, float(values.mean()), float(values.std()), float(values.mean()) - reference)
        for name, features, values in scores
    ]


def as_markdown(scores: list[FeatureSetScore], use_case: UseCase) -> str:
    """The table, as it goes on the training run (``feature_sets.md``)."""
    metric = use_case.promotion.metric
    better = "lower" if not use_case.higher_is_better else "higher"
    lines = [
        f"| feature set | features | CV {metric} (mean) | std | change vs all ({better} is better) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {s.name} | {', '.join(s.features)} | {s.cv_mean:.4g} | {s.cv_std:.2g} | {s.change:+.4g} |"
            for s in scores
        ),
    ]
    return "\n".join(lines) + "\n"
