"""The demo's drop generator, corruption, story and traffic (pure, or against an in-memory service)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from pipelines.batches import parse_csv
from pipelines.demo import MonthRow, format_table, story
from pipelines.drops import bootstrap_months, corrupt, split_into_drops
from pipelines.traffic import serve_month
from tests.conftest import DATA


def _raw(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, dtype=str, keep_default_na=False)


def test_bike_drops_one_per_month_by_event_time(bike):
    raw = _raw("Bikeshare.csv")
    drops = split_into_drops(raw, bike)
    assert list(drops) == [f"2011-{m:02d}" for m in range(1, 13)]
    assert sum(len(d) for d in drops.values()) == len(raw) == 8645
    assert set(drops["2011-07"].mnth) == {"July"} and len(drops["2011-07"]) == 744
    assert bootstrap_months(drops, bike) == ["2011-01", "2011-02", "2011-03"]


def test_credit_drops_spread_rows_over_the_year(credit):
    drops = split_into_drops(_raw("Default.csv"), credit)
    assert list(drops) == [f"2011-{m:02d}" for m in range(1, 13)]
    assert sum(len(d) for d in drops.values()) == 10_000 and {len(d) for d in drops.values()} <= {833, 834}


def test_corruption_breaks_rows_but_keeps_the_header(bike):
    month = split_into_drops(_raw("Bikeshare.csv"), bike)["2011-07"]
    data = corrupt(month, bike)
    parsed = parse_csv(data, bike)
    assert parsed.rows_received == len(month)
    assert len(parsed.malformed) == 3
    assert (parsed.frame["windspeed"] == "-99").sum() == 36


def test_story_compares_errors_after_the_first_retraining():
    rows = [
        MonthRow("2011-04", 1, 1, 0, True, 0.5, "1", 10, 10, True, challenger_version="2"),
        MonthRow(
            "2011-05",
            1,
            1,
            0,
            False,
            0.1,
            "1,2",
            8,
            12,
            False,
            promoted_version="2",
            rollout={"strategy": "canary", "candidate_version": "2", "outcome": "promoted"},
        ),
        MonthRow("2011-06", 1, 1, 0, False, 0.1, "2", 6, 14, False),
    ]
    s = story(rows)
    assert s["first_retrain_month"] == "2011-04" and s["months_after_first_retrain"] == 2
    assert s["mean_live_error_after"] == 7 and s["mean_baseline_error_after"] == 13
    table = format_table(rows, "rmse")
    assert "yes -> v2" in table and "v1,v2" in table and "canary v2 promoted" in table


class FakeService:
    """/predict and /feedback as the service answers them, in memory, with the time of each call.

    After ``end_rollout_after`` predictions it clears ``rolling_out``, as the demo does when the
    rollout decides: which requests were paced is then fixed by count, not by a race with a timer.
    """

    def __init__(self, rolling_out: threading.Event, *, end_rollout_after: int) -> None:
        self.rolling_out, self.end_rollout_after = rolling_out, end_rollout_after
        self.predict_times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/feedback":
            return httpx.Response(200, json={"accepted": len(json.loads(request.content)["labels"])})
        self.predict_times.append(time.monotonic())
        if len(self.predict_times) == self.end_rollout_after:
            self.rolling_out.clear()
        n = len(self.predict_times)
        return httpx.Response(
            200, json={"predictions": [{"id": f"p{n}", "value": 1.0}]}, headers={"X-Model-Version": "1"}
        )


def test_traffic_keeps_a_live_rate_while_asked_then_goes_as_fast_as_answered():
    rolling_out = threading.Event()
    rolling_out.set()
    service = FakeService(rolling_out, end_rollout_after=11)
    with httpx.Client(transport=httpx.MockTransport(service), base_url="http://service") as client:
        served = serve_month(
            client, month="m", features=[{"x": i} for i in range(60)], labels=list(range(60)),
            per_request=1, pace_per_s=40, pace_while=rolling_out,
        )  # fmt: skip
    times = service.predict_times
    assert len(served.ids) == len(times) == 60
    # the first 11 at most 40 a second, while the rollout ran (each pause is timed from the previous
    # request's start, which the fake sees a moment later: allow that jitter, 10 ms in all)...
    assert times[10] - times[0] >= 10 / 40 - 0.01
    assert times[-1] - times[11] < 0.5  # ...the other 49 without waiting (paced, they would take 1.2 s)


def test_the_labels_users_got_are_judged_at_the_threshold_that_gave_them(credit):
    import numpy as np

    from pipelines.demo import label_quality
    from pipelines.traffic import ServedMonth

    served = ServedMonth(
        ids=["a", "b", "c", "d"],
        predictions=np.array([0.9, 0.3, 0.2, 0.01]),
        versions=["1", "2"],
        labels=["Yes", "Yes", "No", "No"],
        thresholds=[0.25, 0.25, 0.25, 0.5],  # a canary: one request answered by a version with another threshold
    )
    quality = label_quality(served, np.array([1, 0, 1, 0]), credit)
    assert quality == {"decision_threshold": 0.25, "precision_at_threshold": 0.5, "recall_at_threshold": 0.5}


def test_monitoring_reports_a_classifiers_precision_and_recall_at_its_threshold(credit):
    import pandas as pd

    from models.threshold import registered_threshold as served_threshold
    from pipelines.monitor import PREDICTION, TARGET, live_quality

    frame = pd.DataFrame({PREDICTION: [0.9, 0.3, 0.2, 0.01], TARGET: [1, 0, 1, 0]})
    assert served_threshold({"decision_threshold": "0.25"}) == 0.25 and served_threshold({}) == 0.5
    at_quarter, at_half = live_quality(frame, credit, threshold=0.25), live_quality(frame, credit)
    assert (at_quarter["precision"], at_quarter["recall"], at_quarter["threshold"]) == (0.5, 0.5, 0.25)
    assert (at_half["precision"], at_half["recall"], at_half["threshold"]) == (1.0, 0.5, 0.5)


def test_labels_that_fit_no_class_are_left_out_never_scored_as_the_negative_class(credit, bike):
    from models.records import encode_labels, label_problem

    encoded = encode_labels(["Yes", "No", "yes", "1", 1, None, "Maybe"], credit)
    np.testing.assert_array_equal(encoded[:2], [1.0, 0.0])
    assert np.isnan(encoded[2:]).all()
    assert label_problem("No", credit) is None and "not one of the classes ['No', 'Yes']" in label_problem("no", credit)
    np.testing.assert_array_equal(encode_labels([3, 4.0], bike), [3.0, 4.0])
    assert np.isnan(encode_labels(["abc", float("inf")], bike)).all()


def test_quality_is_scored_on_the_labelled_part_of_a_window_with_its_count_and_share(credit):
    from core.predlog import LabelledPrediction
    from pipelines.monitor import current_frame, live_quality

    record = {"student": "No", "balance": 1000.0, "income": 40000.0}
    rows = [
        LabelledPrediction(f"p{i}", float(i), "1", "stable", record, p, label)
        for i, (p, label) in enumerate([(0.9, "Yes"), (0.2, "No"), (0.7, None), (0.1, "No"), (0.8, "Yes")])
    ]
    quality = live_quality(current_frame(rows, credit), credit, threshold=0.5)
    # 4 of 5 labelled: one missing label no longer hides the other four
    assert quality["labelled_rows"] == 4 and quality["labelled_share"] == 0.8
    assert quality["roc_auc"] == 1.0 and (quality["tp"], quality["fp"], quality["tn"]) == (2, 0, 2)
    assert live_quality(current_frame(rows[2:3], credit), credit) == {}  # nothing labelled: nothing to score


@pytest.mark.parametrize(
    ("period", "label", "start"),
    [
        ("day", "2011-07-07", "2011-07-07"),
        ("week", "2011-07-04", "2011-07-04"),  # the Monday of the week of Thursday the 7th
        ("month", "2011-07", "2011-07-01"),
        ("quarter", "2011-Q3", "2011-07-01"),
        ("year", "2011", "2011-01-01"),
    ],
)
def test_a_drop_is_labelled_by_its_period_and_begins_when_the_period_does(period, label, start):
    from pipelines.drops import period_labels, period_start

    assert period_labels(pd.Series(pd.to_datetime(["2011-07-07 13:00"])), period).iloc[0] == label
    assert period_start(label, period) == pd.Timestamp(start)


def test_drops_follow_the_declared_period_and_the_table_names_it(bike):
    quarterly = bike.model_copy(update={"demo": bike.demo.model_copy(update={"period": "quarter"})})
    drops = split_into_drops(pd.read_csv(DATA / "Bikeshare.csv", dtype=str, keep_default_na=False), quarterly)
    assert list(drops) == ["2011-Q1", "2011-Q2", "2011-Q3", "2011-Q4"]
    assert sum(len(d) for d in drops.values()) == 8645
    assert bootstrap_months(drops, quarterly) == ["2011-Q1"]  # bootstrap_until 2011-04-01
    row = MonthRow("2011-Q2", 10, 10, 0, False, 0.1, "1", 1.0, 1.0, False)
    assert format_table([row], "rmse", period="quarter").startswith("quarter ")


def test_a_data_set_that_cannot_carry_the_demo_says_what_it_needs(bike):
    from pipelines.drops import DemoDataError

    raw = pd.read_csv(DATA / "Bikeshare.csv", dtype=str, keep_default_na=False)
    late = bike.model_copy(update={"demo": bike.demo.model_copy(update={"bootstrap_until": "2010-01-01"})})
    with pytest.raises(DemoDataError, match=r"needs months before and after demo.bootstrap_until \(2010-01-01\)"):
        bootstrap_months(split_into_drops(raw, late), late)
    # a year of rows at two distinct times: no train, validation and test windows in it
    two_days = raw[raw.day.isin(["1", "2"]) & (raw.hr == "0")]
    daily = bike.model_copy(
        update={"demo": bike.demo.model_copy(update={"period": "day", "bootstrap_until": "2011-01-02"})}
    )
    with pytest.raises(DemoDataError, match=r"hold 1 rows at 1 distinct event times, too few .* event_time.step"):
        bootstrap_months(split_into_drops(two_days, daily), daily)
