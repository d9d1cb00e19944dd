"""The replay's plan: every row once, faults at their shares, silence where asked."""

from __future__ import annotations

from collections import Counter

import pytest

from core.usecase import UseCase
from pipelines.stream.producer import Faults, plan, rows_of


def test_without_faults_every_row_is_one_event_in_order(bike: UseCase):
    rows = list(rows_of(bike, drop="2011-02"))
    events = list(plan(rows, bike, sources=["a", "b"], faults=Faults()))
    assert [e.values for e in events] == rows
    assert Counter(e.source for e in events) == {"a": (len(rows) + 1) // 2, "b": len(rows) // 2}
    assert len({e.id for e in events}) == len(rows)


def test_faults_come_at_about_their_shares_and_are_marked(bike: UseCase):
    faults = Faults(malformed=0.05, out_of_range=0.05, duplicates=0.05, out_of_order=0.05)
    events = list(plan(rows_of(bike), bike, sources=["a"], faults=faults, seed=1))
    kinds = Counter(e.fault.split(":")[0] for e in events if e.fault)
    n = 8_645
    for kind in ("malformed", "out_of_range", "duplicate", "out_of_order"):
        assert 0.03 * n < kinds[kind] < 0.07 * n, (kind, kinds)
    duplicates = [e for e in events if e.fault == "duplicate"]
    assert all(Counter(e.id for e in events)[d.id] >= 2 for d in duplicates)  # the same id, sent again


def test_a_silenced_source_stops_after_its_events(bike: UseCase):
    faults = Faults(silent_source="b", silent_after=10)
    events = list(plan(rows_of(bike, drop="2011-01"), bike, sources=["a", "b"], faults=faults))
    assert Counter(e.source for e in events)["b"] == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("malformed=2", "between 0 and 1"),
        ("typos=0.1", "unknown fault 'typos'"),
        ("duplicates=lots", "takes a share"),
        ("silence=source-2", "SOURCE@EVENTS"),
    ],
)
def test_a_bad_fault_spec_is_refused_with_what_it_takes(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        Faults.parse(text)


def test_an_unknown_drop_names_the_ones_there_are(bike: UseCase):
    with pytest.raises(ValueError, match=r"no drop '2012-01'.*2011-01"):
        next(rows_of(bike, drop="2012-01"))
