"""Rows written by the releases that logged one row per record, copied into the per-request tables.

Those releases kept ``predictions`` (one row per record) and ``feedback``; the releases after them
read ``prediction_requests`` and ``prediction_labels`` only, so a volume written before the change
looked empty. The old rows are copied, grouped back into their requests (the prediction ids stay
what clients were given), and the old tables are left as they are.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from core.db import insert_ignoring_duplicates

revision = "0002"
down_revision = "0001"

_BATCH = 5000


def upgrade() -> None:
    conn = op.get_bind()
    present = set(sa.inspect(conn).get_table_names())
    if "predictions" in present:
        _copy_requests(conn)
    if "feedback" in present:
        _copy_labels(conn)


def _copy_requests(conn: sa.Connection) -> None:
    old = sa.table(
        "predictions",
        *(sa.column(c) for c in ("row_id", "prediction_id", "request_id", "ts", "use_case", "model_name")),
        *(sa.column(c) for c in ("model_version", "variant", "features", "prediction", "latency_ms", "error")),
    )
    new = sa.Table("prediction_requests", sa.MetaData(), autoload_with=conn)
    rows = conn.execute(sa.select(old).order_by(old.c.request_id, old.c.variant, old.c.row_id)).mappings()
    grouped = itertools.groupby(rows, key=lambda r: (r["request_id"], r["variant"] or "stable"))
    for chunk in _batched((_request(key, list(records)) for key, records in grouped), _BATCH):
        conn.execute(insert_ignoring_duplicates(conn.engine, new), chunk)


def _request(key: tuple[str, str], records: list[Any]) -> dict[str, Any]:
    """One request from its per-record rows, in the order of their prediction ids."""
    request_id, variant = key
    records.sort(key=lambda r: _index(r["prediction_id"]))
    failed = any(r["error"] is not None for r in records)
    return {
        "request_id": request_id,
        "ts": min(r["ts"] for r in records),
        "use_case": records[0]["use_case"],
        "model_name": records[0]["model_name"],
        "model_version": records[0]["model_version"],
        "variant": variant,
        "n_records": len(records),
        "features": json.dumps([json.loads(r["features"]) for r in records]),
        "predictions": None if failed else json.dumps([r["prediction"] for r in records]),
        "latency_ms": max(r["latency_ms"] for r in records),
        "error": next((r["error"] for r in records if r["error"] is not None), None),
    }


def _index(prediction_id: str) -> int:
    _, slash, index = prediction_id.rpartition("/")
    return int(index) if slash and index.isdigit() else 0


def _copy_labels(conn: sa.Connection) -> None:
    old = sa.table("feedback", sa.column("prediction_id"), sa.column("label"), sa.column("ts"))
    new = sa.Table("prediction_labels", sa.MetaData(), autoload_with=conn)
    rows = conn.execute(sa.select(old)).mappings()
    labels = ({**r, "request_id": _request_id(r["prediction_id"])} for r in rows)
    for chunk in _batched(labels, _BATCH):
        conn.execute(insert_ignoring_duplicates(conn.engine, new), chunk)


def _request_id(prediction_id: str) -> str:
    request_id, slash, _ = prediction_id.rpartition("/")
    return request_id if slash else prediction_id


def _batched(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk
