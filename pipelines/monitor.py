"""Monitoring and retraining flows: drift on a prediction-log window, and what a drift verdict starts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from core.predlog import LabelledPrediction, PredictionLog
from core.usecase import UseCase
from models.frames import encode_labels, feature_frame
from models.metrics import evaluate
from models.registry import CHAMPION
from monitoring.drift import PREDICTION, TARGET, run_report
from pipelines.notify import reload_service
from pipelines.promote import promote_challenger
from pipelines.runtime import get_runtime
from pipelines.train import train_flow


def current_frame(rows: list[LabelledPrediction], use_case: UseCase) -> pd.DataFrame:
    """Live rows in the reference's shape: features, prediction, and the label where it arrived."""
    frame = feature_frame([r.features for r in rows], use_case)
    frame[PREDICTION] = [r.prediction for r in rows]
    labels = [r.label for r in rows]
    if all(label is not None for label in labels):
        frame[TARGET] = encode_labels(labels, use_case)
    return frame


def live_quality(frame: pd.DataFrame, use_case: UseCase) -> dict[str, float]:
    if TARGET not in frame.columns or frame.empty:
        return {}
    return evaluate(use_case.task, frame[TARGET].to_numpy(), frame[PREDICTION].to_numpy())


@flow(name="monitor", log_prints=True)
def monitor_flow(
    use_case: str,
    since: float | None = None,
    until: float | None = None,
    name: str | None = None,
    retrain: bool | None = None,
    deploy: str = "auto",
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Compare a window of the prediction log (default: the last 24 h) with the serving model's reference."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    until = until or time.time()
    since = since or until - 24 * 3600
    log = PredictionLog(rt.settings.resolved_prediction_log_url)
    try:
        rows = log.window(use_case=uc.name, since=since, until=until)
    finally:
        log.close()
    name = name or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if len(rows) < uc.monitoring.min_rows:
        logger.warning(
            "only %d predictions in the window (< %d): not enough to judge drift", len(rows), uc.monitoring.min_rows
        )
        return {"name": name, "rows": len(rows), "skipped": True, "drift_detected": False}

    served = pd.Series([r.model_version for r in rows]).mode().iloc[0]
    ref = rt.registry.get(uc.model_name, str(served))
    reference = rt.registry.reference(ref)
    current = current_frame(rows, uc)
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
    )
    summary.quality = live_quality(current, uc)
    payload = {
        "name": name,
        "use_case": uc.name,
        "window": {"since": since, "until": until},
        "model_version": str(served),
        "labelled_rows": int(current[TARGET].notna().sum()) if TARGET in current else 0,
        **summary.to_dict(),
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
