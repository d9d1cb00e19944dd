"""Does the model treat the groups of a sensitive attribute, or the slices of the data, alike?

Per version, on the test window (and by monitoring, on labelled live traffic), with fairlearn's
``MetricFrame`` for the per-group numbers:

- classification, at the version's decision threshold: per group the selection rate (share
  labelled positive), the true positive rate and the false positive rate; across groups the
  demographic parity difference (of selection rates) and the equalized-odds difference (the larger
  of the TPR and FPR differences). The equalized-odds difference is the gated gap: it compares
  error rates among rows whose truth is the same, so a group is not penalised for its base rate;
- regression: per slice RMSE and MAE; the gated gap is the spread of RMSE across slices relative
  to the overall RMSE ((max - min) / overall).

``fairness_verdict`` is the promotion gate: a candidate whose gap exceeds the YAML's ``max_gap``,
or widens the champion's by more than ``margin`` (when one is set), is not promoted, and the reason
says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.usecase import Fairness, UseCase

GATED = {"classification": "equalized_odds_difference", "regression": "relative_rmse_gap"}


@dataclass(frozen=True)
class GroupReport:
    attribute: str
    by_group: dict[str, dict[str, float]]  # group value -> metric -> value, with its row count
    gaps: dict[str, float]
    gated: str  # the name of the gap the promotion gate reads

    @property
    def gap(self) -> float:
        return self.gaps[self.gated]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _classification(y: np.ndarray, labels: np.ndarray, groups: pd.Series) -> tuple[dict[str, Any], dict[str, float]]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    frame = MetricFrame(
        metrics={
            "rows": lambda t, p: float(len(t)),
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=y,
        y_pred=labels,
        sensitive_features=groups,
    )
    gaps = {
        "demographic_parity_difference": float(demographic_parity_difference(y, labels, sensitive_features=groups)),
        "equalized_odds_difference": float(equalized_odds_difference(y, labels, sensitive_features=groups)),
    }
    return frame.by_group.to_dict(orient="index"), gaps


def _regression(y: np.ndarray, predictions: np.ndarray, groups: pd.Series) -> tuple[dict[str, Any], dict[str, float]]:
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    frame = MetricFrame(
        metrics={"rows": lambda t, p: float(len(t)), "rmse": root_mean_squared_error, "mae": mean_absolute_error},
        y_true=y,
        y_pred=predictions,
        sensitive_features=groups,
    )
    rmse = frame.by_group["rmse"]
    overall = float(frame.overall["rmse"])
    gap = float((rmse.max() - rmse.min()) / overall) if overall > 0 else 0.0
    return frame.by_group.to_dict(orient="index"), {"relative_rmse_gap": gap}


def assess(
    attributes: pd.DataFrame, y_true: np.ndarray, y_score: np.ndarray, use_case: UseCase, *, threshold: float = 0.5
) -> list[GroupReport]:
    """One report per declared group column: the rows' values of it are in ``attributes``."""
    if use_case.fairness is None:
        return []
    y, score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    reports = []
    for attribute in use_case.fairness.groups:
        if attribute not in attributes.columns:
            raise ValueError(f"fairness group '{attribute}' is not in the data to assess")
        groups = attributes[attribute].astype(str).reset_index(drop=True)
        if use_case.task == "classification":
            by_group, gaps = _classification(y.astype(int), (score >= threshold).astype(int), groups)
        else:
            by_group, gaps = _regression(y.astype(float), score, groups)
        reports.append(
            GroupReport(
                attribute=attribute,
                by_group={str(k): {m: float(v) for m, v in row.items()} for k, row in by_group.items()},
                gaps={k: (0.0 if np.isnan(v) else v) for k, v in gaps.items()},
                gated=GATED[use_case.task],
            )
        )
    return reports


def fairness_verdict(
    candidate: list[GroupReport], champion: list[GroupReport] | None, cfg: Fairness
) -> tuple[bool, str]:
    """(passes, why): the candidate's gated gaps against the limit and against the champion's."""
    champion_gaps = {r.attribute: r.gap for r in champion or []}
    for report in candidate:
        name = report.gated.replace("_", " ")
        if report.gap > cfg.max_gap:
            return False, f"{name} for '{report.attribute}' {report.gap:.3f} exceeds the limit {cfg.max_gap:.3f}"
        before = champion_gaps.get(report.attribute)
        if cfg.margin is not None and before is not None and report.gap > before + cfg.margin:
            return False, (
                f"{name} for '{report.attribute}' widens from {before:.3f} (champion) to {report.gap:.3f}, "
                f"more than the margin {cfg.margin:.3f}"
            )
    gaps = ", ".join(f"{r.attribute} {r.gap:.3f}" for r in candidate)
    return True, f"fair within {cfg.max_gap:.3f}: {gaps}" if candidate else "no fairness groups declared"


def flat_metrics(reports: list[GroupReport]) -> dict[str, float]:
    """The gaps as tracking metrics (``fairness_<attribute>_<gap>``)."""
    return {f"fairness_{r.attribute}_{name}": value for r in reports for name, value in r.gaps.items()}
