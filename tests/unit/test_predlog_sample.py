"""The analysis reads a bounded sample: a version's newest rows in the window."""

from __future__ import annotations

from core.predlog import PredictionLog, PredictionRecord


def test_version_rows_keeps_the_newest_rows_of_the_window(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    log.write(
        [
            PredictionRecord(f"p{i}", f"p{i}", float(i), "u", "m", "2" if i % 2 else "1", "stable", {}, float(i), 1.0)
            for i in range(100)
        ]
    )
    everything = log.version_rows(use_case="u", version="1", since=0, until=100, user_facing_only=True)
    newest = log.version_rows(use_case="u", version="1", since=0, until=100, user_facing_only=True, max_rows=5)
    log.close()
    assert len(everything.predictions) == 50
    assert sorted(newest.predictions) == [90.0, 92.0, 94.0, 96.0, 98.0]
