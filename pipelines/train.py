"""Training flow: train candidates on curated data, track everything in MLflow, register, decide promotion."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task

from core.layout import StateLayout
from core.progress import progress
from core.usecase import UseCase
from models.card import card_html, card_markdown
from models.compiler import compile_or_none
from models.explain import BACKGROUND_ROWS, MAX_FEATURES, SUMMARY_BACKGROUND, SUMMARY_ROWS, global_explanation
from models.fairness import GroupReport, assess, fairness_verdict, flat_metrics
from models.frames import coerce_features, example_frame, signature_columns, target_vector
from models.metrics import bootstrap_intervals, evaluate, model_output
from models.plots import ShapleySummary, save_plots
from models.promotion import PromotionDecision, decide_promotion, gate_on_fairness
from models.registry import CHALLENGER, CHAMPION, ChildRun, ModelRegistry, ModelVersionRef, TrainingRecord
from models.selection import FeatureSetScore, as_markdown, compare_feature_sets
from models.threshold import DEFAULT_THRESHOLD, registered_threshold
from models.training import TrainingResult, fit_count, train, tuning_window
from pipelines.cluster import compute
from pipelines.eda import EdaReport, write_eda
from pipelines.runtime import get_runtime

# Pinned so a model logged here loads where the same stack is installed.
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "scipy")


@dataclass(frozen=True)
class ChampionOnWindow:
    """The current champion on the candidate's held-out window: its promotion metric and fairness."""

    ref: ModelVersionRef
    score: float
    fairness: list[GroupReport]


def champion_on(registry: ModelRegistry, use_case: UseCase, test: pd.DataFrame) -> ChampionOnWindow | None:
    champion = registry.by_alias(use_case.model_name, CHAMPION)
    if champion is None:
        return None
    model = registry.load(use_case.model_name, champion.version)
    X, y = coerce_features(test, use_case), target_vector(test, use_case)
    output = model_output(model, X, use_case.task)
    threshold = registered_threshold(champion.tags)
    return ChampionOnWindow(
        ref=champion,
        score=evaluate(use_case.task, y, output, threshold=threshold)[use_case.promotion.metric],
        fairness=assess(test, y, output, use_case, threshold=threshold),
    )


def name_by_verdict(registry: ModelRegistry, ref: ModelVersionRef, decision: PromotionDecision) -> None:
    """A new version takes the alias its verdict gives: ``champion``, ``challenger``, or none when it lost."""
    if decision.verdict == "champion":
        registry.set_alias(ref.name, CHAMPION, ref.version)
    elif decision.verdict == "challenger":
        registry.set_alias(ref.name, CHALLENGER, ref.version)


def training_record(
    result: TrainingResult,
    use_case: UseCase,
    *,
    data_version: str,
    decision: PromotionDecision,
    plots: list[Path],
    eda: EdaReport | None = None,
    feature_sets: list[FeatureSetScore] | None = None,
    feature_set_table: list[Path] | None = None,
    fairness: list[GroupReport] | None = None,
    compute: str = "local",
) -> TrainingRecord:
    split = result.split.describe("event_time")
    metrics = {f"test_{k}": v for k, v in result.test_metrics.items()}
    for c in result.candidates:
        metrics[f"cv_{c.algorithm}"] = c.cv_score
        metrics.update({f"val_{c.algorithm}_{k}": v for k, v in c.validation_metrics.items()})
    if decision.champion_score is not None:
        metrics["champion_test_score"] = decision.champion_score
    metrics.update(flat_metrics(fairness or []))
    threshold, kept = result.decision, result.kept_calibration
    if threshold is not None:
        metrics.update({"val_precision_at_threshold": threshold.precision, "val_recall_at_threshold": threshold.recall})
    if result.calibration is not None:
        metrics.update({f"val_brier_calibration_{k}": v for k, v in result.calibration.brier.items()})
    tags = {
        "use_case": use_case.name,
        "algorithm": result.algorithm,
        "data_version": data_version,
        "promotion_metric": use_case.promotion.metric,
        "promotion_verdict": decision.verdict,
        "promotion_reason": decision.reason,
        "training_compute": compute,  # where model selection's fits ran
        **{f"split_{k}": str(v) for k, v in split.items()},
        **({"decision_threshold": f"{threshold.threshold:.6g}", "decision_rule": threshold.rule} if threshold else {}),
        **({"calibration": kept.method if kept else "none"} if result.calibration else {}),
    }
    example = example_frame(result.split.test.head(20), use_case).head(3)
    return TrainingRecord(
        experiment=use_case.name,
        model_name=use_case.model_name,
        model=result.model,
        params={"algorithm": result.algorithm, **result.params},
        metrics=metrics,
        tags=tags,
        input_example=example,
        input_columns=signature_columns(use_case),
        reference=result.reference,
        artifacts=plots,
        pip_requirements=[f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS],
        compiled=compile_or_none(result.model, use_case),
        reports={
            **({"eda": eda.files} if eda else {}),
            **({"feature_selection": feature_set_table} if feature_set_table else {}),
        },
        decision=None
        if threshold is None
        else {
            "threshold": threshold.threshold,
            "rule": threshold.rule,
            "calibration": kept.as_dict() if kept else None,
        },
        background=background_records(result.reference, use_case),
        child_runs=[
            ChildRun(
                name=f"feature set: {s.name}",
                params={"feature_set": s.name, "features": ",".join(s.features), "algorithm": result.algorithm},
                metrics={f"cv_{use_case.promotion.metric}": s.cv_mean, "cv_std": s.cv_std, "change_vs_all": s.change},
            )
            for s in feature_sets or []
        ],
    )


