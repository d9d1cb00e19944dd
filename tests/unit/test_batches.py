"""Parsing, typing and triage of batch files: every row is accounted for."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from pipelines.batches import (
    ROW_NUMBER,
    BatchRejected,
    coerce_types,
    derive_event_time,
    merge_failures,
    parse_csv,
    triage,
)

HEADER = "season,mnth,day,hr,holiday,weekday,workingday,weathersit,temp,atemp,hum,windspeed,casual,registered,bikers"
GOOD = "1,Jan,1,0,0,6,0,clear,0.24,0.2879,0.81,0,3,13,16"


def _batch(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def test_well_formed_rows_parse_as_strings(bike):
    parsed = parse_csv(_batch(GOOD, GOOD), bike)
    assert parsed.rows_received == 2 and not parsed.malformed
    assert list(parsed.frame[ROW_NUMBER]) == [1, 2]


def test_malformed_rows_are_kept_with_reason(bike):
    parsed = parse_csv(_batch(GOOD, "1,Jan,1,0", GOOD + ",extra"), bike)
    assert parsed.rows_received == 3 and len(parsed.frame) == 1
    assert [m.row_number for m in parsed.malformed] == [2, 3]
    assert parsed.malformed[0].reasons == ["malformed: expected 15 fields, got 4"]
    assert parsed.malformed[0].raw == ["1", "Jan", "1", "0"]


@pytest.mark.parametrize(
    ("data", "message", "received"),
    [
        (b"", "empty", 0),
        (HEADER.encode() + b"\n", "no data rows", 0),
        (_batch(GOOD, header=HEADER.replace(",bikers", "")), "missing columns ['bikers']", 1),
        (_batch(GOOD + ",1", header=HEADER + ",colour"), "unexpected columns ['colour']", 1),
        (_batch(GOOD + ",1", header=HEADER + ",hr"), "duplicate columns ['hr']", 1),
        (b"\x80garbage\nrow\n", "not UTF-8", 1),
    ],
)
def test_broken_structure_rejects_the_whole_batch(bike, data, message, received):
    with pytest.raises(BatchRejected, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        parse_csv(data, bike)
    assert err.value.rows_received == received


def test_coercion_flags_wrong_types_and_non_finite_values(bike):
    rows = [
        GOOD,
        GOOD.replace(",0.24,", ",abc,"),
        GOOD.replace(",0.24,", ",inf,"),
        "1,Jan,1,2.5,0,6,0,clear,0.24,0.2879,0.81,0,3,13,16",
    ]
    typed, failures = coerce_types(parse_csv(_batch(*rows), bike).frame, bike)
    assert set(failures) == {2, 3, 4}
    assert failures[2] == ["type: temp='abc' is not a valid float"]
    assert failures[3] == ["type: temp='inf' is not finite"]
    assert failures[4] == ["type: hr='2.5' is not a valid int"]
    assert typed.loc[0, "temp"] == pytest.approx(0.24)
    assert pd.isna(typed.loc[1, "temp"])


def test_empty_values_become_nulls_not_type_errors(bike):
    typed, failures = coerce_types(parse_csv(_batch(GOOD.replace(",0.24,", ",,")), bike).frame, bike)
    assert failures == {}
    assert pd.isna(typed.loc[0, "temp"])


def test_triage_accounts_for_every_row(bike):
    parsed = parse_csv(_batch(GOOD, "broken", GOOD, GOOD), bike)
    typed, type_failures = coerce_types(parsed.frame, bike)
    result = triage(parsed, typed, merge_failures(type_failures, {3: ["expect_x(temp)"], 4: ["expect_y(hum)"]}))
    assert result.rows == parsed.rows_received == 4
    assert len(result.accepted) == 1
    assert {r.row_number: r.reasons for r in result.quarantined} == {
        2: ["malformed: expected 15 fields, got 1"],
        3: ["expect_x(temp)"],
        4: ["expect_y(hum)"],
    }
    assert result.quarantined[1].raw["temp"] == "0.24"  # the original value is kept


def test_merge_failures_keeps_all_reasons():
    assert merge_failures({1: ["a"]}, {1: ["b"], 2: ["c"]}) == {1: ["a", "b"], 2: ["c"]}


def test_event_time_from_day_of_year_and_hour(bike):
    frame = pd.DataFrame({"day": [1.0, 32.0, 365.0], "hr": [0.0, 13.0, 23.0]})
    times = derive_event_time(frame, bike, arrival=datetime(2030, 1, 1))
    assert list(times) == [
        pd.Timestamp("2011-01-01 00:00"),
        pd.Timestamp("2011-02-01 13:00"),
        pd.Timestamp("2011-12-31 23:00"),
    ]


def test_event_time_from_arrival(credit):
    times = derive_event_time(pd.DataFrame({"balance": [1.0, 2.0]}), credit, arrival=datetime(2011, 5, 1))
    assert list(times) == [pd.Timestamp("2011-05-01")] * 2


def test_event_times_from_a_year_spread_weekly_in_file_order_across_chunks():
    from collections import Counter

    from tests.unit.test_usecase import _parse, _weekly

    uc = _parse(_weekly(format="%Y", step="7D"))
    first = pd.DataFrame({"Year": [2001.0, 2001.0, 2002.0]})
    second = pd.DataFrame({"Year": [2001.0, None, 2002.0]})
    seen: Counter = Counter()
    times = [derive_event_time(f, uc, arrival=datetime(2020, 1, 1), seen=seen) for f in (first, second)]
    assert list(times[0]) == [pd.Timestamp("2001-01-01"), pd.Timestamp("2001-01-08"), pd.Timestamp("2002-01-01")]
    assert times[1].iloc[0] == pd.Timestamp("2001-01-15") and pd.isna(times[1].iloc[1])
    assert times[1].iloc[2] == pd.Timestamp("2002-01-08")


def test_an_event_time_that_cannot_be_derived_is_nat_never_an_error(bike):
    frame = pd.DataFrame({"day": [1.0, 9e15, 367.0, None, 365.0], "hr": [0.0, 1.0, 1.0, 2.0, 24.0]})
    times = derive_event_time(frame, bike, arrival=datetime(2011, 1, 1))
    assert times.iloc[0] == pd.Timestamp("2011-01-01") and times.iloc[1:].isna().all()
