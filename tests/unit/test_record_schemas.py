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
    "float for an int": {**BIKE_RECORD, "hr": 8.0},
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
    assert (as_dict == []) is (case in ("valid", "int for a float"))


def test_infinity_is_refused_by_both(bike):
    body = json.dumps({**BIKE_RECORD, "temp": float("inf")}).encode()  # Python writes the JSON literal Infinity
    assert _verdict(TypeAdapter(record_dict(bike)), body) == _verdict(TypeAdapter(record_model(bike)), body) != []