def shapley_summary(result: TrainingResult, use_case: UseCase, X_test: pd.DataFrame) -> ShapleySummary | None:
    """Exact Shapley values of evenly spaced test rows against training background rows (models.explain);
    none past the features an exact enumeration covers."""
    if len(use_case.features) > MAX_FEATURES or X_test.empty:
        return None
    rows = X_test.iloc[np.unique(np.linspace(0, len(X_test) - 1, SUMMARY_ROWS).astype(int))]
    background = result.reference[use_case.features].head(SUMMARY_BACKGROUND)
    values, base = global_explanation(result.answering_model, rows, background, use_case)
    return ShapleySummary(
        list(use_case.features), values, {f: rows[f].to_numpy(dtype=object) for f in use_case.features}, base
    )


def background_records(reference: pd.DataFrame, use_case: UseCase) -> list[dict[str, Any]]:
    """The first training rows of the reference sample, as the records the service receives."""
    rows = reference[use_case.features].head(BACKGROUND_ROWS)
    return json.loads(rows.to_json(orient="records"))


def calibration_summary(result: TrainingResult) -> dict[str, Any] | None:
    """What calibration tried and kept, in words and numbers (the card, the flow's answer)."""
    if result.calibration is None:
        return None
    kept = result.kept_calibration
    return result.calibration.as_dict() | {"map": kept.describe() if kept else "none"}


CARD_RESAMPLES = 200  # bootstrap resamples of the test window for the card's intervals


