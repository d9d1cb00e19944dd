"""MLflow's backend store and Prefect's database on the machine's PostgreSQL (databases of their own).

The serving state and the prediction log are in test_postgres.py; the embedded SQLite
defaults are what every other test uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.registry import CHAMPION, MlflowRegistry, TrainingRecord
from pipelines.traffic import free_port, running_process


def test_the_mlflow_registry_on_postgres(pg_url: str, tmp_path: Path):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = make_pipeline(StandardScaler(), Ridge()).fit(X, [0.0, 1.0, 2.0, 3.0])
    registry = MlflowRegistry(tracking_uri=pg_url, artifact_root=tmp_path / "artifacts")
    record = TrainingRecord(
        experiment="pg",
        model_name="pg-model",
        model=model,
        params={"alpha": 1.0},
        metrics={"rmse": 0.1},
        tags={"data_version": "abc"},
        input_example=X.head(2),
        reference=X.assign(target=[0.0, 1.0, 2.0, 3.0]),
        artifacts=[],
        pip_requirements=["scikit-learn==1.9.1"],
    )
    first = registry.log_and_register(record)
    registry.set_alias("pg-model", CHAMPION, first.version)
    second = registry.log_and_register(record)

    assert (first.version, second.version) == ("1", "2")
    assert registry.by_alias("pg-model", CHAMPION).version == "1"
    assert registry.get("pg-model", "2").tags["data_version"] == "abc"
    assert list(registry.load("pg-model", "1").predict(X)) == pytest.approx(list(model.predict(X)))
    assert len(registry.reference(first)) == 4
    # the rows really are in PostgreSQL
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version FROM model_versions WHERE name = 'pg-model' ORDER BY version"))
        assert [r[0] for r in versions] == [1, 2]
    engine.dispose()


FLOW = """
from prefect import flow

@flow(name="pg-check")
def check(x: int) -> int:
    return x * 2

print(check(21))
"""


@pytest.mark.slow
def test_the_prefect_server_on_postgres(pg_url: str, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg_url.replace("postgresql+psycopg", "postgresql+asyncpg"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    api = f"http://127.0.0.1:{port}/api"
    with running_process(cmd, env=env, probe=f"{api}/health", log_path=tmp_path / "server.log"):
        client_env = {**env, "PREFECT_API_URL": api}
        run = subprocess.run(
            [sys.executable, "-c", FLOW], env=client_env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert run.returncode == 0 and run.stdout.strip().endswith("42"), run.stdout + run.stderr
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["pg-check"]}}}).json()
        assert [(r["state_type"], r["parameters"]) for r in runs] == [("COMPLETED", {"x": 21})]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*) FROM flow_run fr JOIN flow f ON f.id = fr.flow_id WHERE f.name = 'pg-check'")
        )
        assert stored.scalar() == 1  # the run is in PostgreSQL, not in a SQLite file
    engine.dispose()
