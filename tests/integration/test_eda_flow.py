"""The EDA flow on a real data lake: one report per data version, reused, and a cut-off that makes another."""

from __future__ import annotations

import json
from pathlib import Path

from core.layout import StateLayout
from pipelines.eda import eda_flow


def test_the_flow_writes_one_report_per_data_version_and_reuses_it(trained_state: Path):
    first = eda_flow(use_case="bike_demand", state_dir=str(trained_state))
    report, summary = Path(first["report"]), Path(first["summary"])
    assert report.parent == StateLayout(trained_state).reports / "bike_demand" / "eda"
    assert report.name == f"{first['data_version']}.html" and summary.name == f"{first['data_version']}.json"
    assert "<h2>Warnings</h2>" in report.read_text() and json.loads(summary.read_text())["rows"] == first["rows"]
    assert any(w.startswith("warning: 'temp' and 'atemp' restate each other") for w in first["warnings"])

    written = summary.stat().st_mtime_ns
    assert eda_flow(use_case="bike_demand", state_dir=str(trained_state)) == first
    assert summary.stat().st_mtime_ns == written  # the same data version is analysed once

    earlier = eda_flow(use_case="bike_demand", until="2011-02-01", state_dir=str(trained_state))
    assert earlier["data_version"] != first["data_version"] and earlier["rows"] < first["rows"]
