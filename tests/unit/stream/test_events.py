"""An event's bytes become a row or a reason, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.stream.events import Event, Malformed, decode, encode

COLUMNS = ["a", "b"]


def decoded(payload: bytes, max_bytes: int = 1_000) -> Event | Malformed:
    return decode("1-0", {b"e": payload}, columns=COLUMNS, max_bytes=max_bytes)


def test_a_well_formed_event_decodes():
    event = decoded(encode("s:1", "s", 12.5, {"a": "1", "b": 2}))
    assert isinstance(event, Event) and event.values == {"a": "1", "b": 2} and event.produced_at == 12.5


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id": "x", "values": {', "not JSON"),
        (b'\xff{"id": 1}', "not UTF-8 text (invalid start byte at byte 0)"),
        (b"x" * 2_000, "2000 bytes, above the limit of 1000"),
        (b"[1, 2]", "a JSON list, not an object"),
        (encode("s:1", "s", 1.0, {"a": 1}), "missing fields ['b']"),
        (encode("s:1", "s", 1.0, {"a": 1, "b": 2, "c": 3}), "unexpected fields ['c']"),
        (encode("", "s", 1.0, {"a": 1, "b": 2}), "id='' is not a text of 1 to 200 characters"),
        (json.dumps({"id": "i", "source": "s", "produced_at": "now", "values": {}}).encode(), "produced_at='now'"),
        (json.dumps({"id": "i", "source": "s", "produced_at": True, "values": {}}).encode(), "produced_at='True'"),
    ],
)
def test_a_malformed_event_is_named_with_its_problem(payload: bytes, reason: str):
    result = decoded(payload)
    assert isinstance(result, Malformed)
    assert result.reasons[0].startswith("malformed: ")
    assert reason in result.reasons[0]
    assert len(result.reasons[0]) < 400  # one readable line, whatever the payload


def test_nesting_deeper_than_the_parser_goes_is_malformed_not_a_crash():
    result = decoded(b"[" * 100_000, max_bytes=200_000)
    assert isinstance(result, Malformed) and result.reasons[0].startswith("malformed: not JSON (")


def test_an_entry_without_the_payload_field_is_malformed():
    result = decode("1-0", {b"x": b"1"}, columns=COLUMNS, max_bytes=100)
    assert isinstance(result, Malformed) and "no 'e' field" in result.reasons[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_an_event_or_a_reason(payload: bytes):
    assert isinstance(decoded(payload), Event | Malformed)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda children: st.lists(children) | st.dictionaries(st.text(max_size=3), children),
        max_leaves=20,
    )
)
def test_any_json_decodes_to_an_event_or_a_reason(value: object):
    body = {"id": "i", "source": "s", "produced_at": 1.0, "values": value}
    assert isinstance(decoded(json.dumps(body).encode(), max_bytes=10_000), Event | Malformed)
