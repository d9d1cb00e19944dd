"""Durable rollout state, shared by every replica: SQLite by default, PostgreSQL by URL.

Writers use compare-and-set on a revision number, so replicas can all run the
controller: whichever writes first wins, the others see a conflict and re-read.
The decision log is append-only: rows are inserted, never updated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.db import make_engine
from core.migrations import Chain, upgrade
from services.serving.rollouts.state import TERMINAL, Event, Rollout

ROLLOUT_STATE = Chain(Path(__file__).parent / "migrations", "mlops_rollout_state_version")

# The tables as the newest migration (./migrations) leaves them: what queries use.
_metadata = sa.MetaData()

serving = sa.Table(
    "serving_state",
    _metadata,
    sa.Column("model_name", sa.String(128), primary_key=True),
    sa.Column("stable_version", sa.String(32), nullable=False),
    sa.Column("previous_version", sa.String(32), nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The revision the registry's aliases agree with; behind ``revision`` while a promotion's or a
    # rollback's aliases have not moved yet (Control.converge_registry completes them).
    sa.Column("registry_revision", sa.Integer, nullable=True),
)

rollouts = sa.Table(
    "rollouts",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

events = sa.Table(
    "rollout_events",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String(64), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class ServingRow:
    """Which version serves a model, the one before it, and whether the registry has followed."""

    stable: str
    previous: str | None
    revision: int
    updated_at: float  # when the serving version last changed
    registry_revision: int | None  # the revision the registry's aliases agree with

    @property
    def registry_lags(self) -> bool:
        return self.registry_revision != self.revision


class ConflictError(RuntimeError):
    """Someone else changed the state first; re-read and decide again."""


class RolloutStore:
    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        upgrade(self._engine, ROLLOUT_STATE)

    # -- the serving state: which version is stable ----------------------------------------------
    def serving_row(self, model_name: str) -> ServingRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(serving).where(serving.c.model_name == model_name)).first()
        if row is None:
            return None
        return ServingRow(row.stable_version, row.previous_version, row.revision, row.updated_at, row.registry_revision)

    def serving_state(self, model_name: str) -> tuple[str | None, str | None, int]:
        row = self.serving_row(model_name)
        return (row.stable, row.previous, row.revision) if row else (None, None, 0)

    def set_stable(
        self, model_name: str, version: str, *, now: float, from_registry: bool, events: Sequence[Event] = ()
    ) -> None:
        """Make ``version`` stable (start-up, explicit reload, manual rollback). Refused during a rollout.

        ``from_registry``: the registry names it champion already (a reload, the start-up's adoption);
        otherwise the registry's aliases are to follow (a rollback), and the change stays a pending
        intent until ``mark_registry_synced``. ``events`` are logged in the same transaction.
        """
        for attempt in (1, 2):
            try:
                with self._engine.begin() as conn:
                    if self._active_row(conn, model_name) is not None:
                        raise ConflictError("a rollout is in progress: promote, abort or let it finish first")
                    self._write_stable(conn, model_name, version, now=now, from_registry=from_registry)
                    self._append(conn, list(events))
                return
            except sa.exc.IntegrityError:
                # Replicas starting together on an empty database both insert the first row; the
                # loser finds it there on the second attempt and updates it (or leaves it as it is).
                if attempt == 2:
                    raise

    def _write_stable(
        self, conn: sa.Connection, model_name: str, version: str, *, now: float, from_registry: bool
    ) -> None:
        row = conn.execute(sa.select(serving).where(serving.c.model_name == model_name)).first()
        if row is None:
            conn.execute(
                serving.insert().values(
                    model_name=model_name,
                    stable_version=version,
                    previous_version=None,
                    revision=1,
                    updated_at=now,
                    registry_revision=1 if from_registry else 0,
                )
            )
        elif row.stable_version != version:
            conn.execute(
                serving.update()
                .where(serving.c.model_name == model_name)
                .values(
                    stable_version=version,
                    previous_version=row.stable_version,
                    revision=row.revision + 1,
                    updated_at=now,
                    registry_revision=row.revision + 1 if from_registry else row.registry_revision,
                )
            )

    def registry_intent(self, model_name: str) -> tuple[str, str | None, int] | None:
        """(stable, previous, revision) when the registry's aliases have yet to follow the serving state."""
        row = self.serving_row(model_name)
        return None if row is None or not row.registry_lags else (row.stable, row.previous, row.revision)

    def mark_registry_synced(self, model_name: str, revision: int) -> bool:
        """Record that the aliases agree with ``revision``; False when the state has moved on since."""
        with self._engine.begin() as conn:
            done = conn.execute(
                serving.update()
                .where(serving.c.model_name == model_name, serving.c.revision == revision)
                .values(registry_revision=revision)
            )
        return done.rowcount == 1

    # -- rollouts ----------------------------------------------------------------------------------
    def _active_row(self, conn: sa.Connection, model_name: str) -> Any:
        return conn.execute(
            sa.select(rollouts).where(rollouts.c.model_name == model_name, rollouts.c.phase.notin_(TERMINAL))
        ).first()

    def active(self, model_name: str) -> Rollout | None:
        with self._engine.connect() as conn:
            row = self._active_row(conn, model_name)
        return _rollout(row) if row else None

    def latest(self, model_name: str) -> Rollout | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.model_name == model_name)
                .order_by(rollouts.c.started_at.desc())
                .limit(1)
            ).first()
        return _rollout(row) if row else None

    def get(self, rollout_id: str) -> Rollout | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
        return _rollout(row) if row else None

    def history(self, model_name: str, *, limit: int = 50) -> list[Rollout]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.model_name == model_name)
                .order_by(rollouts.c.started_at.desc())
                .limit(limit)
            ).all()
        return [_rollout(r) for r in rows]

    def create(self, rollout: Rollout, new_events: list[Event]) -> Rollout:
        stored = rollout.evolve(revision=1)
        with self._engine.begin() as conn:
            running = self._active_row(conn, rollout.model_name)
            if running is not None:
                raise ConflictError(f"rollout {running.id} is still {running.phase}: one rollout at a time")
            conn.execute(
                rollouts.insert().values(
                    id=stored.id,
                    model_name=stored.model_name,
                    phase=stored.phase,
                    revision=1,
                    started_at=stored.started_at,
                    updated_at=stored.updated_at,
                    body=json.dumps(stored.to_dict()),
                )
            )
            self._append(conn, new_events)
        return stored

    def update(self, rollout: Rollout, new_events: list[Event], *, expected_revision: int) -> Rollout:
        """Compare-and-set. A promotion also makes the candidate stable, in the same transaction."""
        stored = rollout.evolve(revision=expected_revision + 1)
        with self._engine.begin() as conn:
            result = conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id, rollouts.c.revision == expected_revision)
                .values(
                    phase=stored.phase,
                    revision=stored.revision,
                    updated_at=stored.updated_at,
                    body=json.dumps(stored.to_dict()),
                )
            )
            if result.rowcount != 1:
                raise ConflictError(f"rollout {rollout.id} changed since revision {expected_revision}")
            if stored.phase == "promoted":  # the registry follows (Control.converge_registry)
                self._write_stable(
                    conn, stored.model_name, stored.candidate_version, now=stored.updated_at, from_registry=False
                )
            self._append(conn, new_events)
        return stored

    def append(self, new_events: list[Event]) -> None:
        with self._engine.begin() as conn:
            self._append(conn, new_events)

    @staticmethod
    def _append(conn: sa.Connection, new_events: list[Event]) -> None:
        if new_events:
            conn.execute(
                events.insert(),
                [
                    {
                        "rollout_id": e.rollout_id,
                        "ts": e.ts,
                        "kind": e.kind,
                        "actor": e.actor,
                        "message": e.message,
                        "data": json.dumps(e.data, default=str),
                    }
                    for e in new_events
                ],
            )

    def events(self, rollout_id: str) -> list[Event]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.rollout_id == rollout_id).order_by(events.c.seq)).all()
        return [Event(r.rollout_id, r.ts, r.kind, r.actor, r.message, json.loads(r.data)) for r in rows]

    def close(self) -> None:
        self._engine.dispose()


def _rollout(row: Any) -> Rollout:
    return Rollout.from_dict(json.loads(row.body)).evolve(revision=row.revision)
