"""The serving revision that the registry's aliases agree with: a promotion is a durable intent.

A promotion (or a rollback) changes the serving state first, in one transaction with its
decision-log event, and moves the registry's aliases after. ``registry_revision`` lags behind
``revision`` until the aliases have moved: a process that dies in between finds the intent at
start-up and completes it, instead of taking the registry's old champion for the truth.
Existing rows agreed with their registry when they were written.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table in place beyond adding a column; the same code runs on both
    with op.batch_alter_table("serving_state") as table:
        table.add_column(sa.Column("registry_revision", sa.Integer, nullable=True))
    op.execute("UPDATE serving_state SET registry_revision = revision")
