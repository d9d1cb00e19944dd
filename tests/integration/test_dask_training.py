"""Model selection on a Dask cluster (a real scheduler and two worker processes): the same winner and
test metrics as training in the process, with fits run on both workers; a worker killed mid-task
changes nothing; a scheduler that does not answer, or dies mid-training, is a clear error (or a local
run, when the settings ask for it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
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


@pytest.fixture(scope="module")
def local(trained_state: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same training in the process: what every cluster run must match."""
    from pipelines.train import train_flow

    return train_flow(
        use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path_factory.mktemp("local") / "state")
    )


def test_model_selection_on_a_dask_cluster_picks_the_same_winner_on_both_workers(
    trained_state: Path, tmp_path: Path, scheduler: tuple[str, set[str]], local: dict, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.train import train_flow

    address, workers = scheduler
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


class Processes:
    """A scheduler and two workers as operating-system processes of their own, as containers run them.

    Workers run without a nanny, so killing one is what killing its container does: the process is
    gone, with whatever it held. The scheduler keeps the copies of the training data each worker has
    (its active memory manager off, as in the stack).
    """

    def __init__(self, folder: Path) -> None:
        import os

        from tests.support.compose import free_port

        dask = str(Path(sys.executable).with_name("dask"))
        self.address = f"tcp://127.0.0.1:{free_port()}"
        env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START": "false"}
        log = (folder / "dask.log").open("w")
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        worker = [dask, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        worker += ["--memory-limit", "1GB"]
        self.workers = {
            name: subprocess.Popen([*worker, "--name", name], env=env, stdout=log, stderr=subprocess.STDOUT)
            for name in ("w0", "w1")
        }
        self.killed_at: float | None = None

    def wait(self) -> None:
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)

    def kill_when_busy(self, victim: str) -> threading.Thread:
        """Kill -9 ``victim`` (a worker's name, or "scheduler") once worker w0 is running a fit."""

        def watch() -> None:
            from distributed import Client

            with Client(self.address, timeout=30, set_as_default=False) as client:
                names = {addr: info["name"] for addr, info in client.scheduler_info()["workers"].items()}
                while not any(keys for addr, keys in client.processing().items() if names.get(addr) == "w0"):
                    time.sleep(0.05)
                self.killed_at = time.monotonic()
                (self.scheduler if victim == "scheduler" else self.workers[victim]).kill()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        for process in (self.scheduler, *self.workers.values()):
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    cluster = Processes(tmp_path)
    try:
        cluster.wait()
        yield cluster
    finally:
        cluster.stop()


def test_a_worker_killed_mid_task_has_its_fits_run_again_elsewhere_with_the_same_result(
    trained_state: Path, tmp_path: Path, processes: Processes, local: dict, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.train import train_flow

    monkeypatch.setenv("MLOPS_DASK_ADDRESS", processes.address)
    killer = processes.kill_when_busy("w0")
    on_cluster = train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "dask"))
    killer.join(timeout=5)
    assert processes.workers["w0"].poll() is not None, "the worker was never killed: no fit ever ran on it"
    assert on_cluster["algorithm"] == local["algorithm"]
    assert on_cluster["test_metrics"] == pytest.approx(local["test_metrics"], rel=1e-9)
    # Every fit that finished, the killed one's included, finished on the survivor.
    assert len(on_cluster["dask_workers"]) == 1


def test_a_scheduler_lost_mid_training_fails_the_run_at_once_with_a_clear_error(
    trained_state: Path, tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.train import train_flow

    monkeypatch.setenv("MLOPS_DASK_ADDRESS", processes.address)
    processes.kill_when_busy("scheduler")
    with pytest.raises(ClusterUnavailable, match=r"was lost during training"):
        train_flow(use_case="bike_demand", state_dir=state_copy(trained_state, tmp_path / "lost"))
    assert processes.killed_at is not None and time.monotonic() - processes.killed_at < 60  # failed, not hung
