"""The prediction log's one-statement batch INSERT, on both databases it runs on: SQLite and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from core.predlog import LoggedRequest, PredictionLog, requests

# Values a JSON round trip through the database could alter: floats with 17 significant digits,
# a NumPy scalar, text that needs escaping, a request whose model failed.
BATCH = [
    LoggedRequest("a", 1764582123.123456, "u", "m", "1", "stable", [{"x": 0.1 + 0.2, "s": 'q"\\é\n'}], [math.pi], 1.25),
    LoggedRequest("b/x", 1764582124.5, "u", "m", "1", "stable", [{"x": 1}, {"x": 2}], [np.float64(1 / 3), 2.0], 2.5),
    LoggedRequest("c", 1764582125.0, "u", "m", "2", "candidate", [{"x": 3}], None, 0.5, "ValueError: 'x' is off"),
    LoggedRequest("c", 1764582125.0, "u", "m", "1", "stable", [{"x": 3}], [7.0], 0.75),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_batch_is_stored_exactly_as_answered_in_order_and_a_repeat_is_stored_once(url: str):
    log = PredictionLog(url)
    log.write(BATCH)
    log.write([BATCH[0], LoggedRequest("d", 1764582126.0, "u", "m", "1", "stable", [{"x": 4}], [8.0], 1.0)])
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.select(requests).order_by(requests.c.row_id)).mappings().all()
    log.close()
    assert [(r["request_id"], r["variant"]) for r in rows] == [
        ("a", "stable"), ("b/x", "stable"), ("c", "candidate"), ("c", "stable"), ("d", "stable"),
    ]  # fmt: skip
    for row, sent in zip(rows, BATCH, strict=False):
        assert orjson.loads(row["features"]) == list(sent.features)  # floats to the last digit, text as sent
        if sent.predictions is None:
            assert row["predictions"] is None
        else:
            assert orjson.loads(row["predictions"]) == [float(v) for v in sent.predictions]
        assert (row["ts"], row["latency_ms"], row["n_records"], row["error"]) == (
            sent.ts, sent.latency_ms, sent.n_records, sent.error,
        )  # fmt: skip
        assert (row["use_case"], row["model_name"], row["model_version"]) == ("u", "m", sent.model_version)


def test_the_batch_columns_are_the_tables_own():
    """The INSERT names its columns in the order each row is sent: a column added to the table must be added to both."""
    from core.predlog import _WRITTEN

    assert tuple(c.name for c in requests.columns if c.name != "row_id") == _WRITTEN


def test_a_lookup_of_request_ids_finds_the_logged_ones_by_their_exact_text(url: str):
    log = PredictionLog(url)
    odd = 'q"\\é/7'  # quotes, a backslash and non-ASCII in an id survive the JSON parameter
    log.write([*BATCH, LoggedRequest(odd, 1764582127.0, "u", "m", "1", "stable", [{"x": 5}], [9.0], 1.0)])
    many = [f"absent-{i}" for i in range(2_000)]  # one parameter, whatever the count (IN lists went by 500)
    found = log.request_records(["a", "b/x", "c", odd, "A", "b", *many])
    empty = log.request_records([])
    log.close()
    # "c" was logged under two variants, with the same records; "A" and "b" only resemble logged ids.
    assert found == {"a": list(BATCH[0].features), "b/x": [{"x": 1}, {"x": 2}], "c": [{"x": 3}], odd: [{"x": 5}]}
    assert empty == {}


def test_a_failed_lookup_on_sqlite_is_raised_as_sqlalchemy_would_and_the_next_one_reconnects(tmp_path):
    from core.db import UNAVAILABLE

    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(url)
    log.write(BATCH)
    assert set(log.request_records(["a"])) == {"a"}  # its own connection is open now
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_requests RENAME TO moved_away")
    with pytest.raises(UNAVAILABLE):  # what the service answers unchecked on, as for a database restart
        log.request_records(["a"])
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("ALTER TABLE moved_away RENAME TO prediction_requests")
    assert set(log.request_records(["a", "b/x"])) == {"a", "b/x"}
    log.close()
