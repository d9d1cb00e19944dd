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


def _stop_local_prefect_servers(under: Path) -> None:
    from pipelines import local_server

    for note in under.rglob(local_server.NOTE):
        local_server.stop(note.parent)


@pytest.fixture(autouse=True)
def _local_prefect_servers_of_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The local Prefect servers a test's `mlops` commands started stop with the test (each would stop
    after its idle time anyway, but ten idle servers cost a CI run a few percent of a core)."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is not None:
        _stop_local_prefect_servers(folder)


@pytest.fixture(scope="session", autouse=True)
def _local_prefect_servers_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """...and those started in folders shared by a module or the session stop with the session."""
    yield
    _stop_local_prefect_servers(tmp_path_factory.getbasetemp())


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
