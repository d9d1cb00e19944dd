"""The service validates records as plain dicts; the API documents them as a model. Both must judge alike."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from services.serving.schemas import record_dict, record_model
from tests.support.records import BIKE_RECORD

CASES = {
    "valid": BIKE_RECORD,
    "missing field": {k: v for k, v in BIKE_RECORD.items() if k != "temp"},
    "extra field": {**BIKE_RECORD, "colour": "red"},
    "string for a number": {**BIKE_RECORD, "temp": "0.5"},
    "whole float for an int": {**BIKE_RECORD, "hr": 8.0},
    "fractional float for an int": {**BIKE_RECORD, "hr": 8.5},
    "string for an int": {**BIKE_RECORD, "hr": "8"},
    "bool for an int": {**BIKE_RECORD, "hr": True},
    "int for a float": {**BIKE_RECORD, "temp": 1},
    "below the minimum": {**BIKE_RECORD, "hr": -1},
    "above the maximum": {**BIKE_RECORD, "hr": 24},
    "unknown category": {**BIKE_RECORD, "weathersit": "snowstorm"},
    "null where not nullable": {**BIKE_RECORD, "temp": None},
}


def _verdict(adapter: TypeAdapter, body: bytes) -> list[tuple]:
    try:
        adapter.validate_json(body)
    except ValidationError as err:
        return sorted((e["type"], e["loc"]) for e in err.errors())
    return []


@pytest.mark.parametrize("case", list(CASES))
def test_the_dict_and_the_model_accept_and_refuse_the_same_records(bike, case):
    body = json.dumps(CASES[case]).encode()
    as_dict = _verdict(TypeAdapter(record_dict(bike)), body)
    as_model = _verdict(TypeAdapter(record_model(bike)), body)
    assert as_dict == as_model
    assert (as_dict == []) is (case in ("valid", "int for a float", "whole float for an int"))


def test_a_whole_float_for_an_int_arrives_as_an_int_and_the_schema_says_integer(bike):
    """JSON does not tell 8 from 8.0: clients built on data frames send the latter."""
    record = TypeAdapter(record_dict(bike)).validate_json(json.dumps({**BIKE_RECORD, "hr": 8.0}))
    assert record["hr"] == 8 and type(record["hr"]) is int
    hour = record_model(bike).model_json_schema()["properties"]["hr"]
    assert hour == {"type": "integer", "minimum": 0, "maximum": 23, "title": "Hr"}
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(record_dict(bike)).validate_json(json.dumps({**BIKE_RECORD, "hr": 8.5}))
    (error,) = refused.value.errors()
    assert error["loc"] == ("hr",) and error["msg"] == "Input should be a whole number (21 or 21.0)"


def test_infinity_is_refused_by_both(bike):
    body = json.dumps({**BIKE_RECORD, "temp": float("inf")}).encode()  # Python writes the JSON literal Infinity
    assert _verdict(TypeAdapter(record_dict(bike)), body) == _verdict(TypeAdapter(record_model(bike)), body) != []
