"""The prediction log: a bounded analysis sample, batches expanded into records, prediction ids."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.predlog import LoggedRequest, PredictionLog, prediction_ids, split_prediction_id


def test_version_rows_keeps_the_newest_rows_of_the_window(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    log.write(
        [
            LoggedRequest(f"p{i}", float(i), "u", "m", "2" if i % 2 else "1", "stable", [{}], [float(i)], 1.0)
            for i in range(100)
        ]
    )
    everything = log.version_rows(use_case="u", version="1", since=0, until=100, user_facing_only=True)
    newest = log.version_rows(use_case="u", version="1", since=0, until=100, user_facing_only=True, max_rows=5)
    log.close()
    assert len(everything.predictions) == 50
    assert sorted(newest.predictions) == [90.0, 92.0, 94.0, 96.0, 98.0]


def test_a_batch_is_one_request_and_many_records(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    log.write(
        [
            LoggedRequest("old", 1.0, "u", "m", "1", "stable", [{"x": 0}] * 4, [0.0, 1.0, 2.0, 3.0], 5.0),
            LoggedRequest("new", 2.0, "u", "m", "1", "stable", [{"x": 1}] * 3, [4.0, 5.0, 6.0], 7.0),
            LoggedRequest("new", 2.0, "u", "m", "2", "shadow", [{"x": 1}] * 3, [4.5, 5.5, 6.5], 9.0),
            LoggedRequest("bad", 2.0, "u", "m", "2", "candidate", [{"x": 1}], None, 1.0, "ValueError: no"),
        ]
    )
    log.add_feedback([("new/2", 60), ("old/0", 0)], ts=3.0)
    rows = log.version_rows(use_case="u", version="1", since=0, until=10, user_facing_only=True, max_rows=5)
    # five records, newest request first: all of "new", then two of "old" (its records share one time)
    assert sorted(rows.predictions) == [0.0, 1.0, 4.0, 5.0, 6.0]
    assert sorted(label for label in rows.labels if label is not None) == [0, 60]
    assert sorted(rows.latencies_ms) == [5.0, 5.0, 7.0, 7.0, 7.0]
    failed = log.version_rows(use_case="u", version="2", since=0, until=10, user_facing_only=True)
    assert failed.predictions == [None] and failed.variants == ["candidate"]
    assert log.paired(use_case="u", since=0, until=10) == [(4.0, 4.5), (5.0, 5.5), (6.0, 6.5)]
    window = log.window(use_case="u", since=0, until=10)  # users' answers only: no shadow, no failure
    assert [r.prediction_id for r in window] == ["old/0", "old/1", "old/2", "old/3", "new/0", "new/1", "new/2"]
    assert log.unknown_ids(["old/3", "old/4", "old", "new/x", "bad", "ghost"]) == ["old/4", "old", "new/x", "ghost"]
    log.close()


@pytest.mark.parametrize("n", [1, 2, 5])
def test_prediction_ids_split_back_into_request_and_index(n):
    ids = prediction_ids("req-1", n)
    assert len(set(ids)) == n
    assert [split_prediction_id(pid) for pid in ids] == (
        [("req-1", None)] if n == 1 else [("req-1", i) for i in range(n)]
    )


def test_the_sample_reads_only_the_requests_it_needs(tmp_path):
    """Batches of 24: a 50-record sample must read 3 requests, not 50 (the analysis runs every second)."""
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    log.write(
        [LoggedRequest(f"r{i}", float(i), "u", "m", "1", "stable", [{}] * 24, [float(i)] * 24, 1.0) for i in range(100)]
    )
    statements: list[tuple[str, tuple]] = []
    sa.event.listen(log._engine, "before_cursor_execute", lambda *args: statements.append((args[2], args[3])))
    rows = log.version_rows(use_case="u", version="1", since=0, until=100, user_facing_only=True, max_rows=50)
    assert len(rows.predictions) == 50 and set(rows.predictions) == {97.0, 98.0, 99.0}
    read, params = next(s for s in statements if "prediction_requests.predictions" in s[0])
    assert " IN (" not in read  # a range of the newest requests, not a list of their ids
    with log._engine.connect() as conn:
        assert len(conn.exec_driver_sql(read, params).all()) == 3  # the JSON of three requests, no more
    log.close()


def test_a_retried_request_is_logged_once_and_repeated_labels_are_stored_once(tmp_path):
    """The gateway retries a request on another replica with the same X-Request-ID; clients repeat /feedback."""
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    first = LoggedRequest("r", 1.0, "u", "m", "1", "stable", [{"x": 1}], [2.0], 1.0)
    log.write([first])
    log.write([first, LoggedRequest("r", 1.1, "u", "m", "2", "shadow", [{"x": 1}], [3.0], 1.0)])  # the retry
    log.add_feedback([("r", 5.0), ("r", 7.0)], ts=2.0)  # one id twice in one call: the last wins
    log.add_feedback([("r", 7.0)], ts=2.0)  # the call repeated
    window = log.window(use_case="u", since=0, until=10)
    assert [(r.prediction_id, r.prediction, r.label) for r in window] == [("r", 2.0, 7.0)]
    assert log.paired(use_case="u", since=0, until=10) == [(2.0, 3.0)]  # the shadow answer is its own row
    log.close()


def test_the_unique_index_is_added_to_a_table_an_older_release_made(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as it was, without the index
        conn.execute(sa.text("CREATE TABLE prediction_requests (row_id INTEGER PRIMARY KEY, request_id VARCHAR(128) "
                             "NOT NULL, ts FLOAT NOT NULL, use_case VARCHAR(64) NOT NULL, model_name VARCHAR(128) NOT "
                             "NULL, model_version VARCHAR(32) NOT NULL, variant VARCHAR(32) NOT NULL DEFAULT 'stable', "
                             "n_records INTEGER NOT NULL, features TEXT NOT NULL, predictions TEXT, latency_ms FLOAT "
                             "NOT NULL, error TEXT)"))  # fmt: skip
    PredictionLog(url).close()
    indexes = {i["name"]: i["unique"] for i in sa.inspect(engine).get_indexes("prediction_requests")}
    assert indexes.get("ux_prediction_requests_request_variant") in (True, 1)
    engine.dispose()
