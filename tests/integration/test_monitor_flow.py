"""Monitoring on a real prediction log against the champion's training reference (Evidently)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from core.layout import StateLayout
from core.predlog import PredictionLog, PredictionRecord
from models.frames import coerce_features
from models.registry import MlflowRegistry
from pipelines.monitor import monitor_flow


def _log_month(root: Path, frame: pd.DataFrame, bike, *, tag: str, labelled: bool) -> tuple[float, float]:
    registry = MlflowRegistry(tracking_uri=StateLayout(root).tracking_uri)
    model = registry.load("bike-demand", "1")
    X = coerce_features(frame, bike)
    preds = model.predict(X)
    log = PredictionLog(StateLayout(root).prediction_log_url)
    start = time.time()
    records = [
        PredictionRecord(
            f"{tag}-{i}",
            f"{tag}-{i}",
            start,
            "bike_demand",
            "bike-demand",
            "1",
            "stable",
            {k: (int(v) if k in ("hr", "weekday", "workingday", "holiday") else v) for k, v in row.items()},
            float(p),
            1.0,
        )
        for i, (row, p) in enumerate(zip(X.to_dict(orient="records"), preds, strict=True))
    ]
    log.write(records)
    if labelled:
        log.add_feedback([(r.prediction_id, float(y)) for r, y in zip(records, frame.bikers, strict=True)], ts=start)
    log.close()
    return start - 1, time.time() + 1


@pytest.mark.parametrize(("month", "drift"), [("March", False), ("July", True)])
def test_drift_verdict_follows_the_season(trained_state: Path, bike, bike_frame, month, drift):
    since, until = _log_month(trained_state, bike_frame[bike_frame.mnth == month], bike, tag=month, labelled=True)
    result = monitor_flow(
        use_case="bike_demand", since=since, until=until, name=f"m-{month}", retrain=False, state_dir=str(trained_state)
    )
    assert result["drift_detected"] is drift
    assert ("temp" in result["drifted_features"]) is drift
    assert Path(result["html_report"]).stat().st_size > 100_000
    written = json.loads(Path(result["json_report"]).read_text())
    assert written["drift_share"] == result["drift_share"] and written["model_version"] == "1"
    assert written["labelled_rows"] == result["rows"] and written["quality"]["rmse"] > 0
    assert "retraining" not in result


def test_too_few_rows_is_not_a_verdict(trained_state: Path, bike, bike_frame):
    since, until = _log_month(trained_state, bike_frame.head(10), bike, tag="few", labelled=False)
    result = monitor_flow(use_case="bike_demand", since=since, until=until, retrain=False, state_dir=str(trained_state))
    assert result["skipped"] is True and result["rows"] == 10 and result["drift_detected"] is False
