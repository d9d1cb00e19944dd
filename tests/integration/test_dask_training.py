"""Model selection on a Dask cluster (a real scheduler and two worker processes): the same winner and
test metrics as training in the process, with fits run on both workers; a scheduler that does not
answer is a clear error, or a local run when the settings ask for it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.cluster import ClusterUnavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scheduler() -> Iterator[tuple[str, set[str]]]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            workers = set(client.scheduler_info()["workers"])
        yield cluster.scheduler_address, workers


def state_copy(trained_state: Path, folder: Path) -> str:
    shutil.copytree(trained_state, folder, ignore=shutil.ignore_patterns("predictions.db*"))
    return str(folder)


def test_model_selection_on_a_dask_cluster_picks_the_same_winner_on_both_workers(
    trained_state: Path, tmp_path: Path, scheduler: tuple[str, set[str]], monkeypatch: pytest.MonkeyPatch
):
    from pipelines.train import train_flow

    address, workers = scheduler
    local = train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "local"))
    monkeypatch.setenv("MLOPS_DASK_ADDRESS", address)  # read when the second state folder's runtime is made
    on_cluster = train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "dask"))
    assert local["dask_workers"] == []
    assert set(on_cluster["dask_workers"]) == workers  # fits ran on both workers
    assert on_cluster["algorithm"] == local["algorithm"]
    assert on_cluster["test_metrics"] == pytest.approx(local["test_metrics"], rel=1e-9)
    assert on_cluster["decision"]["verdict"] == local["decision"]["verdict"]


def test_a_scheduler_that_does_not_answer_fails_the_run_or_falls_back_when_asked(
    trained_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.train import train_flow

    monkeypatch.setenv("MLOPS_DASK_ADDRESS", "tcp://127.0.0.1:1")
    monkeypatch.setenv("MLOPS_DASK_TIMEOUT_SECONDS", "2")
    with pytest.raises(ClusterUnavailable, match=r"tcp://127\.0\.0\.1:1 does not answer.*MLOPS_DASK_FALLBACK=local"):
        train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "fail"))
    monkeypatch.setenv("MLOPS_DASK_FALLBACK", "local")
    result = train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "fallback"))
    assert result["dask_workers"] == [] and result["version"]
