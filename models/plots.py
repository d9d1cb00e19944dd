"""Diagnostic plots logged with every training run (matplotlib, headless)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.usecase import Task


@dataclass(frozen=True)
class ShapleySummary:
    """Exact Shapley values of some test rows (rows x features), the rows' feature values, the base value."""

    features: list[str]
    values: np.ndarray
    feature_values: dict[str, np.ndarray]
    base_value: float


def _shapley_figure(plt: Any, summary: ShapleySummary) -> Any:
    """One row of dots per feature, most influential on top: each dot a test row's contribution,
    coloured by the row's value of that feature (low blue, high red; grey for a category)."""
    order = np.argsort(np.abs(summary.values).mean(axis=0))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) + 1.5))
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(summary.values))
    for y, j in enumerate(order):
        raw = summary.feature_values[summary.features[j]]
        try:
            numbers = raw.astype(float)
            span = np.nanmax(numbers) - np.nanmin(numbers)
            colour = plt.cm.coolwarm((numbers - np.nanmin(numbers)) / span if span > 0 else np.full(len(numbers), 0.5))
        except (TypeError, ValueError):
            colour = "grey"
        ax.scatter(summary.values[:, j], y + jitter, c=colour, s=14, alpha=0.8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(range(len(order)), [summary.features[j] for j in order])
    ax.set(
        xlabel=f"contribution to the prediction (base value {summary.base_value:.4g})",
        title="Exact Shapley values on test rows",
    )
    return fig


def save_plots(
    out_dir: Path,
    *,
    task: Task,
    y_true: np.ndarray,
    y_score: np.ndarray,
    importance: dict[str, float],
    threshold: float | None = None,
    uncalibrated: np.ndarray | None = None,
    shapley: ShapleySummary | None = None,
) -> list[Path]:
    """Diagnostic plots of the test window; a classifier's confusion matrix at its decision threshold.

    ``uncalibrated``: a calibrated classifier's raw probabilities, drawn beside the calibrated ones
    in the reliability plot. ``shapley``: each feature's contributions to test rows' predictions
    (models.explain), drawn one row of dots per feature.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def _save(fig: plt.Figure, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    if task == "regression":
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.scatter(y_true, y_score, s=4, alpha=0.4)
        lim = [0, float(max(np.max(y_true), np.max(y_score)))]
        ax1.plot(lim, lim, "k--", lw=1)
        ax1.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test window)")
        residuals = y_true - y_score
        ax2.hist(residuals, bins=40)
        ax2.set(xlabel="actual - predicted", title="Residuals")
        _save(fig, "predicted_vs_actual.png")
    else:
        fig, ax = plt.subplots(figsize=(5, 4))
        RocCurveDisplay.from_predictions(y_true, y_score, ax=ax)
        ax.set_title("ROC (test window)")
        _save(fig, "roc_curve.png")
        fig, ax = plt.subplots(figsize=(5, 4))
        PrecisionRecallDisplay.from_predictions(y_true, y_score, ax=ax, plot_chance_level=True)
        ax.set_title("Precision-recall (test window)")
        _save(fig, "precision_recall_curve.png")
        # Reliability: of the rows given a probability near p, did a share near p turn out positive?
        # Quantile bins, so that each point holds as many rows when positives are rare.
        fig, ax = plt.subplots(figsize=(5, 4))
        if uncalibrated is not None:
            CalibrationDisplay.from_predictions(
                y_true, uncalibrated, n_bins=10, strategy="quantile", ax=ax, name="raw model"
            )
        name = "calibrated" if uncalibrated is not None else None
        CalibrationDisplay.from_predictions(y_true, y_score, n_bins=10, strategy="quantile", ax=ax, name=name)
        ax.set_title("Reliability (test window)")
        _save(fig, "reliability_curve.png")
        cut = 0.5 if threshold is None else threshold
        fig, ax = plt.subplots(figsize=(4, 4))
        ConfusionMatrixDisplay.from_predictions(y_true, (y_score >= cut).astype(int), ax=ax)
        ax.set_title(f"Confusion matrix at threshold {cut:.3g}")
        _save(fig, "confusion_matrix.png")

    if shapley is not None:
        _save(_shapley_figure(plt, shapley), "shapley_summary.png")

    names = sorted(importance, key=importance.__getitem__)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="permutation importance (promotion metric)", title="Feature importance")
    _save(fig, "feature_importance.png")
    return paths
