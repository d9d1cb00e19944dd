"""The serving benchmark's goal ratios: taken within each repetition, then their median."""

from __future__ import annotations

import pytest

from benchmarks.serving import goals_met, summarize


def _run(rps: float, p50_ms: float = 10.0, rows_per_s: float = 0.0, p99_ms: float = 20.0) -> dict[str, float]:
    return {"rps": rps, "p50_us": p50_ms * 1000, "p99_us": p99_ms * 1000, "rows_per_s": rows_per_s}


def test_ratios_are_taken_within_a_repetition_then_their_median():
    # The machine is twice as fast in the second repetition: every target alike.
    floors = [
        {"p50_ms": 10.0, "batch_rows_per_s": 50_000.0},
        {"p50_ms": 5.0, "batch_rows_per_s": 100_000.0},
        {"p50_ms": 10.0, "batch_rows_per_s": 50_000.0},
    ]
    runs = {
        ("ours", "single", 16): [_run(800), _run(1600, p99_ms=40.0), _run(800, p99_ms=35.0)],
        ("floor", "single", 16): [_run(2000), _run(3200), _run(4000)],
        ("mlflow", "single", 16): [_run(50), _run(100), _run(40)],
        ("ours-canary", "single", 16): [_run(600), _run(1200), _run(640)],
        ("ours", "single", 1): [_run(90, p50_ms=12.0), _run(180, p50_ms=6.5), _run(90, p50_ms=13.0)],
        ("ours", "batch", 1): [_run(40, rows_per_s=35_000), _run(80, rows_per_s=70_000), _run(40, rows_per_s=40_000)],
    }

    ratios = summarize(floors, runs, cold_start_s=2.5)

    assert ratios["throughput_vs_mlflow_c16"] == pytest.approx(16.0)  # 16, 16, 20
    assert ratios["canary_vs_single"] == pytest.approx(0.75)  # 0.75, 0.75, 0.8
    assert ratios["p50_overhead_ms_c1"] == pytest.approx(2.0)  # 2, 1.5, 3
    assert ratios["batch_vs_raw"] == pytest.approx(0.7)  # 0.7, 0.7, 0.8
    assert ratios["cold_start_s"] == 2.5
    assert ratios["throughput_vs_floor_c16"] == pytest.approx(0.4)  # 0.4, 0.5, 0.2
    assert ratios["p99_over_p50_c16"] == pytest.approx(3.5)  # 2, 4, 3.5
    assert "p99_over_p50_c64" not in ratios  # not measured in this run


def test_goals_compare_each_ratio_with_its_bound():
    ratios = {
        "throughput_vs_mlflow_c16": 5.0,
        "p50_overhead_ms_c1": 6.1,
        "canary_vs_single": 0.89,
        "batch_vs_raw": 0.7,
        "cold_start_s": 3.0,
        "p99_over_p50_c16": 3.1,
    }
    # p50 overhead bound: 0.5 x the floor's p50 + 1 ms = 6 ms for a 10 ms floor.
    assert goals_met(ratios, {"p50_ms": 10.0}) == {
        "throughput_vs_mlflow_c16": True,
        "p50_overhead_ms_c1": False,
        "canary_vs_single": False,
        "batch_vs_raw": True,
        "cold_start_s": True,
        "p99_over_p50_c16": False,
    }  # the goals of points this run did not measure are left out


def test_the_growth_table_shows_the_cluster_rows_and_a_dash_where_a_stage_did_not_run():
    from benchmarks.pipeline import CLUSTER_STAGES, STAGES, table

    sizes = {
        10_000: {**dict.fromkeys(STAGES, 1.0), CLUSTER_STAGES[0]: 2.0, CLUSTER_STAGES[1]: 3.0},
        100_000: {**dict.fromkeys(STAGES, 2.0), CLUSTER_STAGES[0]: 4.0, CLUSTER_STAGES[1]: 6.0},
        5_000_000: {CLUSTER_STAGES[1]: 60.0},  # the history: only out-of-core runs
    }
    lines = table(sizes).splitlines()
    assert lines[0] == "| stage | 10,000 rows | 100,000 rows | 5,000,000 rows | growth (last step) |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert rows["train"] == "| train | 1.0 s | 2.0 s | - | 2.0x for 10x rows |"
    assert rows[CLUSTER_STAGES[1]] == f"| {CLUSTER_STAGES[1]} | 3.0 s | 6.0 s | 60.0 s | 10.0x for 50x rows |"
    assert len(rows) == len(STAGES) + 2
