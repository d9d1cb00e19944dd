"""Training on a lake larger than one Dask worker's memory limit: five million rows, workers of 1 GB.

The lake is the bike year replayed with noise (benchmarks/history.py), written day by day as the
ingestion flow writes it. Two worker processes capped at 1 GB each: a worker that passed its limit
would be killed by its nanny and the run would fail with ``KilledWorker``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.history import write_history
from core.settings import default_usecases_dir
from core.usecase import load_use_case
from pipelines.outofcore import index_lake, train_out_of_core

pytestmark = pytest.mark.slow

MEMORY_LIMIT = 1_000_000_000


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history") / "bike_demand"
    write_history(folder, rows=5_000_000)
    return folder


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=MEMORY_LIMIT, dashboard_address=None
    ) as cluster, Client(cluster) as client:  # fmt: skip
        client.wait_for_workers(2, timeout=60)
        yield client


def test_a_lake_larger_than_a_worker_trains_chunk_by_chunk_within_the_workers_memory(lake: Path, client):
    days = index_lake(lake)
    rows = sum(d.rows for d in days)
    # Larger than one worker may hold: the whole lake as one frame, measured on a day and scaled.
    one_day = pd.read_parquet(days[100].files[0])
    in_memory = one_day.memory_usage(deep=True).sum() / len(one_day) * rows
    assert rows > 4_900_000 and in_memory > MEMORY_LIMIT, (rows, in_memory)

    use_case = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    workers_before = set(client.scheduler_info()["workers"])
    result = train_out_of_core(lake, use_case, client=client, selection_rows=50_000, chunk_rows=500_000)

    # No worker died on the way (a killed worker comes back under a new address).
    assert set(client.scheduler_info()["workers"]) == workers_before
    assert result.workers == workers_before  # both took chunks
    assert result.rows["train"] + result.rows["test"] == rows
    # Each member saw one chunk: 500,000 rows and at most one day (~14,000 rows) more.
    assert result.members >= result.rows["train"] / 515_000 and result.rows["selection"] == 50_000
    # The model learned: far better than the mean on the newest days, none of which it saw.
    assert result.test_metrics["r2"] > 0.6, result.test_metrics
    assert result.algorithm in use_case.training.candidates

    # And it is an estimator like any other: it answers a frame of raw feature columns.
    from models.frames import coerce_features

    answer = result.model.predict(coerce_features(one_day.head(5), use_case))
    assert answer.shape == (5,) and np.isfinite(answer).all()


def test_the_out_of_core_flow_profiles_trains_compares_with_the_champion_and_registers(
    trained_state: Path, tmp_path: Path, client, monkeypatch: pytest.MonkeyPatch
):
    """The flow on a state whose lake is a 300,000-row history and whose champion is the bootstrap's."""
    import json
    import shutil

    from core.layout import StateLayout
    from models.frames import coerce_features
    from models.registry import MlflowRegistry
    from pipelines.outofcore import train_out_of_core_flow

    state = tmp_path / "state"
    shutil.copytree(trained_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    layout = StateLayout(state)
    lake = layout.curated / "bike_demand"
    assert lake.is_dir()
    shutil.rmtree(lake)
    rows = write_history(lake, rows=300_000, seed=3)
    monkeypatch.setenv("MLOPS_DASK_ADDRESS", client.scheduler.address)

    result = train_out_of_core_flow(
        use_case="bike_demand", state_dir=str(state), selection_rows=30_000, chunk_rows=60_000
    )
    assert result["rows"]["train"] + result["rows"]["test"] == rows and result["members"] >= 4
    assert result["champion_version"] == "1" and result["version"] == "2"
    assert result["decision"]["verdict"] in {"champion", "challenger", "rejected"}
    assert len(result["dask_workers"]) == 2
    profile = json.loads(Path(result["profile"]).read_text())
    assert profile["rows"] == rows and profile["target"]["count"] == rows and profile["days"]["count"] >= 300

    # The registered ensemble loads as the service loads a version (the skops file, its trust rule).
    model = MlflowRegistry(tracking_uri=layout.tracking_uri).load("bike-demand", "2")
    example = pd.read_parquet(next(lake.glob("*/*.parquet"))).head(4)
    use_case = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    assert type(model).__name__ == "PartitionEnsemble"
    assert np.isfinite(model.predict(coerce_features(example, use_case))).all()
