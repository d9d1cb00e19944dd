"""Monitoring on a real prediction log against the champion's training reference (Evidently)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from core.layout import StateLayout
from core.predlog import LoggedRequest, PredictionLog
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
        {k: (int(v) if k in ("hr", "weekday", "workingday", "holiday") else v) for k, v in row.items()}
        for row in X.to_dict(orient="records")
    ]
    # Half of the month as one-record requests, half as one batch: readers must see every record alike.
    half = len(records) // 2
    entries = [
        LoggedRequest(f"{tag}-{i}", start, "bike_demand", "bike-demand", "1", "stable", [r], [float(p)], 1.0)
        for i, (r, p) in enumerate(zip(records[:half], preds[:half], strict=True))
    ]
    entries.append(
        LoggedRequest(
            f"{tag}-b", start, "bike_demand", "bike-demand", "1", "stable", records[half:], list(preds[half:]), 1.0
        )
    )
    log.write(entries)
    ids = [f"{tag}-{i}" for i in range(half)] + [f"{tag}-b/{i}" for i in range(len(records) - half)]
    assert len(log.window(use_case="bike_demand", since=start - 1, until=start + 1)) >= len(records)
    if labelled:
        log.add_feedback([(pid, float(y)) for pid, y in zip(ids, frame.bikers, strict=True)], ts=start)
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


def test_a_new_batch_is_checked_against_the_champion_and_lands_in_the_evidently_workspace(
    trained_state: Path, bike_raw: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Batch mode (what the stack's ingestion event starts): the batch's own labels give live quality."""
    import shutil

    from evidently.ui.workspace import Workspace

    from pipelines.ingest import ingest_flow
    from tests.conftest import csv_bytes

    state = tmp_path / "state"
    shutil.copytree(trained_state, state)  # the shared session state stays as it was
    workspace = tmp_path / "evidently"
    monkeypatch.setenv("MLOPS_EVIDENTLY_WORKSPACE", str(workspace))
    july = tmp_path / "july.csv"
    july.write_bytes(csv_bytes(bike_raw[bike_raw.mnth == "July"]))
    batch = ingest_flow(source=str(july), use_case="bike_demand", state_dir=str(state))

    result = monitor_flow(use_case="bike_demand", batch_id=batch["batch_id"], retrain=False, state_dir=str(state))

    assert result["batch_id"] == batch["batch_id"] and result["window"] is None
    assert result["rows"] == batch["rows_accepted"] == 744
    assert result["drift_detected"] is True and "temp" in result["drifted_features"]
    assert result["model_version"] == "1" and result["quality"]["rmse"] > 0
    ws = Workspace.create(str(workspace))
    (project,) = ws.search_project("bike_demand")
    assert len(ws.list_runs(project.id)) == 1


def test_a_batch_too_small_to_judge_is_skipped_not_failed(trained_state: Path):
    result = monitor_flow(use_case="bike_demand", batch_id="0" * 64, retrain=False, state_dir=str(trained_state))
    assert result == {"name": "batch-000000000000", "rows": 0, "skipped": True, "drift_detected": False}
