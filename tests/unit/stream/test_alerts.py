"""Alerts fire once while their condition holds and resolve once when it clears."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import TypeAdapter

from core.usecase import StreamAlert, UseCaseError, parse_use_case
from pipelines.stream.alerts import ENTRY, PRODUCED_AT, SOURCE, AlertBook

ALERTS = TypeAdapter(list[StreamAlert])


def book(*alerts: dict) -> AlertBook:
    return AlertBook(ALERTS.validate_python(list(alerts)))


def rows(values: list[float], source: str = "s1", column: str = "x") -> pd.DataFrame:
    n = len(values)
    times, entries = [100.0 + i for i in range(n)], [f"{i}-0" for i in range(n)]
    return pd.DataFrame({column: values, SOURCE: [source] * n, PRODUCED_AT: times, ENTRY: entries})


def test_a_value_alert_fires_once_per_run_beyond_the_bound_and_resolves_when_back():
    alerts = book({"kind": "value", "name": "peak", "column": "x", "above": 10})
    changes = alerts.observe(rows([1, 11, 12, 13, 5, 6, 20]), received=7, quarantined=0, sources={}, now=1.0)
    assert [(c.status, c.value, c.entry) for c in changes] == [
        ("firing", 11.0, "1-0"), ("resolved", 5.0, "4-0"), ("firing", 20.0, "6-0"),
    ]  # fmt: skip
    assert changes[0].produced_at == 101.0  # the triggering event's: alert latency is measured from it
    assert alerts.observe(rows([30]), received=1, quarantined=0, sources={}, now=2.0) == []  # still firing
    (resolved,) = alerts.observe(rows([0]), received=1, quarantined=0, sources={}, now=3.0)
    assert resolved.status == "resolved"


def test_a_value_alert_is_kept_per_source():
    alerts = book({"kind": "value", "name": "peak", "column": "x", "above": 10})
    first = alerts.observe(rows([11], "a"), received=1, quarantined=0, sources={}, now=1.0)
    second = alerts.observe(rows([11], "b"), received=1, quarantined=0, sources={}, now=1.0)
    assert [c.key for c in first + second] == ["a", "b"]


def test_a_window_aggregate_fires_and_resolves_as_the_window_slides():
    alerts = book({"kind": "window", "name": "hot", "column": "x", "aggregate": "mean", "window": "10s", "above": 5})
    assert alerts.observe(rows([1, 2]), received=2, quarantined=0, sources={}, now=0.0) == []
    (fired,) = alerts.observe(rows([20, 20]), received=2, quarantined=0, sources={}, now=5.0)
    assert fired.status == "firing" and fired.value == pytest.approx(10.75)
    assert alerts.tick(12.0) == []  # the first readings left the window: the mean is higher still
    (resolved,) = alerts.tick(16.0)  # every reading left it: no verdict, and an alert without one resolves
    assert resolved.status == "resolved" and resolved.value is None


def test_the_quarantined_share_needs_enough_events_before_it_judges():
    alerts = book({"kind": "quarantined_share", "name": "errors", "window": "1min", "above": 0.1, "min_events": 100})
    assert alerts.observe(rows([]), received=50, quarantined=50, sources={}, now=0.0) == []  # 50 events: no verdict
    (fired,) = alerts.observe(rows([]), received=50, quarantined=0, sources={}, now=1.0)
    assert fired.value == 0.5
    (resolved,) = alerts.observe(rows([]), received=1_000, quarantined=0, sources={}, now=2.0)
    assert resolved.status == "resolved"


def test_a_silent_source_fires_once_and_resolves_when_it_speaks():
    alerts = book({"kind": "silence", "name": "quiet", "after": "2s", "sources": ["declared"]})
    alerts.start(0.0)
    alerts.observe(rows([]), received=1, quarantined=0, sources={"talker": 0.5}, now=0.5)
    assert alerts.tick(1.9) == []
    fired = alerts.tick(2.1)
    assert [(c.key, c.status) for c in fired] == [("declared", "firing")]  # a declared source that never spoke
    assert [(c.key, c.status) for c in alerts.tick(2.6)] == [("talker", "firing")]
    assert alerts.tick(5.0) == []  # once while it holds
    (back,) = alerts.observe(rows([]), received=1, quarantined=0, sources={"talker": 6.0}, now=6.0)
    assert (back.key, back.status) == ("talker", "resolved")


def test_restored_state_neither_fires_again_nor_forgets_to_resolve():
    alerts = book({"kind": "value", "name": "peak", "column": "x", "above": 10})
    alerts.firing = {("peak", "s1")}  # as the checkpoint had it
    assert alerts.observe(rows([50]), received=1, quarantined=0, sources={}, now=1.0) == []
    (resolved,) = alerts.observe(rows([1]), received=1, quarantined=0, sources={}, now=2.0)
    assert resolved.status == "resolved"


@pytest.mark.parametrize(
    ("alert", "message"),
    [
        ({"kind": "value", "name": "a", "column": "nope", "above": 1}, "column 'nope' is not in schema.columns"),
        ({"kind": "value", "name": "a", "column": "mnth", "above": 1}, "thresholds need a number"),
        ({"kind": "value", "name": "a", "column": "temp"}, "give 'above', 'below' or both"),
        ({"kind": "window", "name": "a", "column": "temp", "aggregate": "mean", "window": "soon", "above": 1},
         "is not a positive duration"),
        ({"kind": "quarantined_share", "name": "a", "window": "1min", "above": 5}, "a share is between 0 and 1"),
        ({"kind": "silence", "name": "a", "after": "0s"}, "is not a positive duration"),
    ],
)  # fmt: skip
def test_a_broken_alert_is_refused_when_the_yaml_loads(bike_yaml: dict, alert: dict, message: str):
    with pytest.raises(UseCaseError, match=message):
        parse_use_case({**bike_yaml, "stream": {"alerts": [alert]}}, origin="bike.yaml", base_dir=".")


def test_two_alerts_of_one_name_are_refused(bike_yaml: dict):
    alert = {"kind": "silence", "name": "a", "after": "1min"}
    with pytest.raises(UseCaseError, match="alert names must be unique"):
        parse_use_case({**bike_yaml, "stream": {"alerts": [alert, alert]}}, origin="bike.yaml", base_dir=".")
