"""The prediction log as one row per answered request, and labels per prediction id.

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
    "prediction_requests",
    _metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("use_case", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False, server_default="stable"),
    sa.Column("n_records", sa.Integer, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("predictions", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_prediction_requests_use_case_ts", "use_case", "ts"),
    sa.Index("ix_prediction_requests_version_ts", "use_case", "model_version", "ts"),
    sa.Index("ux_prediction_requests_request_variant", "request_id", "variant", unique=True),
)
sa.Table(
    "prediction_labels",
    _metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)


def upgrade() -> None:
    create_missing(op.get_bind(), _metadata)
