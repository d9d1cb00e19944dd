"""Monitoring and retraining flows: drift on a prediction-log window, and what a drift verdict starts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.events import emit_event

from core.predlog import LabelledPrediction, PredictionLog
from core.usecase import UseCase
from models.fairness import assess, flat_metrics
from models.frames import coerce_features, feature_frame, target_vector
from models.metrics import evaluate, model_output
from models.records import encode_labels
from models.registry import CHAMPION
from models.threshold import registered_threshold
from monitoring.drift import PREDICTION, TARGET, run_report
from pipelines.metrics import push
from pipelines.notify import reload_service
from pipelines.promote import promote_challenger
from pipelines.runtime import get_runtime
from pipelines.train import train_flow


def current_frame(rows: list[LabelledPrediction], use_case: UseCase) -> pd.DataFrame:
    """Live rows in the reference's shape: features, prediction, and the label where it arrived."""
    frame = feature_frame([r.features for r in rows], use_case)
    frame[PREDICTION] = [r.prediction for r in rows]
    # NaN where no label arrived (yet): quality is scored on the labelled part (live_quality)
    frame[TARGET] = encode_labels([r.label for r in rows], use_case)
    return frame


DRIFT_EVENT = "mlops.drift.detected"


def drift_event(payload: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The event a drift verdict emits: name, resource, payload (what the retraining Automation matches)."""
    resource = {"prefect.resource.id": f"mlops.model.{payload['use_case']}", "mlops.use-case": payload["use_case"]}
    body = {k: payload.get(k) for k in ("use_case", "name", "batch_id", "model_version", "drift_share", "threshold")}
    body["drift_share"] = round(float(payload["drift_share"]), 3)
    body["drifted_features"] = payload.get("drifted_features", [])
    return DRIFT_EVENT, resource, body


def batch_frame(batch: pd.DataFrame, model: Any, use_case: UseCase) -> pd.DataFrame:
    """An ingested batch in the reference's shape: features, the model's prediction, and the batch's labels."""
    X = coerce_features(batch, use_case)
    frame = X.copy()
    frame[PREDICTION] = model_output(model, X, use_case.task)
    frame[TARGET] = target_vector(batch, use_case)
    return frame


def _truth(labelled: pd.DataFrame, use_case: UseCase) -> np.ndarray:
    """The labelled rows' targets as the metrics take them: a classifier's as 0/1 integers."""
    y = labelled[TARGET].to_numpy()
    return y.astype(int) if use_case.task == "classification" else y


def live_quality(frame: pd.DataFrame, use_case: UseCase, *, threshold: float = 0.5) -> dict[str, float]:
    """The task's metrics on labelled live rows; a classifier's precision and recall at the served
    version's decision threshold (what its labels were), with the threshold itself."""
    if TARGET not in frame.columns or frame.empty:
        return {}
    labelled = frame[frame[TARGET].notna()]
    if labelled.empty:
        return {}
    quality = evaluate(use_case.task, _truth(labelled, use_case), labelled[PREDICTION].to_numpy(), threshold=threshold)
    # On the labelled part only: how much of the window that is, beside the numbers.
    quality |= {"labelled_rows": float(len(labelled)), "labelled_share": len(labelled) / len(frame)}
    return {**quality, "threshold": threshold} if use_case.task == "classification" else quality


def live_fairness(frame: pd.DataFrame, use_case: UseCase, *, threshold: float) -> dict[str, float]:
    """The fairness gaps (models.fairness) on labelled live rows, for the groups the requests carry:
    a group column that is not a feature never reaches the service, so it is measured at training only."""
    if use_case.fairness is None or TARGET not in frame.columns:
        return {}
    labelled = frame[frame[TARGET].notna()]
    carried = [g for g in use_case.fairness.groups if g in labelled.columns]
    if labelled.empty or not carried:
        return {}
    reports = assess(
        labelled[carried],
        _truth(labelled, use_case),
        labelled[PREDICTION].to_numpy(),
        use_case.model_copy(update={"fairness": use_case.fairness.model_copy(update={"groups": carried})}),
        threshold=threshold,
    )
    return flat_metrics(reports)


@flow(name="monitor", log_prints=True)
def monitor_flow(
    use_case: str,
    since: float | None = None,
    until: float | None = None,
    name: str | None = None,
    retrain: bool | None = None,
    deploy: str = "auto",
    batch_id: str | None = None,
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Compare data with the serving model's training reference and announce drift as an event.

    The data is either one ingested batch (``batch_id``: its features, the champion's predictions on
    them and the batch's labels) or a window of the prediction log (default: the last 24 h).
    """
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    until = until or time.time()
    since = since or until - rt.settings.monitor_window_hours * 3600
    name = name or (f"batch-{batch_id[:12]}" if batch_id else datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    if batch_id:
        champion = rt.registry.by_alias(uc.model_name, CHAMPION)
        if champion is None:
            raise ValueError(f"'{uc.model_name}' has no champion to compare batch {batch_id[:12]} with")
        served = champion.version
        batch = rt.lake.read_batch(uc.name, batch_id)
        current = batch_frame(batch, rt.registry.load(uc.model_name, served), uc) if len(batch) else pd.DataFrame()
    else:
        log = PredictionLog(rt.settings.resolved_prediction_log_url)
        try:
            rows = log.window(use_case=uc.name, since=since, until=until)
        finally:
            log.close()
        served = str(pd.Series([r.model_version for r in rows]).mode().iloc[0]) if rows else ""
        current = current_frame(rows, uc) if rows else pd.DataFrame()
    if len(current) < uc.monitoring.min_rows:
        logger.warning("only %d rows to check (< %d): not enough to judge drift", len(current), uc.monitoring.min_rows)
        return {"name": name, "rows": len(current), "skipped": True, "drift_detected": False}

    ref = rt.registry.get(uc.model_name, str(served))
    reference = rt.registry.reference(ref)
    out_dir = rt.layout.reports / uc.name
    summary = run_report(
        reference=reference,
        current=current,
        numerical=uc.numeric_features,
        categorical=uc.categorical_features,
        task=uc.task,
        threshold=uc.monitoring.drift_share,
        out_dir=out_dir,
        name=name,
        drift_options=uc.monitoring.model_dump(
            include={"num_method", "num_threshold", "cat_method", "cat_threshold"}, exclude_none=True
        ),
        workspace=rt.settings.evidently_workspace,
        project=uc.name,
    )
    threshold = registered_threshold(ref.tags)  # what labelled the served answers
    summary.quality = live_quality(current, uc, threshold=threshold)
    fairness = live_fairness(current, uc, threshold=threshold)
    payload = {
        "name": name,
        "use_case": uc.name,
        "batch_id": batch_id,
        "window": None if batch_id else {"since": since, "until": until},
        "model_version": str(served),
        "labelled_rows": int(current[TARGET].notna().sum()) if TARGET in current else 0,
        **summary.to_dict(),
        "fairness": fairness,
    }
    json_path = out_dir / f"{name}.json"
    payload["json_report"] = str(json_path)
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    logger.info(
        "drift share %.2f (threshold %.2f): %s; drifted %s",
        summary.drift_share,
        summary.threshold,
        "DRIFT" if summary.drift_detected else "no drift",
        summary.drifted_features,
    )

    push(
        rt.settings.pushgateway_url,
        job="monitor",
        use_case=uc.name,
        values={"mlops_drift_share": summary.drift_share, "mlops_drift_detected": float(summary.drift_detected)},
    )
    if summary.drift_detected:
        event, resource, body = drift_event(payload)
        emit_event(event=event, resource=resource, payload=body)

    should_retrain = rt.settings.auto_retrain if retrain is None else retrain
    if summary.drift_detected and should_retrain:
        payload["retraining"] = retrain_flow(
            use_case=uc.name,
            deploy=deploy,
            reason=f"drift share {summary.drift_share:.2f} >= {summary.threshold:.2f} in {name}",
            state_dir=state_dir,
        )
    return payload


DEPLOY_MODES = ("auto", "rollout", "direct", "none")


@flow(name="retrain", log_prints=True)
def retrain_flow(
    use_case: str, reason: str = "manual", deploy: str = "auto", state_dir: str | None = None
) -> dict[str, Any]:
    """Train on the newest curated data; a model that beats the champion is registered as challenger, then:

    - ``rollout``: shipped through the service with the use case's strategy (the deploy flow);
    - ``direct``: promoted to champion at once and the service told to reload;
    - ``none``: left as challenger for someone else to deploy;
    - ``auto`` (default): ``rollout`` when a service is configured (MLOPS_SERVING_URL), else ``direct``.
    """
    if deploy not in DEPLOY_MODES:
        raise ValueError(f"deploy must be one of {DEPLOY_MODES}, not '{deploy}'")
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    trained = train_flow(use_case=uc.name, state_dir=state_dir)
    outcome: dict[str, Any] = {"reason": reason, "trained": trained, "promoted": False, "reload": None, "rollout": None}
    verdict = trained["decision"]["verdict"]
    mode = ("rollout" if rt.settings.serving_url else "direct") if deploy == "auto" else deploy
    if verdict == "challenger" and mode == "rollout":
        from pipelines.deploy import deploy_flow

        outcome["rollout"] = deploy_flow(use_case=uc.name, candidate_version=trained["version"], state_dir=state_dir)
        outcome["promoted"] = outcome["rollout"]["outcome"] == "promoted"
    elif verdict == "challenger" and mode == "direct":
        new, old = promote_challenger(rt.registry, uc.model_name, actor="retrain-flow", reason=reason)
        outcome.update(promoted=True, previous=old)
        outcome["reload"] = reload_service(rt.settings.serving_url, token=rt.settings.admin_token)
        logger.info("promoted v%s to champion (was v%s); service reload: %s", new, old, outcome["reload"])
    elif verdict == "champion":  # the first model ever: nothing to compare with, nothing to roll out
        outcome["reload"] = reload_service(rt.settings.serving_url, token=rt.settings.admin_token)
    else:
        logger.info(
            "kept the champion (%s): %s",
            "challenger left for deployment" if verdict == "challenger" else "no challenger",
            trained["decision"]["reason"],
        )
    champion = rt.registry.by_alias(uc.model_name, CHAMPION)
    outcome["champion"] = champion.version if champion else None
    outcome["challenger"] = trained["version"] if verdict == "challenger" and mode == "none" else None
    return outcome
