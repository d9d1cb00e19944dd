"""Train every candidate with a small time-aware search, pick the best, score it on held-out data.

Pure: takes a frame, returns fitted objects and numbers. Tracking and
registration happen in ``models.registry``; orchestration in ``pipelines``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from core.progress import Step
from core.usecase import EVENT_TIME_COLUMN, UseCase
from models.algorithms import make_estimator
from models.calibration import Calibration, CalibrationChoice, choose_calibration, with_calibration
from models.features import build_preprocessor
from models.frames import coerce_features, target_vector
from models.metrics import SCORERS, evaluate, model_output
from models.splits import TimeSplit, time_ordered_split, time_series_cv
from models.threshold import DEFAULT_THRESHOLD, ThresholdChoice, choose_threshold, default_choice

# Given what every fit reads (the tuning rows, the folds' row indices), a context in which fits can
# find it wherever they run (a cluster copies it to each worker once, not once per fit).
Share = Callable[[Sequence[Any]], AbstractContextManager[Any]]


@dataclass(frozen=True)
class CandidateResult:
    algorithm: str
    best_params: dict[str, Any]
    cv_score: float
    validation_metrics: dict[str, float]
    fit_seconds: float
    # The tuned candidate's output on the validation window (what calibration and the threshold start from).
    validation_output: np.ndarray = field(repr=False, compare=False)


@dataclass
class TrainingResult:
    model: Pipeline
    algorithm: str
    params: dict[str, Any]
    candidates: list[CandidateResult]
    test_metrics: dict[str, float]
    split: TimeSplit
    reference: pd.DataFrame
    feature_importance: dict[str, float] = field(default_factory=dict)
    # Classification: the decision threshold chosen on the validation window (models.threshold),
    # on the calibrated probabilities when a calibration was kept (models.calibration).
    decision: ThresholdChoice | None = None
    calibration: CalibrationChoice | None = None

    @property
    def kept_calibration(self) -> Calibration | None:
        """The calibration the version is registered with; None when its probabilities are served raw."""
        return self.calibration.calibration if self.calibration else None

    @property
    def answering_model(self) -> Any:
        """The model as the registered version answers: the pipeline, its probabilities calibrated if so chosen."""
        return with_calibration(self.model, self.kept_calibration)


def make_pipeline(use_case: UseCase, algorithm: str) -> Pipeline:
    """The one object that goes to the registry: preprocessing and model together."""
    return Pipeline(
        [
            ("features", build_preprocessor(use_case)),
            (
                "model",
                make_estimator(
                    use_case.task,
                    algorithm,
                    seed=use_case.training.random_state,
                    class_weight=use_case.training.class_weight,
                ),
            ),
        ]
    )


def tuning_window(split: TimeSplit, use_case: UseCase) -> pd.DataFrame:
    """The rows model selection runs on: the training window, or its newest ``tuning_rows``.

    Tuning cost grows with rows x candidates x folds x grid points; past a point more rows change
    the ranking of candidates little. The newest rows are the ones most like what comes next.
    """
    rows = use_case.training.tuning_rows
    return split.train if rows is None else split.train.tail(rows)


def _selection_score(use_case: UseCase, metrics: dict[str, float]) -> float:
    score = metrics[use_case.promotion.metric]
    return score if use_case.higher_is_better else -score


def fit_count(use_case: UseCase) -> int:
    """The fits model selection makes: every candidate's grid, once per time-series fold."""
    grids = [math.prod(len(values) for values in grid.values()) for grid in use_case.training.candidates.values()]
    return sum(grids) * use_case.training.split.cv_folds


