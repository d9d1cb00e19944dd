"""The `mlops` command line as installed: help texts and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

MLOPS = str(Path(sys.executable).with_name("mlops"))  # the console script, as installed

STAGES = ["ingest", "validate", "train", "serve", "monitor", "retrain", "demo"]


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


def test_serve_refuses_the_default_token_outside_dev_mode(tmp_path):
    env = {**os.environ, "MLOPS_DEV_MODE": "false", "MLOPS_STATE_DIR": str(tmp_path)}
    env.pop("MLOPS_ADMIN_TOKEN", None)
    out = subprocess.run(
        [MLOPS, "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "MLOPS_ADMIN_TOKEN must be set to a secret" in out.stderr
