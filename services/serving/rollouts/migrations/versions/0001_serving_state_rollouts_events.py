"""Which version serves, the rollouts, and their append-only decision log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.migrations import create_missing

revision = "0001"
down_revision = None

# The tables as this revision made them (later revisions change them; this never does).
_metadata = sa.MetaData()
sa.Table(
    "serving_state",
    _metadata,
    sa.Column("model_name", sa.String(128), primary_key=True),
    sa.Column("stable_version", sa.String(32), nullable=False),
    sa.Column("previous_version", sa.String(32), nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
sa.Table(
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
sa.Table(
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


def upgrade() -> None:
    create_missing(op.get_bind(), _metadata)
