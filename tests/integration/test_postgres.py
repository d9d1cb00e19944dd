"""The serving state and the prediction log on the machine's real PostgreSQL (a database of their own)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from core.predlog import LoggedRequest, PredictionLog
from services.serving.rollouts import engine
from services.serving.rollouts.config import RolloutConfig
from services.serving.rollouts.store import ConflictError, RolloutStore


def test_rollout_state_and_decision_log_on_postgres(pg_url: str):
    store = RolloutStore(pg_url)
    store.set_stable("m", "1", now=1.0, from_registry=True)
    rollout, events = engine.start(
        RolloutConfig(strategy="ab", candidate_version="2"), model_name="m", stable_version="1", now=2.0, actor="t"
    )
    stored = store.create(rollout, events)
    with pytest.raises(ConflictError, match="one rollout at a time"):
        store.create(rollout.evolve(id="other"), [])
    promoted, more = engine.promote(stored, now=3.0, actor="t")
    store.update(promoted, more, expected_revision=stored.revision)
    with pytest.raises(ConflictError, match="changed since revision"):
        store.update(promoted, [], expected_revision=stored.revision)  # a stale writer loses
    assert store.serving_state("m") == ("2", "1", 2)
    assert [e.kind for e in store.events(rollout.id)] == ["started", "promoted"]
    store.close()
    reopened = RolloutStore(pg_url)  # survives a restart
    assert reopened.get(rollout.id).phase == "promoted" and reopened.active("m") is None
    reopened.close()


def test_prediction_log_and_feedback_on_postgres(pg_url: str):
    log = PredictionLog(pg_url)
    log.write(
        [
            LoggedRequest("r1", 10.0, "uc", "m", "1", "stable", [{"x": 1}], [2.5], 1.0),
            LoggedRequest("b", 11.0, "uc", "m", "1", "stable", [{"x": 2}, {"x": 3}], [4.0, 5.0], 1.0),
        ]
    )
    assert log.unknown_ids(["r1", "r2", "b/1", "b/2", "b"]) == ["r2", "b/2", "b"]
    log.add_feedback([("r1", 3.0), ("b/1", 6.0)], ts=11.0)
    # a request retried on another replica, labels sent twice: each is stored once
    log.write([LoggedRequest("r1", 10.5, "uc", "m", "1", "stable", [{"x": 1}], [2.5], 1.0)])
    log.add_feedback([("r1", 3.0), ("r1", 3.0)], ts=11.0)
    rows = log.window(use_case="uc", since=0, until=100)
    assert [(r.prediction_id, r.prediction, r.label, r.features) for r in rows] == [
        ("r1", 2.5, 3.0, {"x": 1}),
        ("b/0", 4.0, None, {"x": 2}),
        ("b/1", 5.0, 6.0, {"x": 3}),
    ]
    log.close()


def test_replicas_starting_together_on_an_empty_database_all_get_the_schema(pg_url: str):
    """Two replicas of a stack start at the same moment; neither may fail creating the tables."""
    barrier = threading.Barrier(4)

    def open_both() -> None:
        barrier.wait()
        store = RolloutStore(pg_url)
        PredictionLog(pg_url).close()
        barrier.wait()
        # each replica adopts the registry's champion at start-up
        store.set_stable("m", "1", now=1.0, from_registry=True)
        store.close()

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(open_both) for _ in range(4)]:
            future.result()
    tables = sa.inspect(sa.create_engine(pg_url)).get_table_names()
    assert {"serving_state", "prediction_requests", "prediction_labels"} <= set(tables)
    store = RolloutStore(pg_url)
    assert store.serving_state("m")[0] == "1"
    store.close()
