"""The reporting commands' default lines, from results in the flows' own shapes."""

from __future__ import annotations

from cli import summaries

TRAINED = {
    "model_name": "bike-demand", "version": "3", "run_id": "abc", "algorithm": "ridge", "rows": 2067,
    "data_version": "d1", "test_metrics": {"rmse": 34.77, "r2": 0.81}, "eda_report": "/x/eda.html",
    "decision": {"verdict": "challenger", "reason": "beats the champion by 4 %"},
}  # fmt: skip


def test_an_ingested_batch_says_what_happened_to_its_rows_and_why():
    lines = summaries.ingested(
        {"batch_id": "f" * 64, "status": "partial", "rows_received": 10, "rows_accepted": 7, "rows_quarantined": 3,
         "reason": None, "failure_counts": {"type": 2, "duplicate": 1}, "data_docs": "/x/index.html"}
    )  # fmt: skip
    assert lines[0] == "batch ffffffffffff partial: 10 rows received, 7 accepted, 3 quarantined"
    assert lines[1:3] == ["  2 x type", "  1 x duplicate"] and lines[-1].endswith("/x/index.html")
    again = summaries.ingested({"batch_id": "f" * 64, "duplicate": True, "ingested_at": "2026-12-01T00:00:00"})
    assert again == ["batch ffffffffffff: the same bytes were ingested on 2026-12-01T00:00:00; nothing to do"]


def test_a_training_run_says_its_verdict_and_numbers():
    lines = summaries.trained(TRAINED)
    assert lines[0].startswith("bike-demand v3 (ridge, 2067 rows, data d1): challenger: beats the champion")
    assert lines[1] == "  test: rmse 34.77, r2 0.81"


def test_an_out_of_core_run_says_its_chunks_rows_and_where_it_ran():
    lines = summaries.trained_out_of_core(
        {"model_name": "bike-demand", "version": "4", "algorithm": "hist_gradient_boosting", "members": 9,
         "rows": {"train": 4_247_000, "test": 749_810, "selection": 50_000}, "test_metrics": {"r2": 0.7},
         "decision": {"verdict": "champion", "reason": "first model"}, "dask_workers": ["tcp://a", "tcp://b"],
         "profile": "/x/lake.json"}
    )  # fmt: skip
    assert lines[0] == (
        "bike-demand v4 (hist_gradient_boosting x9 chunks, 4,247,000 rows; tested on 749,810): champion: first model"
    )
    assert lines[1:] == ["  test: r2 0.7", "  on 2 Dask workers; profile of the lake: /x/lake.json"]


def test_a_drift_check_says_its_verdict_and_what_followed():
    result = {
        "name": "2011-07", "drift_detected": True, "drift_share": 0.22, "threshold": 0.2, "model_version": "1",
        "drifted_features": ["temp", "atemp"], "quality": {"rmse": 90.1}, "html_report": "/r.html",
        "retraining": {"trained": TRAINED, "rollout": {"strategy": "canary", "candidate_version": "3",
                                                       "outcome": "promoted"}, "champion": "3", "promoted": True},
    }  # fmt: skip
    lines = summaries.monitored(result)
    assert lines[0] == "2011-07: DRIFT, drift share 0.22 (threshold 0.20) against v1; drifted: temp, atemp"
    assert "  live quality: rmse 90.1" in lines and "  report: /r.html" in lines
    assert "    canary of v3: promoted" in lines and "    champion: v3 (promoted now)" in lines
    skipped = summaries.monitored({"name": "w", "rows": 3, "skipped": True, "drift_detected": False})
    assert skipped == ["w: only 3 rows in the window, not enough to judge drift"]
