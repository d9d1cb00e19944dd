"""The `mlops` command line as installed: help texts and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

MLOPS = str(Path(sys.executable).with_name("mlops"))  # the console script, as installed

STAGES = ["ingest", "validate", "eda", "train", "serve", "monitor", "retrain", "demo"]


def mlops(*args: str, state: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if state is not None:
        env.update(MLOPS_STATE_DIR=str(state), PREFECT_HOME=str(state / "prefect"))
    return subprocess.run([MLOPS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_stage_has_a_subcommand_with_help():
    out = mlops("--help")
    assert out.returncode == 0
    for stage in STAGES:
        assert stage in out.stdout
        sub = mlops(stage, "--help")
        assert sub.returncode == 0 and "--state-dir" in sub.stdout, stage


def test_version_and_the_use_case_schema(tmp_path):
    from importlib.metadata import version

    out = mlops("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mlops-loop {version('mlops-loop')}"
    assert "Exit codes: 0 done; 1 refused" in " ".join(mlops("--help").stdout.split())
    written = tmp_path / "schema.json"
    assert mlops("usecase", "schema", "--out", str(written)).returncode == 0
    assert written.read_text() == (ROOT / "usecases" / "usecase.schema.json").read_text()


def test_unknown_use_case_is_a_clear_error(tmp_path):
    out = mlops("validate", str(ROOT / "data" / "Bikeshare.csv"), "--use-case", "nope", state=tmp_path)
    assert out.returncode == 2 and "unknown use case 'nope'" in out.stderr


@pytest.mark.slow
def test_validate_reports_a_broken_batch_and_writes_no_data(tmp_path):
    batch = tmp_path / "broken.csv"
    batch.write_text("season,mnth\n1,Jan\n")
    out = mlops("validate", str(batch), state=tmp_path / "state")
    assert out.returncode == 1 and "missing columns" in out.stderr
    assert not (tmp_path / "state" / "curated").exists()


@pytest.mark.slow
def test_ingest_exits_non_zero_on_a_rejected_batch(tmp_path):
    batch = tmp_path / "empty.csv"
    batch.write_text("")
    out = mlops("ingest", str(batch), state=tmp_path / "state")
    assert out.returncode == 1 and "batch rejected: file is empty" in out.stderr


@pytest.mark.slow
def test_flow_commands_share_one_local_prefect_server_that_records_their_runs(tmp_path):
    import httpx

    state = tmp_path / "state"
    for month in ("2011-07", "2011-08"):
        assert mlops("sample-batch", month, "--out", str(tmp_path / f"{month}.csv")).returncode == 0
    first = mlops("ingest", str(tmp_path / "2011-07.csv"), state=state)
    assert first.returncode == 0, first.stderr
    server = json.loads(mlops("prefect", "status", "--json", state=state).stdout)
    second = mlops("ingest", str(tmp_path / "2011-08.csv"), state=state)
    assert second.returncode == 0, second.stderr
    # The second command found the first one's server: the same process, and no server of its own.
    assert json.loads(mlops("prefect", "status", "--json", state=state).stdout) == server
    assert "temporary server" not in first.stderr + second.stderr
    runs = httpx.post(f"{server['url']}/flow_runs/filter", json={}, timeout=10).json()
    assert sorted(run["state_type"] for run in runs) == ["COMPLETED", "COMPLETED"]

    stopped = mlops("prefect", "stop", state=state)
    assert stopped.returncode == 0 and f"stopped {server['url']}" in stopped.stdout
    assert mlops("prefect", "status", state=state).returncode == 1
    # With no shared server asked for, a command runs its flows on Prefect's temporary server.
    env = {**os.environ, "MLOPS_STATE_DIR": str(state), "PREFECT_HOME": str(state / "prefect"),
           "MLOPS_LOCAL_PREFECT_IDLE_MINUTES": "0"}  # fmt: skip
    again = subprocess.run([MLOPS, "ingest", str(tmp_path / "2011-08.csv")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "already ingested" in again.stderr + again.stdout
    assert "Starting temporary server" in again.stderr + again.stdout
    assert mlops("prefect", "status", state=state).returncode == 1


def test_serve_refuses_the_default_token_outside_dev_mode(tmp_path):
    env = {**os.environ, "MLOPS_DEV_MODE": "false", "MLOPS_STATE_DIR": str(tmp_path)}
    env.pop("MLOPS_ADMIN_TOKEN", None)
    out = subprocess.run(
        [MLOPS, "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "MLOPS_ADMIN_TOKEN must be set to a secret" in out.stderr


def test_serve_with_its_database_down_retries_then_says_which(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(tmp_path),
        "MLOPS_PREDICTION_LOG_URL": f"postgresql+psycopg://postgres:pw@127.0.0.1:{port}/serving",
        "MLOPS_STARTUP_TIMEOUT_SECONDS": "2",
    }
    out = subprocess.run(
        [MLOPS, "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3, out.stderr
    assert (
        f"cannot reach the prediction-log database at postgresql+psycopg://postgres:***@127.0.0.1:{port}" in out.stderr
    )
    assert "waiting for the prediction-log database" in out.stderr and ":pw@" not in out.stderr


def test_serve_with_mlflow_down_retries_then_says_which(tmp_path):
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(tmp_path),
        "MLOPS_TRACKING_URI": "http://127.0.0.1:9/",
        "MLOPS_STARTUP_TIMEOUT_SECONDS": "1",
    }
    out = subprocess.run(
        [MLOPS, "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3 and "cannot reach the MLflow tracking server at http://127.0.0.1:9/health" in out.stderr


def test_the_worker_explains_what_it_needs(tmp_path):
    env = {**os.environ, "MLOPS_STATE_DIR": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run([MLOPS, "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "the worker needs a Prefect server: set PREFECT_API_URL" in out.stderr
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    env.pop("MLOPS_INBOX", None)
    out = subprocess.run([MLOPS, "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "set MLOPS_INBOX" in out.stderr


def test_sample_batch_writes_a_month_and_refuses_an_unknown_one(tmp_path):
    out = subprocess.run(
        [MLOPS, "sample-batch", "2011-07", "--out", str(tmp_path / "july.csv")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and len((tmp_path / "july.csv").read_text().splitlines()) == 745
    out = subprocess.run(
        [MLOPS, "sample-batch", "2012-01", "--out", str(tmp_path / "x.csv")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "no drop '2012-01'" in out.stderr and "2011-12" in out.stderr


@pytest.mark.slow
def test_every_command_reads_the_use_case_and_its_folder_from_the_environment(tmp_path):
    """MLOPS_USECASES_DIR and MLOPS_USE_CASE, as the serving settings read them, for sample-batch and validate."""
    import yaml

    folder = tmp_path / "usecases"
    folder.mkdir()
    credit = yaml.safe_load((ROOT / "usecases" / "credit_default.yaml").read_text())
    credit.update(name="cards", source={"uri": str(ROOT / "data" / "Default.csv")})
    (folder / "cards.yaml").write_text(yaml.safe_dump(credit))
    env = {**os.environ, "MLOPS_USECASES_DIR": str(folder), "MLOPS_USE_CASE": "cards",
           "MLOPS_STATE_DIR": str(tmp_path / "state"), "PREFECT_HOME": str(tmp_path / "state" / "prefect")}  # fmt: skip
    batch = tmp_path / "march.csv"
    out = subprocess.run([MLOPS, "sample-batch", "2011-03", "--out", str(batch)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert batch.read_text().splitlines()[0] == "default,student,balance,income"
    out = subprocess.run([MLOPS, "validate", str(batch), "--json"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["rows_accepted"] in (833, 834)
    # without --json, the same as a line a person reads
    out = subprocess.run([MLOPS, "validate", str(batch)], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.stdout.startswith(f"{result['rows_received']} rows: {result['rows_accepted']} would be accepted")


@pytest.mark.slow
def test_ingest_exits_non_zero_when_no_row_is_accepted(tmp_path):
    import pandas as pd

    batch = tmp_path / "no-temp.csv"
    rows = pd.read_csv(ROOT / "data" / "Bikeshare.csv", dtype=str, keep_default_na=False).head(49)
    rows.assign(temp="").to_csv(batch, index=False)  # the column is empty in every row
    out = mlops("ingest", str(batch), state=tmp_path / "state")
    assert out.returncode == 1 and "batch rejected: no row accepted: all 49 quarantined" in out.stderr


@pytest.mark.slow
def test_eda_without_data_says_what_to_do_first(tmp_path):
    out = mlops("eda", state=tmp_path / "state")
    assert out.returncode == 2 and "no curated data for 'bike_demand': ingest a batch first" in out.stderr


@pytest.mark.slow
def test_a_model_card_without_a_model_says_so(tmp_path):
    out = mlops("model-card", state=tmp_path / "state")
    assert out.returncode == 2 and "'bike-demand' has no champion yet" in out.stderr


def test_the_stream_commands_name_what_is_wrong(tmp_path):
    down = {"MLOPS_STREAM_URL": "redis://127.0.0.1:1/0", "MLOPS_STARTUP_TIMEOUT_SECONDS": "1",
            "MLOPS_STREAM_METRICS_PORT": "0"}  # fmt: skip
    env = {**os.environ, "MLOPS_STATE_DIR": str(tmp_path / "state"), **down}

    def stream(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MLOPS, "stream", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    consume = stream("consume")
    assert consume.returncode == 3
    assert "redis://127.0.0.1:1/0 does not answer" in consume.stderr and "gave up after 1 s" in consume.stderr
    produce = stream("produce", "--count", "5")
    assert produce.returncode == 3 and "does not answer" in produce.stderr
    faults = stream("produce", "--faults", "typos=0.1")
    assert faults.returncode == 2 and "unknown fault 'typos'" in faults.stderr
    unknown = stream("status", "--use-case", "nope")
    assert unknown.returncode == 2 and "unknown use case 'nope'" in unknown.stderr
    assert stream("--help").returncode == 0 and all(
        c in stream("--help").stdout for c in ("consume", "produce", "bench", "status")
    )


def test_the_flow_worker_and_out_of_core_training_explain_what_they_need(tmp_path):
    env = {**os.environ, "MLOPS_STATE_DIR": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    env.pop("MLOPS_FLOW_POOL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MLOPS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    out = run("flow-worker")
    assert out.returncode == 2 and "set MLOPS_FLOW_POOL" in out.stderr
    env["MLOPS_FLOW_POOL"] = "containers"
    out = run("flow-worker")  # on this machine, not in a container of the engine (or with no engine at all)
    assert out.returncode == 2
    assert "does not run in one" in out.stderr or "does not answer on its socket" in out.stderr
    env.pop("MLOPS_DASK_ADDRESS", None)
    out = run("train", "--out-of-core")
    assert out.returncode == 2 and "set MLOPS_DASK_ADDRESS" in out.stderr
    out = run("train", "--out-of-core", "--until", "2011-06-01")
    assert out.returncode == 2 and "takes neither --until" in out.stderr
