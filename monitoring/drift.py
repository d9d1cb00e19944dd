"""Compare live traffic with the training reference: per-feature drift, prediction drift, quality.

``summarize`` is pure (Evidently's result dict -> verdict) and unit-tested;
``run_report`` calls Evidently and writes the HTML and JSON of a run.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

PREDICTION, TARGET = "prediction", "target"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftSummary:
    rows: int
    drift_share: float
    threshold: float
    drift_detected: bool
    drifted_features: list[str]
    features: dict[str, ColumnDrift]
    prediction: ColumnDrift | None
    html_report: str | None = None
    quality: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_p_value(method: str) -> bool:
    # Small samples get statistical tests (drift when p < threshold); large ones distances (drift when >= threshold).
    return "p_value" in method


def column_drift(metric: dict[str, Any]) -> ColumnDrift:
    cfg = metric["config"]
    method, threshold, score = str(cfg.get("method", "")), float(cfg["threshold"]), float(metric["value"])
    drifted = score < threshold if _is_p_value(method) else score >= threshold
    return ColumnDrift(cfg["column"], method, score, threshold, drifted)


def summarize(result: dict[str, Any], *, features: list[str], threshold: float, rows: int) -> DriftSummary:
    """Turn Evidently's ``snapshot.dict()`` into one verdict: drift when the drifted share reaches the threshold."""
    per_column = {
        m["config"]["column"]: column_drift(m)
        for m in result["metrics"]
        if m["config"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    missing = [f for f in features if f not in per_column]
    if missing:
        raise ValueError(f"drift result has no entry for features {missing}")
    drifted = [f for f in features if per_column[f].drifted]
    share = len(drifted) / len(features)
    return DriftSummary(
        rows=rows,
        drift_share=share,
        threshold=threshold,
        drift_detected=share >= threshold,
        drifted_features=drifted,
        features={f: per_column[f] for f in features},
        prediction=per_column.get(PREDICTION),
    )


def run_report(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    task: Literal["regression", "classification"],
    threshold: float,
    out_dir: Path,
    name: str,
    drift_options: dict[str, Any] | None = None,
    workspace: str | Path | None = None,
    project: str | None = None,
) -> DriftSummary:
    """Run the Evidently report, save it as HTML and JSON, and summarise it.

    Quality metrics are added when every current row has its label. ``drift_options`` go to
    Evidently's ``DataDriftPreset`` (``num_method``, ``num_threshold``, ``cat_method``, ``cat_threshold``).
    With ``workspace``, the run is also added to that Evidently workspace under ``project`` (for ``evidently ui``).
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset, DataDriftPreset, RegressionPreset

    features = [*numerical, *categorical]
    labelled = TARGET in current.columns and current[TARGET].notna().all() and len(current) > 1
    columns = [*features, PREDICTION] + ([TARGET] if labelled else [])
    task_def: dict[str, Any] = {}
    if labelled:
        task_def = (
            {"regression": [Regression(target=TARGET, prediction=PREDICTION)]}
            if task == "regression"
            else {"classification": [BinaryClassification(target=TARGET, prediction_probas=PREDICTION)]}
        )
    numeric_cols = [*numerical, PREDICTION] + ([TARGET] if labelled and task == "regression" else [])
    categorical_cols = categorical + ([TARGET] if labelled and task == "classification" else [])
    definition = DataDefinition(numerical_columns=numeric_cols, categorical_columns=categorical_cols, **task_def)
    metrics: list[Any] = [
        DataDriftPreset(columns=features, drift_share=threshold, **(drift_options or {})),
        ValueDrift(column=PREDICTION),
    ]
    if labelled:
        metrics.append(RegressionPreset() if task == "regression" else ClassificationPreset())
    ref, cur = reference[columns].copy(), current[columns].copy()
    if labelled and task == "classification":
        ref[TARGET], cur[TARGET] = ref[TARGET].astype(int), cur[TARGET].astype(int)
    with warnings.catch_warnings():
        # Evidently scores per-segment metrics that are undefined on tiny segments; the summary does not use them.
        warnings.simplefilter("ignore")
        snapshot = Report(metrics, include_tests=False).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    html, raw_json = out_dir / f"{name}.html", out_dir / f"{name}.evidently.json"
    snapshot.save_html(str(html))
    snapshot.save_json(str(raw_json))
    summary = summarize(snapshot.dict(), features=features, threshold=threshold, rows=len(current))
    summary.html_report = str(html)
    if workspace is not None:
        add_to_workspace(snapshot, workspace=Path(workspace), project=project or "mlops", name=name)
    return summary


def ensure_project(workspace: Path, project: str) -> Any:
    """The workspace's project of that name, created if missing.

    Create it before ``evidently ui`` starts on the workspace: the UI's file watcher reads a new
    project's metadata the moment the file appears and, if it is still empty, its thread dies
    and the UI never shows projects created after that. New report runs are read robustly.
    """
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(workspace))
    found = ws.search_project(project)
    return found[0] if found else ws.create_project(project, description=f"Drift and quality of {project}")


def add_to_workspace(snapshot: Any, *, workspace: Path, project: str, name: str) -> None:
    """Add a report run to a local Evidently workspace, creating the project on first use."""
    from evidently.ui.workspace import Workspace

    target = ensure_project(workspace, project)
    Workspace.create(str(workspace)).add_run(target.id, snapshot, include_data=False, name=name)
