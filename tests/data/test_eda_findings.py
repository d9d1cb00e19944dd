"""What the exploratory analysis finds in the shipped datasets: the facts their YAML files act on."""

from __future__ import annotations

import json

import pandas as pd

from analysis.eda import profile
from analysis.report import render
from tests.conftest import DATA


def kinds(summary: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for warning in summary["warnings"]:
        found.setdefault(warning["kind"], []).append(warning)
    return found


def test_the_bike_data_leaks_through_registered_and_restates_temperature(bike, bike_frame):
    summary = profile(bike_frame, bike, data_version="shipped")
    found = kinds(summary)
    # `registered` is most of `bikers`: the YAML keeps it (and `casual`) out of the features
    assert [(w["columns"], w["severity"]) for w in found["leakage"]] == [(["registered"], "info")]
    assert [w["columns"] for w in found["redundant"]] == [["temp", "atemp"]]
    assert "error" not in {w["severity"] for w in summary["warnings"]}
    assert summary["duplicates"]["key_rows"] == 0
    # demand follows the clock: the busiest hour is a commuting hour
    by_hour = summary["time"]["by_hour"]
    assert max(by_hour, key=lambda h: by_hour[h]["mean"]) in {"8", "17", "18"}
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN anywhere


def test_the_credit_data_is_imbalanced_and_its_report_says_so(credit):
    frame = pd.read_csv(DATA / "Default.csv").assign(event_time=pd.Timestamp("2026-01-01"))
    summary = profile(frame, credit, data_version="shipped")
    assert summary["target"]["positive_share"] == (frame["default"] == "Yes").mean()
    assert [w["columns"] for w in kinds(summary)["imbalance"]] == [["default"]]
    # balance separates the classes: defaulters carry much higher balances
    by_class = summary["target_vs_features"]["balance"]["mean_by_class"]
    assert by_class["Yes"] > 2 * by_class["No"]
    page = render(summary, frame, credit)
    assert "the minority class is 3.3% of rows" in page and page.count("data:image/png;base64,") == 4
