"""`mlops demo` as a user runs it: its own process, a real service process, the local Prefect server.

The classifier's runs go on beside the bike demo's year, each in processes of its own: a demo keeps
about one core busy, and the two together take about as long as the year alone.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT

MLOPS = str(Path(sys.executable).with_name("mlops"))  # the console script, as installed


def run_demo(state_dir: Path, *args: str, timeout: int = 600) -> dict:
    env = {**os.environ, "PREFECT_HOME": str(state_dir.parent / "prefect-home")}
    env.pop("MLOPS_STATE_DIR", None)
    proc = subprocess.run(
        [MLOPS, "demo", "--state-dir", str(state_dir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((state_dir / "demo-summary.json").read_text())


@pytest.fixture(scope="module")
def classifier_twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[tuple[dict, dict]]]:
    """The classifier demo twice in the same state directory, started as soon as a test asks for it."""
    state = tmp_path_factory.mktemp("classifier") / "state"

    def twice() -> tuple[dict, dict]:
        first = run_demo(state, "--use-case", "credit_default", "--months", "2")
        # Again in the same state directory: it must start fresh and tell the same story (one
        # month is enough to show that; the first run's second month has had its own checks).
        return first, run_demo(state, "--use-case", "credit_default", "--months", "1")

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(twice)


@pytest.mark.slow
@pytest.mark.usefixtures("classifier_twice")  # starts it, to run beside this year
def test_a_year_in_production_tells_the_real_story(tmp_path: Path):
    summary = run_demo(tmp_path / "state")
    months = summary["months"]
    assert summary["use_case"] == "bike_demand" and summary["metric"] == "rmse"
    assert [m["month"] for m in months] == [f"2011-{i:02d}" for i in range(4, 13)]
    for m in months:  # no row is ever lost
        assert m["rows_received"] == m["rows_accepted"] + m["rows_quarantined"], m
    assert sum(m["rows_received"] for m in months) + summary["bootstrap"]["rows"] == 8645
    corrupted = {m["month"]: m for m in months}["2011-07"]
    assert corrupted["rows_quarantined"] == 40 and corrupted["rows_accepted"] == 704
    assert all(m["rows_quarantined"] == 0 for m in months if m["month"] != "2011-07")

    # seasonal drift is detected, and not in every month
    assert months[0]["drift_detected"], "spring against a winter reference must drift"
    assert not all(m["drift_detected"] for m in months)
    retrained = [m for m in months if m["retrained"]]
    assert retrained and all(m["drift_detected"] for m in retrained)
    # every challenger is shipped through a real canary on the next month's traffic
    rollouts = [m["rollout"] for m in months if m["rollout"]]
    assert rollouts and any(r["outcome"] == "promoted" for r in rollouts)
    for before, after in itertools.pairwise(months):
        if before["challenger_version"]:
            rollout = after["rollout"]
            assert rollout["strategy"] == "canary" and rollout["candidate_version"] == before["challenger_version"]
            assert rollout["outcome"] in {"promoted", "rolled_back", "inconclusive"}
            assert rollout["final_weight"] == (1.0 if rollout["outcome"] == "promoted" else 0.0)
            served = set(after["live_model_version"].split(","))
            assert rollout["candidate_version"] in served and len(served) == 2  # both versions took user traffic
        else:
            assert after["rollout"] is None

    # every month's error on working days and the rest, relative to the month's overall error
    assert all(set(m["fairness"]) == {"fairness_workingday_relative_rmse_gap"} for m in months)

    story = summary["story"]
    assert story["months_after_first_retrain"] >= 6
    assert story["mean_live_error_after"] < story["mean_baseline_error_after"]

    for path in summary["reports"].values():
        assert Path(path).is_file(), path
    # an exploratory analysis for the bootstrap model's data and for each retraining's
    analysed = sorted(Path(summary["eda_reports"]).glob("*.html"))
    assert len(analysed) == 1 + sum(m["retrained"] for m in months), analysed
    assert {p.with_suffix(".json").is_file() for p in analysed} == {True}
    # a model card for every registered version: the bootstrap model and each retraining's
    cards = sorted(Path(summary["model_cards"]).glob("v*.md"))
    assert len(cards) == 1 + sum(m["retrained"] for m in months), cards


@pytest.mark.slow
def test_the_classifier_runs_the_same_loop_and_twice_in_a_row(classifier_twice: Future[tuple[dict, dict]]):
    first, second = classifier_twice.result()
    for summary, months in ((first, 2), (second, 1)):
        assert summary["use_case"] == "credit_default" and summary["metric"] == "roc_auc"
        assert len(summary["months"]) == months
        for m in summary["months"]:
            assert m["rows_received"] == m["rows_accepted"] + m["rows_quarantined"]
            assert 0.8 < m["live_error"] <= 1.0  # ROC AUC of the served model on the month
            # labelled at the threshold its cost rule chose (a miss costs 10 false alarms): well below 0.5,
            # catching most defaulters
            assert 0 < m["decision_threshold"] < 0.5
            assert m["recall_at_threshold"] > 0.5 and 0 < m["precision_at_threshold"] < 1
            # the gaps between students and the rest on the month's labels
            assert set(m["fairness"]) == {
                "fairness_student_demographic_parity_difference",
                "fairness_student_equalized_odds_difference",
            } and all(0 <= v <= 1 for v in m["fairness"].values())
        # every card says whether the probabilities are calibrated, and why (models.calibration)
        cards = sorted(Path(summary["model_cards"]).glob("v*.md"))
        assert cards and all("## Calibration of the probabilities" in c.read_text() for c in cards)
    assert second["bootstrap"]["model_version"] == "1"  # fresh registry, not a resumed one
    # The same month: the same rows, model versions, drift verdict and retraining, the same errors
    # (up to the last bits: a random forest sums its trees in whatever order its threads finish).
    (again,), once = second["months"], first["months"][0]
    assert {k: v for k, v in again.items() if not isinstance(v, float)} == {
        k: v for k, v in once.items() if not isinstance(v, float)
    }
    assert all(again[k] == pytest.approx(v, rel=1e-9) for k, v in once.items() if isinstance(v, float))
