"""Integration fixtures: a real Prefect API (the test harness), real MLflow on SQLite, real GX."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import DATA, csv_bytes


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes ~10 s to start)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def bike_raw() -> pd.DataFrame:
    return pd.read_csv(DATA / "Bikeshare.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def bootstrap_file(tmp_path_factory: pytest.TempPathFactory, bike_raw: pd.DataFrame) -> Path:
    """January-March 2011, as the demo's first drop."""
    path = tmp_path_factory.mktemp("drops") / "bootstrap.csv"
    path.write_bytes(csv_bytes(bike_raw[bike_raw.mnth.isin(["Jan", "Feb", "March"])]))
    return path


@pytest.fixture(scope="session")
def trained_state(tmp_path_factory: pytest.TempPathFactory, bootstrap_file: Path, prefect_api: None) -> Path:
    """A state directory with the bootstrap batch ingested and a champion registered (built once)."""
    from pipelines.ingest import ingest_flow
    from pipelines.train import train_flow

    root = tmp_path_factory.mktemp("trained") / "state"
    ingest_flow(source=str(bootstrap_file), use_case="bike_demand", state_dir=str(root))
    train_flow(use_case="bike_demand", state_dir=str(root))
    return root


@pytest.fixture(scope="session")
def registry_state(tmp_path_factory, bootstrap_file, prefect_api) -> Path:
    """v1 champion, v2 a second sound model, v3 a version whose artifact cannot be loaded."""
    from mlflow import MlflowClient

    from core.layout import StateLayout
    from pipelines.ingest import ingest_flow
    from pipelines.train import train_flow

    root = tmp_path_factory.mktemp("rollouts") / "state"
    ingest_flow(source=str(bootstrap_file), use_case="bike_demand", state_dir=str(root))
    train_flow(use_case="bike_demand", state_dir=str(root))
    train_flow(use_case="bike_demand", state_dir=str(root))
    uri = StateLayout(root).tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).create_model_version(
        "bike-demand", source=str(root / "missing-artifact"), run_id=None
    )
    return root


SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = f"mlops_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {err}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