def train(
    frame: pd.DataFrame,
    use_case: UseCase,
    *,
    on_fits: Step | None = None,
    n_jobs: int = 1,
    share: Share | None = None,
) -> TrainingResult:
    """Tune each candidate with time-series CV on the training window, select on validation, refit, test.

    The final model is refitted on train + validation with the winning
    parameters and scored once on the untouched, newest test window. ``on_fits(n, message)`` hears
    of each candidate's fits as they finish (a progress bar's step). ``n_jobs``: how many of a
    candidate's fits (grid x folds) run at once, through joblib's backend (the caller may point it
    at a Dask cluster); every fit is seeded, so the winner is the same however they are spread.
    ``share``: see ``Share``.
    """
    split = split_for_training(frame, use_case)
    tuning = tuning_window(split, use_case)
    X_train, y_train = coerce_features(tuning, use_case), target_vector(tuning, use_case)
    X_val, y_val = coerce_features(split.validation, use_case), target_vector(split.validation, use_case)
    candidates = select(use_case, X_train, y_train, X_val, y_val, on_fits=on_fits, n_jobs=n_jobs, share=share)
    best = best_candidate(candidates, use_case)
    algorithm, params = best.algorithm, best.best_params
    best_val_output = best.validation_output
    calibration = decide_calibration(use_case, algorithm, params, X_train, y_train, y_val, best_val_output)
    kept = calibration.calibration if calibration else None
    if kept is not None:
        best_val_output = kept.apply(best_val_output)
    decision = decide_threshold(use_case, y_val, best_val_output)
    train_val = pd.concat([split.train, split.validation])
    model = with_params(make_pipeline(use_case, algorithm), params)
    model.fit(coerce_features(train_val, use_case), target_vector(train_val, use_case))

    X_test, y_test = coerce_features(split.test, use_case), target_vector(split.test, use_case)
    answering = with_calibration(model, kept)  # what the registered version will answer
    threshold = decision.threshold if decision else DEFAULT_THRESHOLD
    test_output = model_output(answering, X_test, use_case.task)
    return TrainingResult(
        model=model,
        algorithm=algorithm,
        params=params,
        candidates=candidates,
        test_metrics=evaluate(use_case.task, y_test, test_output, threshold=threshold),
        split=split,
        reference=build_reference(answering, train_val, use_case),
        # On the pipeline's own output: calibration is monotone, so it moves no row past another.
        feature_importance=_importance(model, X_test, y_test, use_case),
        decision=decision,
        calibration=calibration,
    )


def split_for_training(frame: pd.DataFrame, use_case: UseCase) -> TimeSplit:
    """The labelled rows split by time into the training, validation and test windows."""
    missing = [c for c in [*use_case.features, use_case.target, EVENT_TIME_COLUMN] if c not in frame.columns]
    if missing:
        raise ValueError(f"training frame lacks columns {missing}")
    split = use_case.training.split
    return time_ordered_split(
        frame.dropna(subset=[use_case.target]),
        time_column=EVENT_TIME_COLUMN,
        validation_fraction=split.validation_fraction,
        test_fraction=split.test_fraction,
    )


def select(
    use_case: UseCase,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    on_fits: Step | None = None,
    n_jobs: int = 1,
    share: Share | None = None,
) -> list[CandidateResult]:
    """Every candidate tuned with time-series CV on the training rows and scored on validation (YAML order)."""
    folds = list(time_series_cv(use_case.training.split.cv_folds).split(X_train))  # the same arrays for every fit
    with share([X_train, y_train, *(rows for fold in folds for rows in fold)]) if share else nullcontext():
        return [
            _tune(use_case, name, grid, X_train, y_train, X_val, y_val, folds=folds, n_jobs=n_jobs, on_fits=on_fits)
            for name, grid in use_case.training.candidates.items()
        ]


def best_candidate(candidates: list[CandidateResult], use_case: UseCase) -> CandidateResult:
    """The best on validation; of candidates that score alike, the one the YAML lists first."""
    return max(candidates, key=lambda c: _selection_score(use_case, c.validation_metrics))


