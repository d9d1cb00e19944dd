"""The events' wire format, and how the bytes of one become a row or the reason they do not.

An event is a JSON object, UTF-8, in the entry field ``e``::

    {"id": "station-2:1417", "source": "station-2", "produced_at": 1764547200.125,
     "values": {"season": 1, "hr": 3, "temp": 0.24, ...}}

``id`` names the event for de-duplication (a producer that re-sends it is caught), ``source``
is what a silence alert watches, ``produced_at`` (seconds since the epoch) is where latency is
measured from, and ``values`` holds the use case's columns, as CSV text or as JSON numbers.
Pure: no I/O here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

from pipelines.batches import listed, shown

PAYLOAD_FIELD = b"e"
MAX_ID_CHARS = 200


@dataclass(frozen=True)
class Event:
    entry: str
    id: str
    source: str
    produced_at: float
    values: dict[str, Any]


@dataclass(frozen=True)
class Malformed:
    entry: str
    raw: str  # the payload as text (undecodable bytes escaped), bounded by the size limit
    reasons: list[str]
    produced_at: float | None = None


def encode(event_id: str, source: str, produced_at: float, values: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": event_id, "source": source, "produced_at": produced_at, "values": values})


def raw_text(payload: bytes, *, limit: int) -> str:
    """The payload as quarantine keeps it: text, undecodable bytes escaped, cut at ``limit`` bytes
    (the raw landing keeps every byte of it)."""
    text = payload[:limit].decode("utf-8", errors="backslashreplace")
    return text + (f"... ({len(payload)} bytes)" if len(payload) > limit else "")


def decode(entry: str, fields: dict[bytes, bytes], *, columns: list[str], max_bytes: int) -> Event | Malformed:
    """An entry's event, or why it is malformed (never raises: a hostile event is dead-lettered)."""
    payload = fields.get(PAYLOAD_FIELD)
    if payload is None:
        names = sorted(k.decode("utf-8", "backslashreplace") for k in fields)
        return Malformed(entry, json.dumps(names), [f"malformed: the entry has no 'e' field (fields {listed(names)})"])

    def bad(reason: str, produced_at: float | None = None) -> Malformed:
        return Malformed(entry, raw_text(payload, limit=max_bytes), [f"malformed: {reason}"], produced_at)

    if len(payload) > max_bytes:
        return bad(f"{len(payload)} bytes, above the limit of {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        return bad(f"not UTF-8 text ({err.reason} at byte {err.start})")
    try:
        # orjson: several times faster than json here, and strict (NaN and Infinity are not JSON).
        body = orjson.loads(text)
    except (orjson.JSONDecodeError, RecursionError) as err:
        return bad(f"not JSON ({err})")
    if not isinstance(body, dict):
        return bad(f"a JSON {type(body).__name__}, not an object")
    produced_at = body.get("produced_at")
    if isinstance(produced_at, bool) or not isinstance(produced_at, int | float) or not math.isfinite(produced_at):
        return bad(f"produced_at={shown(str(produced_at))} is not a time in seconds")
    problems = []
    for name in ("id", "source"):
        value = body.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
            problems.append(f"{name}={shown(str(value))} is not a text of 1 to {MAX_ID_CHARS} characters")
    values = body.get("values")
    if not isinstance(values, dict):
        problems.append(f"values is a {type(values).__name__}, not an object")
    else:
        missing = [c for c in columns if c not in values]
        extra = [c for c in values if c not in columns]
        if missing:
            problems.append(f"missing fields {listed(missing)}")
        if extra:
            problems.append(f"unexpected fields {listed(extra)}")
    unknown = sorted(set(body) - {"id", "source", "produced_at", "values"})
    if unknown:
        problems.append(f"unexpected keys {listed(unknown)}")
    if problems:
        return bad("; ".join(problems), float(produced_at))
    return Event(entry, body["id"], body["source"], float(produced_at), values)