def model_card(
    result: TrainingResult,
    use_case: UseCase,
    *,
    ref: ModelVersionRef,
    data_version: str,
    rows: int,
    eda: EdaReport,
    decision: PromotionDecision,
    fairness: list[GroupReport],
    fairness_verdict: str,
    intervals: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """Everything the version's card says (models.card renders it)."""
    eda_summary = json.loads(eda.summary.read_text())
    limitations = [f"{w['kind']}: {w['message']}" for w in eda_summary["warnings"] if w["severity"] != "info"]
    windows = result.split.describe("event_time")
    limitations.append(
        f"Trained on data up to {windows['validation_end']}: it has seen nothing later; drift is watched for."
    )
    if fairness and "fails" in decision.reason:
        limitations.append(f"Fairness: {fairness_verdict}")
    top = sorted(result.feature_importance.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return {
        "model_name": use_case.model_name,
        "version": ref.version,
        "run_id": ref.run_id,
        "created": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        "use_case": use_case.name,
        "description": use_case.description,
        "intended_use": use_case.card.intended_use or "Not stated in the use case.",
        "out_of_scope": use_case.card.out_of_scope or "Not stated in the use case.",
        "task": use_case.task,
        "target": use_case.target,
        "data": {
            "data_version": data_version,
            "rows": rows,
            "eda_report": str(eda.html),
            "eda_artifact": f"eda/{eda.html.name}",
            "windows": windows,
        },
        "algorithm": result.algorithm,
        "params": result.params,
        "resamples": CARD_RESAMPLES,
        "metrics": {
            name: {"value": value, "low": intervals[name][0], "high": intervals[name][1]}
            for name, value in result.test_metrics.items()
            if name in intervals
        },
        "threshold": result.decision.as_dict() if result.decision else None,
        "calibration": calibration_summary(result),
        "fairness": [r.as_dict() for r in fairness],
        "fairness_verdict": fairness_verdict,
        "top_features": top,
        "limitations": limitations,
        "promotion": {"verdict": decision.verdict, "reason": decision.reason},
    }


def card_paths(layout: StateLayout, use_case: str, version: str) -> tuple[Path, Path]:
    folder = layout.reports / use_case / "cards"
    return folder / f"v{version}.md", folder / f"v{version}.html"


def write_card(card: dict[str, Any], layout: StateLayout, use_case: str) -> list[Path]:
    markdown, page = card_paths(layout, use_case, str(card["version"]))
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(card_markdown(card))
    page.write_text(card_html(card))
    return [markdown, page]


def fetch_card(use_case: str, version: str | None = None, state_dir: str | None = None) -> tuple[Path, Path]:
    """A registered version's card (default: the champion's), as local files: from the state directory
    when this machine wrote them, else downloaded from the version's training run."""
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    ref = rt.registry.by_alias(uc.model_name, CHAMPION) if version is None else rt.registry.get(uc.model_name, version)
    if ref is None:
        raise ValueError(f"'{uc.model_name}' has no champion yet: name a version, or train one")
    paths = card_paths(rt.layout, uc.name, ref.version)
    if not all(p.exists() for p in paths):
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path in paths:
            try:
                path.write_bytes(rt.registry.run_artifact(ref.run_id, f"card/{path.name}"))
            except Exception as err:
                raise ValueError(
                    f"'{uc.model_name}' v{ref.version} has no model card (registered before cards were): {err}"
                ) from err
    return paths


@task
def compare_sets(
    frame: pd.DataFrame, use_case: UseCase, algorithm: str, params: dict[str, Any], importance: dict[str, float]
) -> list[FeatureSetScore]:
    """The feature-set table (models.selection), as a task of its own: it refits the winner per set and fold."""
    scores = compare_feature_sets(frame, use_case, algorithm=algorithm, params=params, importance=importance)
    get_run_logger().info("feature sets (CV %s):\n%s", use_case.promotion.metric, as_markdown(scores, use_case))
    return scores


def _write_table(folder: Path, scores: list[FeatureSetScore], use_case: UseCase) -> list[Path]:
    markdown, rows = folder / "feature_sets.md", folder / "feature_sets.json"
    markdown.write_text(as_markdown(scores, use_case))
    rows.write_text(json.dumps([s.as_row() | {"features": s.features} for s in scores], indent=1))
    return [markdown, rows]


@task
def load_training_data(state_dir: str | None, use_case: str, until: str | None) -> tuple[pd.DataFrame, str]:
    rt = get_runtime(state_dir)
    cutoff = pd.Timestamp(until) if until else None
    frame = rt.lake.read_curated(use_case, until=cutoff)
    if frame.empty:
        raise ValueError(f"no curated data for '{use_case}'{f' before {until}' if until else ''}: ingest a batch first")
    return frame, rt.lake.data_version(use_case, until=cutoff)


@flow(name="train", log_prints=True)
def train_flow(
    use_case: str, until: str | None = None, state_dir: str | None = None, compare_feature_sets: bool | None = None
) -> dict[str, Any]:
    """Train on curated data (optionally only rows before ``until``), register the best, decide its alias.

    With ``compare_feature_sets`` (default: the YAML's ``training.feature_selection.compare``), also
    score the feature sets of ``models.selection`` with the winner's algorithm, as child runs.
    """
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    frame, data_version = load_training_data(state_dir, use_case, until)
    # Look before modelling: the analysis of this data version, logged with the run it informs.
    eda = write_eda(frame, uc, data_version=data_version, layout=rt.layout)
    with compute(rt.settings) as cluster, progress(f"training {uc.name}", total=fit_count(uc)) as step:
        result = train(frame, uc, on_fits=step, n_jobs=cluster.n_jobs, share=cluster.share)
    if cluster.address:
        logger.info("model selection ran on %d Dask workers of %s", len(cluster.workers), cluster.address)
    logger.info("best candidate %s %s; test %s", result.algorithm, result.params, result.test_metrics)

    champion = champion_on(rt.registry, uc, result.split.test)
    decision = decide_promotion(
        metric=uc.promotion.metric,
        candidate_score=result.test_metrics[uc.promotion.metric],
        champion_score=champion.score if champion else None,
        margin=uc.promotion.margin,
        higher_is_better=uc.higher_is_better,
    )
    compare = uc.training.feature_selection.compare if compare_feature_sets is None else compare_feature_sets
    sets = (
        compare_sets(tuning_window(result.split, uc), uc, result.algorithm, result.params, result.feature_importance)
        if compare
        else []
    )
    X_test = coerce_features(result.split.test, uc)
    # What the version answers: calibrated, when a calibration was kept.
    y_test, test_output = target_vector(result.split.test, uc), model_output(result.answering_model, X_test, uc.task)
    # The same window, the same groups: does the candidate treat them alike, and no worse than the champion?
    threshold = result.decision.threshold if result.decision else DEFAULT_THRESHOLD
    fairness = assess(result.split.test, y_test, test_output, uc, threshold=threshold)
    why = "no fairness groups declared"
    if uc.fairness is not None:
        fair, why = fairness_verdict(fairness, champion.fairness if champion else None, uc.fairness)
        decision = gate_on_fairness(decision, fair=fair, why=why)
        logger.info("fairness: %s", why)
    with tempfile.TemporaryDirectory() as tmp:
        plots = save_plots(
            Path(tmp),
            task=uc.task,
            y_true=y_test,
            y_score=test_output,
            importance=result.feature_importance,
            threshold=result.decision.threshold if result.decision else None,
            uncalibrated=model_output(result.model, X_test, uc.task) if result.kept_calibration else None,
            shapley=shapley_summary(result, uc, X_test),
        )
        table = _write_table(Path(tmp), sets, uc) if sets else None
        record = training_record(
            result,
            uc,
            data_version=data_version,
            decision=decision,
            plots=plots,
            eda=eda,
            feature_sets=sets,
            feature_set_table=table,
            fairness=fairness,
            compute=cluster.where,
        )
        ref = rt.registry.log_and_register(record)

    name_by_verdict(rt.registry, ref, decision)
    if champion is not None:
        rt.registry.tag(uc.model_name, ref.version, {"compared_with_champion": champion.ref.version})
    logger.info("model %s v%s: %s (%s)", uc.model_name, ref.version, decision.verdict, decision.reason)
    card = model_card(
        result, uc, ref=ref, data_version=data_version, rows=len(frame), eda=eda, decision=decision,
        fairness=fairness, fairness_verdict=why,
        intervals=bootstrap_intervals(uc.task, y_test, test_output, threshold=threshold, resamples=CARD_RESAMPLES),
    )  # fmt: skip
    card_files = write_card(card, rt.layout, uc.name)
    rt.registry.attach(ref.run_id, "card", card_files)
    return {
        "model_name": uc.model_name,
        "version": ref.version,
        "run_id": ref.run_id,
        "algorithm": result.algorithm,
        "test_metrics": result.test_metrics,
        "data_version": data_version,
        "rows": len(frame),
        "eda_report": str(eda.html),
        "feature_sets": [s.as_row() for s in sets],
        "threshold": result.decision.as_dict() if result.decision else None,
        "calibration": calibration_summary(result),
        "decision": asdict(decision),
        "champion_version": champion.ref.version if champion else None,
        "dask_workers": sorted(cluster.workers),  # where model selection's fits ran (MLOPS_DASK_ADDRESS)
        "fairness": [r.as_dict() for r in fairness],
        "model_card": str(card_files[0]),
    }
