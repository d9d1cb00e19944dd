"""The prediction log: every served prediction, and the ground truth that arrives later.

Written by the serving process, read by monitoring and by the rollout analysis.
SQLite by default; any SQLAlchemy URL (PostgreSQL for the compose stack) works
unchanged.

One row per answered request, not per record: a 1,000-record request costs one
INSERT of two JSON arrays instead of 1,000 rows (a row costs the writer about
as much as predicting it). Prediction ids stay per record: the request id for
a one-record request, ``<request id>/<index>`` for each record of a batch.
Readers expand requests into records; callers see records, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from core.db import make_engine
from core.migrations import PREDICTION_LOG, upgrade

# The tables as the newest migration (core/migrations/prediction_log) leaves them: what queries use.
_metadata = sa.MetaData()

requests = sa.Table(
    "prediction_requests",
    _metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    # Not unique alone: a mirrored (shadow) answer, or a candidate that failed before stable answered,
    # is logged as a second row of the same request, with another variant.
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("use_case", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False, server_default="stable"),
    sa.Column("n_records", sa.Integer, nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON array of the request's records
    sa.Column("predictions", sa.Text, nullable=True),  # JSON array, one per record; null when the model failed
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_prediction_requests_use_case_ts", "use_case", "ts"),
    # a rollout's analysis reads one version's newest requests, every second
    sa.Index("ix_prediction_requests_version_ts", "use_case", "model_version", "ts"),
    # One answer per request and variant: a request that the gateway retried on another replica
    # (the first one answered, then its connection broke) carries the same X-Request-ID, and is
    # logged once.
    sa.Index("ux_prediction_requests_request_variant", "request_id", "variant", unique=True),
)

labels = sa.Table(
    "prediction_labels",
    _metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),  # what readers join on
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)


def prediction_ids(request_id: str, n_records: int) -> list[str]:
    """The id of each record's prediction: what clients send back with the ground truth."""
    return [request_id] if n_records == 1 else [f"{request_id}/{i}" for i in range(n_records)]


def split_prediction_id(prediction_id: str) -> tuple[str, int | None]:
    """(request id, record index) of a prediction id; index None for a one-record request.

    Request ids cannot contain "/" (the service checks), so the split is unambiguous. An
    index that is not a number gives -1, which matches no record.
    """
    request_id, slash, index = prediction_id.rpartition("/")
    if not slash:
        return prediction_id, None
    return request_id, int(index) if index.isdigit() else -1


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One version's answer to one request: its records and one prediction per record."""

    request_id: str
    ts: float
    use_case: str
    model_name: str
    model_version: str
    variant: str
    features: Sequence[dict[str, Any]]
    predictions: Sequence[float] | None  # None when the model failed; ``error`` says why
    latency_ms: float
    error: str | None = None

    @property
    def n_records(self) -> int:
        return len(self.features)


@dataclass(frozen=True, slots=True)
class VersionRows:
    """One version's records in a window, as arrays for analysis."""

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


def _dumps(value: Any) -> str:
    # numpy scalars and arrays as numbers: callers pass model output as it comes
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Slices for IN (...) lists: databases cap the parameters of one statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


_WRITTEN = (
    "request_id", "ts", "use_case", "model_name", "model_version", "variant", "n_records", "features",
    "predictions", "latency_ms", "error",
)  # fmt: skip
_CASTS = {"ts": "float8", "n_records": "integer", "latency_ms": "float8"}  # PostgreSQL's ->> gives text


def _insert_from_json(dialect: str) -> sa.TextClause:
    """INSERT of the rows of one JSON array (one array of ``_WRITTEN`` per row), skipping logged ones."""
    columns = ", ".join(_WRITTEN)
    if dialect == "sqlite":
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_WRITTEN)))
        source = "json_each(:batch) WHERE true"  # WHERE: SQLite's parser needs it before ON CONFLICT
    elif dialect == "postgresql":
        values = ", ".join(f"(r->>{i})::{_CASTS[c]}" if c in _CASTS else f"r->>{i}" for i, c in enumerate(_WRITTEN))
        source = "json_array_elements(CAST(:batch AS json)) AS r"
    else:  # pragma: no cover - the project runs on SQLite and PostgreSQL
        raise NotImplementedError(f"no JSON batch insert for {dialect}")
    return sa.text(
        f"INSERT INTO prediction_requests ({columns}) SELECT {values} FROM {source} "
        "ON CONFLICT (request_id, variant) DO NOTHING"
    )


def _requests_named_in_json(dialect: str) -> str:
    """SELECT of the (request id, records) of the logged requests whose ids one JSON array (``:ids``) names."""
    if dialect == "sqlite":
        named = "SELECT value FROM json_each(:ids)"
    elif dialect == "postgresql":
        named = "SELECT json_array_elements_text(CAST(:ids AS json))"
    else:  # pragma: no cover - the project runs on SQLite and PostgreSQL
        raise NotImplementedError(f"no JSON id lookup for {dialect}")
    return f"SELECT request_id, features FROM prediction_requests WHERE request_id IN ({named})"


