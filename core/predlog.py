"""The prediction log: every served prediction, and the ground truth that arrives later.

Written by the serving process, read by monitoring. SQLite by default; any
SQLAlchemy URL (PostgreSQL for the compose stack) works unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.db import create_schema, make_engine

_metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    _metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    # One id per predicted record: the request id for a single record,
    # "<request id>/<index>" for each record of a batch.
    sa.Column("prediction_id", sa.String(128), nullable=False, index=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("use_case", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False, server_default="stable"),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("prediction", sa.Float, nullable=True),  # null when the model failed
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # a rollout's analysis reads one version's newest rows, every second
    sa.Index("ix_predictions_version_ts", "use_case", "model_version", "ts"),
)

feedback = sa.Table(
    "feedback",
    _metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    prediction_id: str
    request_id: str
    ts: float
    use_case: str
    model_name: str
    model_version: str
    variant: str
    features: dict[str, Any]
    prediction: float | None
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class VersionRows:
    """One version's rows in a window, as arrays for analysis."""

    variants: list[str]
    latencies_ms: list[float]
    predictions: list[float | None]
    labels: list[Any | None]


@dataclass(frozen=True, slots=True)
class LabelledPrediction:
    prediction_id: str
    ts: float
    model_version: str
    variant: str
    features: dict[str, Any]
    prediction: float
    label: Any | None


class PredictionLog:
    """Synchronous store; the service wraps it in a non-blocking batching writer."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        create_schema(self._engine, _metadata)

    def write(self, records: Sequence[PredictionRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "prediction_id": r.prediction_id,
                "request_id": r.request_id,
                "ts": r.ts,
                "use_case": r.use_case,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "variant": r.variant,
                "features": json.dumps(r.features),
                "prediction": r.prediction,
                "latency_ms": r.latency_ms,
                "error": r.error,
            }
            for r in records
        ]
        with self._engine.begin() as conn:
            conn.execute(predictions.insert(), rows)

    def unknown_ids(self, prediction_ids: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(prediction_ids))
        found: set[str] = set()
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                q = sa.select(predictions.c.prediction_id).where(predictions.c.prediction_id.in_(chunk))
                found.update(conn.execute(q).scalars())
        return [i for i in wanted if i not in found]

    def add_feedback(self, labels: Sequence[tuple[str, Any]], *, ts: float) -> None:
        """Upsert labels; the latest label for an id wins (labels get corrected in practice)."""
        ids = [pid for pid, _ in labels]
        with self._engine.begin() as conn:
            conn.execute(feedback.delete().where(feedback.c.prediction_id.in_(ids)))
            conn.execute(
                feedback.insert(),
                [{"prediction_id": pid, "label": json.dumps(label), "ts": ts} for pid, label in labels],
            )

    def window(self, *, use_case: str, since: float, until: float) -> list[LabelledPrediction]:
        q = (
            sa.select(
                predictions.c.prediction_id,
                predictions.c.ts,
                predictions.c.model_version,
                predictions.c.variant,
                predictions.c.features,
                predictions.c.prediction,
                feedback.c.label,
            )
            .select_from(predictions.outerjoin(feedback, predictions.c.prediction_id == feedback.c.prediction_id))
            .where(
                predictions.c.use_case == use_case,
                predictions.c.ts >= since,
                predictions.c.ts < until,
                predictions.c.variant != "shadow",  # mirrored predictions never reached a user
                predictions.c.error.is_(None),
            )
            .order_by(predictions.c.row_id)
        )
        with self._engine.connect() as conn:
            return [
                LabelledPrediction(
                    prediction_id=row.prediction_id,
                    ts=row.ts,
                    model_version=row.model_version,
                    variant=row.variant,
                    features=json.loads(row.features),
                    prediction=row.prediction,
                    label=None if row.label is None else json.loads(row.label),
                )
                for row in conn.execute(q)
            ]

    def version_rows(
        self,
        *,
        use_case: str,
        version: str,
        since: float,
        until: float,
        user_facing_only: bool,
        max_rows: int | None = None,
    ) -> VersionRows:
        """A version's requests in a window (mirrored ones too unless ``user_facing_only``), with labels.

        With ``max_rows``, only the most recent ones: an analysis that runs every second must not
        read a window that grows with the traffic.
        """
        conditions = [
            predictions.c.use_case == use_case,
            predictions.c.model_version == version,
            predictions.c.ts >= since,
            predictions.c.ts < until,
        ]
        if user_facing_only:
            conditions.append(predictions.c.variant != "shadow")
        q = (
            sa.select(predictions.c.variant, predictions.c.latency_ms, predictions.c.prediction, feedback.c.label)
            .select_from(predictions.outerjoin(feedback, predictions.c.prediction_id == feedback.c.prediction_id))
            .where(*conditions)
        )
        if max_rows is not None:
            q = q.order_by(predictions.c.ts.desc()).limit(max_rows)
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
        return VersionRows(
            variants=[r.variant for r in rows],
            latencies_ms=[r.latency_ms for r in rows],
            predictions=[r.prediction for r in rows],
            labels=[None if r.label is None else json.loads(r.label) for r in rows],
        )

    def paired(self, *, use_case: str, since: float, until: float) -> list[tuple[float, float]]:
        """(stable, shadow) predictions of the same requests: the shadow comparison's raw material."""
        shadow = predictions.alias("shadow")
        q = (
            sa.select(predictions.c.prediction, shadow.c.prediction)
            .select_from(predictions.join(shadow, predictions.c.prediction_id == shadow.c.prediction_id))
            .where(
                predictions.c.use_case == use_case,
                predictions.c.variant == "stable",
                shadow.c.variant == "shadow",
                predictions.c.ts >= since,
                predictions.c.ts < until,
                predictions.c.prediction.is_not(None),
                shadow.c.prediction.is_not(None),
            )
        )
        with self._engine.connect() as conn:
            return [(a, b) for a, b in conn.execute(q).all()]

    def close(self) -> None:
        self._engine.dispose()