def _tune(
    use_case: UseCase,
    algorithm: str,
    grid: dict[str, list[Any]],
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    folds: list[tuple[np.ndarray, np.ndarray]],
    n_jobs: int,
    on_fits: Step | None,
) -> CandidateResult:
    """One candidate's grid searched over the time-series folds, its best scored on the validation window."""
    started = time.perf_counter()
    search = GridSearchCV(
        make_pipeline(use_case, algorithm),
        param_grid={f"model__{k}": v for k, v in grid.items()},
        scoring=SCORERS[use_case.promotion.metric],
        cv=folds,
        n_jobs=n_jobs,
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        search.fit(X_train, y_train)
    val_output = model_output(search.best_estimator_, X_val, use_case.task)
    val_metrics = evaluate(use_case.task, y_val, val_output)
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    if on_fits is not None:
        fits = len(search.cv_results_["params"]) * len(folds)
        on_fits(fits, f"[train] {algorithm}: {fits} fits, best {params}, validation {val_metrics}")
    return CandidateResult(
        algorithm, params, float(search.best_score_), val_metrics, time.perf_counter() - started, val_output
    )


def with_params(pipeline: Pipeline, params: dict[str, Any]) -> Pipeline:
    """A fresh copy of the pipeline with the model step's parameters set (names as in the grid)."""
    return clone(pipeline).set_params(**{f"model__{k}": v for k, v in params.items()})


def out_of_time_output(
    use_case: UseCase, algorithm: str, params: dict[str, Any], X: pd.DataFrame, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's output from the same pipeline fitted only on older rows: the time-series CV folds.

    The rows of the first fold's training part are never predicted (nothing is older than them).
    Returns the predicted rows' labels and outputs, oldest first.
    """
    labels, outputs = [], []
    for fit_rows, predicted_rows in time_series_cv(use_case.training.split.cv_folds).split(X):
        model = with_params(make_pipeline(use_case, algorithm), params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            model.fit(X.iloc[fit_rows], y[fit_rows])
        labels.append(y[predicted_rows])
        outputs.append(model_output(model, X.iloc[predicted_rows], use_case.task))
    return np.concatenate(labels), np.concatenate(outputs)


def decide_calibration(
    use_case: UseCase,
    algorithm: str,
    params: dict[str, Any],
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    y_val: np.ndarray,
    val_output: np.ndarray,
) -> CalibrationChoice | None:
    """Classification with ``calibration`` declared: a map fitted on the training window's
    out-of-time outputs, judged on the validation window (models.calibration)."""
    cfg = use_case.calibration
    if cfg is None or use_case.task != "classification":
        return None
    fit_y, fit_score = out_of_time_output(use_case, algorithm, params, X_train, y_train)
    return choose_calibration(
        fit_y=fit_y,
        fit_score=fit_score,
        judge_y=y_val,
        judge_score=val_output,
        methods=cfg.methods,
        min_positives=cfg.min_positives,
        min_gain=cfg.min_gain,
    )


def decide_threshold(use_case: UseCase, y_val: np.ndarray, val_output: np.ndarray) -> ThresholdChoice | None:
    """Classification: the threshold of the use case's rule on the validation window (0.5 without one)."""
    if use_case.task != "classification":
        return None
    if use_case.decision is None:
        return default_choice(y_val, val_output)
    return choose_threshold(y_val, val_output, use_case.decision)


def build_reference(model: Pipeline, frame: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """What monitoring compares live traffic with: training features, target and the model's predictions."""
    sample = frame.sample(n=min(len(frame), use_case.monitoring.reference_rows), random_state=0).sort_index()
    X = coerce_features(sample, use_case)
    out = X.copy()
    out["prediction"] = model_output(model, X, use_case.task)
    out["target"] = target_vector(sample, use_case)
    return out.reset_index(drop=True)


def _importance(model: Pipeline, X: pd.DataFrame, y: np.ndarray, use_case: UseCase) -> dict[str, float]:
    """Permutation importance on the test window: model-agnostic and in terms of the input columns."""
    n = min(len(X), 1500)
    result = permutation_importance(
        model, X.iloc[:n], y[:n], scoring=SCORERS[use_case.promotion.metric], n_repeats=3, random_state=0, n_jobs=1
    )
    return {f: float(v) for f, v in zip(X.columns, result.importances_mean, strict=True)}