class PredictionLog:
    """Synchronous store; the service wraps it in a non-blocking batching writer."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        upgrade(self._engine, PREDICTION_LOG)
        self._insert_batch = _insert_from_json(self._engine.dialect.name)
        self._select_requests_sql = _requests_named_in_json(self._engine.dialect.name)
        self._select_requests = sa.text(self._select_requests_sql)
        # SQLite: the id lookups go through one connection of their own, held open (the service asks
        # once per burst of requests, on its event loop). The pool's checkout and SQLAlchemy's handling
        # of the statement were two thirds of a lookup's cost: 7 % of the throughput at 16 connections.
        self._lookup: Any = None
        self._lookup_lock = threading.Lock()

    @property
    def local(self) -> bool:
        """A file on this machine (SQLite): a short read costs no network round trip."""
        return self._engine.dialect.name == "sqlite"

    def write(self, entries: Sequence[LoggedRequest]) -> None:
        """One INSERT for the whole batch, its rows sent as one JSON document the database unpacks.

        The serving process writes while it answers requests. Row by row (``executemany``), the
        driver released and re-took the interpreter lock once per row, and each time the event
        loop waited for it: prediction logging cost 15 % of the throughput and added 4 ms to the
        p99 at 16 connections. Here the rows are one ``orjson`` call and one statement, which runs
        without the lock. Records and predictions travel as JSON strings inside the document, so
        the database stores them as written (it would re-render floats it parsed itself).
        """
        if not entries:
            return
        batch = orjson.dumps(
            [
                [
                    e.request_id,
                    e.ts,
                    e.use_case,
                    e.model_name,
                    e.model_version,
                    e.variant,
                    e.n_records,
                    _dumps(list(e.features)),
                    None if e.predictions is None else _dumps(list(e.predictions)),
                    e.latency_ms,
                    e.error,
                ]
                for e in entries
            ],
            option=orjson.OPT_SERIALIZE_NUMPY,
        ).decode()
        with self._engine.begin() as conn:
            conn.execute(self._insert_batch, {"batch": batch})

    def request_records(self, request_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The records of each logged request among ``request_ids``; an id no request has is left out."""
        if not request_ids:
            return {}
        # One statement with one parameter, however many ids: the service asks for every request's id.
        ids = {"ids": orjson.dumps(list(request_ids)).decode()}
        if self.local:
            with self._lookup_lock:
                if self._lookup is None:
                    self._lookup = self._engine.raw_connection()  # WAL: reads see every committed write
                try:
                    rows = self._lookup.driver_connection.execute(self._select_requests_sql, ids).fetchall()
                except self._engine.dialect.loaded_dbapi.Error as err:
                    # The driver's own error, raised as SQLAlchemy would (callers catch core.db.UNAVAILABLE);
                    # the connection is opened afresh for the next lookup.
                    self._lookup.invalidate()
                    self._lookup = None
                    raise sa.exc.DBAPIError.instance(
                        self._select_requests_sql, ids, err, self._engine.dialect.loaded_dbapi.Error
                    ) from err
        else:
            with self._engine.connect() as conn:
                rows = conn.execute(self._select_requests, ids).all()
        # A request logged under two variants (a mirrored answer) has the same records in both rows.
        return {rid: orjson.loads(features) for rid, features in rows}

    def unknown_ids(self, ids: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(ids))
        parsed = {pid: split_prediction_id(pid) for pid in wanted}
        sizes: dict[str, int] = {}
        request_ids = list({rid for rid, _ in parsed.values()})
        with self._engine.connect() as conn:
            for chunk in _chunks(request_ids):
                q = (
                    sa.select(requests.c.request_id, sa.func.max(requests.c.n_records))
                    .where(requests.c.request_id.in_(chunk))
                    .group_by(requests.c.request_id)
                )
                sizes.update({rid: n for rid, n in conn.execute(q).all()})

        def known(rid: str, index: int | None) -> bool:
            n = sizes.get(rid)
            if n is None:
                return False
            return n == 1 if index is None else 0 <= index < n and n > 1

        return [pid for pid in wanted if not known(*parsed[pid])]

    def add_feedback(self, pairs: Sequence[tuple[str, Any]], *, ts: float) -> None:
        """Upsert labels; the latest label for an id wins (labels get corrected in practice), within
        one call too. Repeating a call (a retried request) stores the same labels once."""
        latest = dict(pairs)
        ids = list(latest)
        with self._engine.begin() as conn:
            for chunk in _chunks(ids):
                conn.execute(labels.delete().where(labels.c.prediction_id.in_(chunk)))
            conn.execute(
                labels.insert(),
                [
                    {"prediction_id": pid, "request_id": split_prediction_id(pid)[0], "label": _dumps(label), "ts": ts}
                    for pid, label in latest.items()
                ],
            )

    @staticmethod
    def _labels(conn: sa.Connection, *conditions: sa.ColumnElement[bool]) -> dict[str, Any]:
        """Labels of the records of the requests that match ``conditions``, by prediction id.

        A join, not a list of ids: an analysis sample holds thousands of requests, and binding
        thousands of parameters costs more than the query.
        """
        q = (
            sa.select(labels.c.prediction_id, labels.c.label)
            .join(requests, labels.c.request_id == requests.c.request_id)
            .where(*conditions)
        )
        return {pid: _loads(label) for pid, label in conn.execute(q).all()}

    def window(self, *, use_case: str, since: float, until: float) -> list[LabelledPrediction]:
        """Every record users were answered for in ``[since, until)``, oldest first, with its label if any."""
        conditions = (
            requests.c.use_case == use_case,
            requests.c.ts >= since,
            requests.c.ts < until,
            requests.c.variant != "shadow",  # mirrored predictions never reached a user
            requests.c.error.is_(None),
        )
        q = (
            sa.select(
                requests.c.request_id,
                requests.c.ts,
                requests.c.model_version,
                requests.c.variant,
                requests.c.n_records,
                requests.c.features,
                requests.c.predictions,
            )
            .where(*conditions)
            .order_by(requests.c.ts, requests.c.row_id)  # spilled rows are written late, with their own time
        )
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
            known = self._labels(conn, *conditions)
        out = []
        for row in rows:
            ids = prediction_ids(row.request_id, row.n_records)
            for pid, features, prediction in zip(ids, _loads(row.features), _loads(row.predictions), strict=True):
                out.append(
                    LabelledPrediction(
                        prediction_id=pid,
                        ts=row.ts,
                        model_version=row.model_version,
                        variant=row.variant,
                        features=features,
                        prediction=prediction,
                        label=known.get(pid),
                    )
                )
        return out

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
        """A version's records in a window (mirrored ones too unless ``user_facing_only``), with labels.

        With ``max_rows``, only the most recent records: an analysis that runs every second must
        not read a window that grows with the traffic.
        """
        conditions = [
            requests.c.use_case == use_case,
            requests.c.model_version == version,
            requests.c.ts >= since,
            requests.c.ts < until,
        ]
        if user_facing_only:
            conditions.append(requests.c.variant != "shadow")
        newest_first = (requests.c.ts.desc(), requests.c.row_id.desc())
        with self._engine.connect() as conn:
            if max_rows is not None:
                # The newest requests that hold max_rows records, found from their sizes alone; the
                # JSON of older ones is never read (a request holds at least one record). The cut is
                # a range, not a list of ids: thousands of bound ids would cost more than the query.
                sizes = conn.execute(
                    sa.select(requests.c.ts, requests.c.row_id, requests.c.n_records)
                    .where(*conditions)
                    .order_by(*newest_first)
                    .limit(max_rows)
                ).all()
                records = 0
                for ts, row_id, n in sizes:
                    records += n
                    if records >= max_rows:
                        conditions.append(
                            sa.or_(requests.c.ts > ts, sa.and_(requests.c.ts == ts, requests.c.row_id >= row_id))
                        )
                        break
            q = sa.select(
                requests.c.request_id,
                requests.c.variant,
                requests.c.latency_ms,
                requests.c.n_records,
                requests.c.predictions,
            ).where(*conditions)
            rows = conn.execute(q.order_by(*newest_first)).all()
            known = self._labels(conn, *conditions)
        out = VersionRows([], [], [], [])
        # Extended per request, not appended per record: this runs every second on thousands of rows.
        for request_id, variant, latency_ms, n, predictions in rows:
            out.variants.extend([variant] * n)
            out.latencies_ms.extend([latency_ms] * n)
            out.predictions.extend(_loads(predictions) or [None] * n)
            out.labels.extend([known.get(pid) for pid in prediction_ids(request_id, n)] if known else [None] * n)
        if max_rows is not None and len(out.variants) > max_rows:
            out = VersionRows(
                *(column[:max_rows] for column in (out.variants, out.latencies_ms, out.predictions, out.labels))
            )
        return out

    def paired(self, *, use_case: str, since: float, until: float) -> list[tuple[float, float]]:
        """(stable, shadow) predictions of the same records: the shadow comparison's raw material."""
        shadow = requests.alias("shadow")
        q = (
            sa.select(requests.c.predictions, shadow.c.predictions)
            .select_from(requests.join(shadow, requests.c.request_id == shadow.c.request_id))
            .where(
                requests.c.use_case == use_case,
                requests.c.variant == "stable",
                shadow.c.variant == "shadow",
                requests.c.ts >= since,
                requests.c.ts < until,
                requests.c.predictions.is_not(None),
                shadow.c.predictions.is_not(None),
            )
        )
        with self._engine.connect() as conn:
            pairs = conn.execute(q).all()
        return [pair for a, b in pairs for pair in _zip_values(_loads(a), _loads(b))]

    def close(self) -> None:
        with self._lookup_lock:
            if self._lookup is not None:
                self._lookup.close()
                self._lookup = None
        self._engine.dispose()


def _zip_values(a: list[float | None], b: list[float | None]) -> Iterator[tuple[float, float]]:
    return ((x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None)
