"""The project's own tables are migrated at start-up, and data written by earlier releases stays readable.

Each case writes a database the way an earlier release left it, with raw SQL (that release's
schema), then opens it with today's stores: the tables reach the newest revision and the old
rows read as today's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.migrations import PREDICTION_LOG, head, revision
from core.predlog import PredictionLog
from services.serving.rollouts.store import ROLLOUT_STATE, RolloutStore

# The prediction log of the releases that wrote one row per record (before the per-request tables).
PER_RECORD_SCHEMA = [
    """CREATE TABLE predictions (
        row_id INTEGER PRIMARY KEY, prediction_id VARCHAR(128) NOT NULL, request_id VARCHAR(128) NOT NULL,
        ts FLOAT NOT NULL, use_case VARCHAR(64) NOT NULL, model_name VARCHAR(128) NOT NULL,
        model_version VARCHAR(32) NOT NULL, variant VARCHAR(32) DEFAULT 'stable' NOT NULL, features TEXT NOT NULL,
        prediction FLOAT, latency_ms FLOAT NOT NULL, error TEXT)""",
    "CREATE TABLE feedback (prediction_id VARCHAR(128) PRIMARY KEY, label TEXT NOT NULL, ts FLOAT NOT NULL)",
]
# The rollout state before the registry's revision was kept (a promotion not yet a durable intent).
UNVERSIONED_SERVING_STATE = [
    """CREATE TABLE serving_state (
        model_name VARCHAR(128) PRIMARY KEY, stable_version VARCHAR(32) NOT NULL,
        previous_version VARCHAR(32), revision INTEGER NOT NULL, updated_at FLOAT NOT NULL)""",
    "INSERT INTO serving_state VALUES ('bike-demand', '3', '2', 7, 1700000000.0)",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _execute(url: str, statements: list[str], rows: list[tuple[str, dict]] = ()) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        for statement, values in rows:
            conn.execute(sa.text(statement), values)
    engine.dispose()


def _record(hr: int) -> str:
    return json.dumps({"hr": hr, "temp": 0.5})


def test_a_per_record_prediction_log_is_read_as_requests_with_its_labels(url):
    insert = (
        "INSERT INTO predictions VALUES (:row, :pid, :rid, :ts, 'bike_demand', 'bike-demand', '4', :variant,"
        " :features, :prediction, 2.0, NULL)"
    )
    written = [  # (prediction id, request id, variant, hour, prediction), in the order they were written
        ("b/1", "b", "stable", 9, 90.0),
        ("b/0", "b", "stable", 8, 80.0),
        ("s", "s", "stable", 7, 70.0),
        ("s", "s", "shadow", 7, 75.0),
    ]
    rows = [
        (insert, {"row": n, "pid": pid, "rid": rid, "ts": 10.0 + n, "variant": variant, "features": _record(hr),
                  "prediction": value})
        for n, (pid, rid, variant, hr, value) in enumerate(written)
    ]  # fmt: skip
    rows += [(f"INSERT INTO feedback VALUES ('{pid}', '{label}', 12.0)", {}) for pid, label in (("b/1", 91), ("s", 72))]
    _execute(url, PER_RECORD_SCHEMA, rows)

    log = PredictionLog(url)
    assert revision(log._engine, PREDICTION_LOG) == head(PREDICTION_LOG)
    window = log.window(use_case="bike_demand", since=0, until=100)
    assert [(r.prediction_id, r.features["hr"], r.prediction, r.label) for r in window] == [
        ("b/0", 8, 80.0, None),
        ("b/1", 9, 90.0, 91),
        ("s", 7, 70.0, 72),
    ]
    assert log.paired(use_case="bike_demand", since=0, until=100) == [(70.0, 75.0)]
    assert log.request_records(["b", "nobody"]) == {"b": [{"hr": 8, "temp": 0.5}, {"hr": 9, "temp": 0.5}]}
    assert log.unknown_ids(["b/0", "b/1", "s", "b/2"]) == ["b/2"]
    log.close()
    # the old tables are left as they were: nothing is deleted by a migration
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == 4
    engine.dispose()
    # and opening it again migrates nothing twice
    again = PredictionLog(url)
    assert len(again.window(use_case="bike_demand", since=0, until=100)) == 3
    again.close()


def test_a_rollout_state_written_before_promotions_were_intents_is_upgraded_in_agreement(url):
    _execute(url, UNVERSIONED_SERVING_STATE)
    store = RolloutStore(url)
    assert revision(store._engine, ROLLOUT_STATE) == head(ROLLOUT_STATE)
    assert store.serving_state("bike-demand") == ("3", "2", 7)
    assert store.registry_intent("bike-demand") is None  # its registry agreed when it was written
    store.set_stable("bike-demand", "2", now=1.8e9, from_registry=False)  # a rollback: the registry to follow
    assert store.registry_intent("bike-demand") == ("2", "3", 8)
    assert store.mark_registry_synced("bike-demand", 8) and store.registry_intent("bike-demand") is None
    store.close()


def test_replicas_starting_together_on_an_empty_database_migrate_it_once(pg_url):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: PredictionLog(pg_url), range(4)))
    assert {revision(s._engine, PREDICTION_LOG) for s in stores} == {head(PREDICTION_LOG)}
    for store in stores:
        store.close()
