"""Training flow: train candidates on curated data, track everything in MLflow, register, decide promotion."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from core.usecase import UseCase
from models.compiler import compile_or_none
from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from models.plots import save_plots
from models.promotion import PromotionDecision, decide_promotion
from models.registry import CHALLENGER, CHAMPION, ModelRegistry, ModelVersionRef, TrainingRecord
from models.training import TrainingResult, train
from pipelines.eda import EdaReport, write_eda
from pipelines.runtime import get_runtime

# Pinned so a model logged here loads where the same stack is installed.
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "scipy")


def champion_score_on(
    registry: ModelRegistry, use_case: UseCase, test: pd.DataFrame
) -> tuple[ModelVersionRef | None, float | None]:
    """The current champion's promotion metric on the candidate's held-out window."""
    champion = registry.by_alias(use_case.model_name, CHAMPION)
    if champion is None:
        return None, None
    model = registry.load(use_case.model_name, champion.version)
    X, y = coerce_features(test, use_case), target_vector(test, use_case)
    return champion, evaluate(use_case.task, y, model_output(model, X, use_case.task))[use_case.promotion.metric]


def training_record(
    result: TrainingResult,
    use_case: UseCase,
    *,
    data_version: str,
    decision: PromotionDecision,
    plots: list[Path],
    eda: EdaReport | None = None,
) -> TrainingRecord:
    split = result.split.describe("event_time")
    metrics = {f"test_{k}": v for k, v in result.test_metrics.items()}
    for c in result.candidates:
        metrics[f"cv_{c.algorithm}"] = c.cv_score
        metrics.update({f"val_{c.algorithm}_{k}": v for k, v in c.validation_metrics.items()})
    if decision.champion_score is not None:
        metrics["champion_test_score"] = decision.champion_score
    tags = {
        "use_case": use_case.name,
        "algorithm": result.algorithm,
        "data_version": data_version,
        "promotion_metric": use_case.promotion.metric,
        "promotion_verdict": decision.verdict,
        "promotion_reason": decision.reason,
        **{f"split_{k}": str(v) for k, v in split.items()},
    }
    example = coerce_features(result.split.test.head(3), use_case)
    return TrainingRecord(
        experiment=use_case.name,
        model_name=use_case.model_name,
        model=result.model,
        params={"algorithm": result.algorithm, **result.params},
        metrics=metrics,
        tags=tags,
        input_example=example,
        reference=result.reference,
        artifacts=plots,
        pip_requirements=[f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS],
        compiled=compile_or_none(result.model, use_case),
        reports={"eda": eda.files} if eda else {},
    )


@task
def load_training_data(state_dir: str | None, use_case: str, until: str | None) -> tuple[pd.DataFrame, str]:
    rt = get_runtime(state_dir)
    cutoff = pd.Timestamp(until) if until else None
    frame = rt.lake.read_curated(use_case, until=cutoff)
    if frame.empty:
        raise ValueError(f"no curated data for '{use_case}'{f' before {until}' if until else ''}: ingest a batch first")
    return frame, rt.lake.data_version(use_case, until=cutoff)


@flow(name="train", log_prints=True)
def train_flow(use_case: str, until: str | None = None, state_dir: str | None = None) -> dict[str, Any]:
    """Train on curated data (optionally only rows before ``until``), register the best, decide its alias."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    frame, data_version = load_training_data(state_dir, use_case, until)
    # Look before modelling: the analysis of this data version, logged with the run it informs.
    eda = write_eda(frame, uc, data_version=data_version, layout=rt.layout)
    result = train(frame, uc)
    logger.info("best candidate %s %s; test %s", result.algorithm, result.params, result.test_metrics)

    champion, champion_score = champion_score_on(rt.registry, uc, result.split.test)
    decision = decide_promotion(
        metric=uc.promotion.metric,
        candidate_score=result.test_metrics[uc.promotion.metric],
        champion_score=champion_score,
        margin=uc.promotion.margin,
        higher_is_better=uc.higher_is_better,
    )
    X_test = coerce_features(result.split.test, uc)
    with tempfile.TemporaryDirectory() as tmp:
        plots = save_plots(
            Path(tmp),
            task=uc.task,
            y_true=target_vector(result.split.test, uc),
            y_score=model_output(result.model, X_test, uc.task),
            importance=result.feature_importance,
        )
        record = training_record(result, uc, data_version=data_version, decision=decision, plots=plots, eda=eda)
        ref = rt.registry.log_and_register(record)

    if decision.verdict == "champion":
        rt.registry.set_alias(uc.model_name, CHAMPION, ref.version)
    elif decision.verdict == "challenger":
        rt.registry.set_alias(uc.model_name, CHALLENGER, ref.version)
    if champion is not None:
        rt.registry.tag(uc.model_name, ref.version, {"compared_with_champion": champion.version})
    logger.info("model %s v%s: %s (%s)", uc.model_name, ref.version, decision.verdict, decision.reason)
    return {
        "model_name": uc.model_name,
        "version": ref.version,
        "run_id": ref.run_id,
        "algorithm": result.algorithm,
        "test_metrics": result.test_metrics,
        "data_version": data_version,
        "rows": len(frame),
        "eda_report": str(eda.html),
        "decision": asdict(decision),
        "champion_version": champion.version if champion else None,
    }
