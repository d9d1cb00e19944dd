"""MLflow's scoring protocol (`mlflow models serve`'s /invocations): its four body formats as records.

The records then go through the same checks as /predict's: this module only reshapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")

# The OpenAPI of the body: one of the four keys (the records inside are checked as /predict's are).
MLFLOW_BODY: dict[str, Any] = {
    "type": "object",
    "oneOf": [
        {
            "required": ["dataframe_split"],
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array"}},
                    },
                }
            },
        },
        {"required": ["dataframe_records"], "properties": {"dataframe_records": {"type": "array"}}},
        {"required": ["instances"], "properties": {"instances": {"type": "array"}}},
        {"required": ["inputs"], "properties": {"inputs": {"type": ["array", "object"]}}},
    ],
}


def _refuse(message: str, *, loc: Sequence[str | int] = ()) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": None}])


def mlflow_records(body: bytes, *, features: Sequence[str]) -> list[dict[str, Any]]:
    """The records of an MLflow scoring request, in any of its four formats.

    - ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (pandas' ``split`` orient);
    - ``dataframe_records``: a list of records;
    - ``instances`` / ``inputs``: a list of records, a list of rows in the features' order, or
      (``inputs``) columns: ``{"hr": [8, 9], ...}``.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _refuse(f"invalid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise _refuse(f"expected an object with one of {list(FORMATS)}")
    given = [key for key in FORMATS if key in payload]
    others = sorted(set(payload) - set(FORMATS))
    if len(given) != 1 or others:
        raise _refuse(f"expected exactly one of {list(FORMATS)} (and nothing else); got {sorted(payload)}")
    key = given[0]
    value = payload[key]
    if key == "dataframe_split":
        split = value if isinstance(value, dict) else {}
        if not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise _refuse("dataframe_split needs 'columns' (a list) and 'data' (a list of rows)", loc=(key,))
        return _rows(value["data"], value["columns"], loc=(key, "data"))
    if key == "inputs" and isinstance(value, dict):
        return _columns(value, loc=(key,))
    if not isinstance(value, list):
        raise _refuse(f"{key} must be a list", loc=(key,))
    if all(isinstance(item, dict) for item in value):
        return value
    return _rows(value, list(features), loc=(key,))


def _rows(rows: list[Any], columns: list[Any], *, loc: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise _refuse(f"row {i} must be a list of {len(columns)} values, one per column {columns}", loc=(*loc, i))
        out.append(dict(zip(columns, row, strict=True)))
    return out


def _columns(columns: dict[str, Any], *, loc: tuple[str, ...]) -> list[dict[str, Any]]:
    lengths = {name: len(values) if isinstance(values, list) else -1 for name, values in columns.items()}
    if not lengths or -1 in lengths.values() or len(set(lengths.values())) != 1:
        raise _refuse(f"inputs as columns must be lists of one length; got {lengths}", loc=loc)
    n = next(iter(lengths.values()))
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]
