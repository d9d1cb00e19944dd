"""Shared fixtures. Every test writes under its own temporary state directory; telemetry is off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from core.telemetry import disable_telemetry
from core.usecase import UseCase, load_use_case

ROOT = Path(__file__).resolve().parents[1]
USECASES = ROOT / "usecases"
DATA = ROOT / "data"

disable_telemetry()
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Services the tests start accept their short test tokens; tests of production settings say dev_mode=False.
os.environ.setdefault("MLOPS_DEV_MODE", "true")


@pytest.fixture(scope="session", autouse=True)
def _local_prefect_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The local Prefect servers that the session's `mlops` commands started stop with the session
    (each would stop after its idle time anyway); they all live under the session's temporary folder."""
    yield
    from pipelines import local_server

    for note in tmp_path_factory.getbasetemp().rglob(local_server.NOTE):
        local_server.stop(note.parent)


@pytest.fixture(scope="session")
def bike() -> UseCase:
    return load_use_case("bike_demand", usecases_dir=USECASES)


@pytest.fixture(scope="session")
def credit() -> UseCase:
    return load_use_case("credit_default", usecases_dir=USECASES)


@pytest.fixture(scope="session")
def bike_raw_bytes() -> bytes:
    return (DATA / "Bikeshare.csv").read_bytes()


@pytest.fixture(scope="session")
def bike_frame() -> pd.DataFrame:
    """The bike data with its derived event time, as the curated dataset holds it."""
    frame = pd.read_csv(DATA / "Bikeshare.csv")
    frame["event_time"] = (
        pd.Timestamp("2011-01-01") + pd.to_timedelta(frame.day - 1, unit="D") + pd.to_timedelta(frame.hr, unit="h")
    )
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()
