"""The project's own tables, versioned with Alembic and migrated at start-up.

Each store (the prediction log, the rollout state) is one chain of migrations with its own
version table: the two may share a database (the default) or not, and each process migrates
the stores it opens, when it opens them. Under a lock on PostgreSQL, so replicas that start
together take turns: the first migrates, the others find the tables at the newest revision.

A migration is a file in the chain's ``versions`` folder (``revision`` and ``down_revision``
naming its place in the chain). Migrations only add: a release that renames or reshapes a table
copies the rows into the new one and leaves the old table in place, so that no release can make
existing data invisible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

# Any constant shared by every process of the project: the key of the migration lock.
_LOCK = 0x6D6C6F7073  # "mlops"


@dataclass(frozen=True)
class Chain:
    """One store's migrations: the folder that holds them and the table that records how far it got."""

    folder: Path
    version_table: str


PREDICTION_LOG = Chain(Path(__file__).parent / "prediction_log", "mlops_prediction_log_version")
# The rollout state's chain lives beside its store (services.serving.rollouts.migrations).


def upgrade(engine: sa.Engine, chain: Chain) -> None:
    """Bring the store's tables to the newest revision (nothing to do when they are there already)."""
    from alembic import command

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        command.upgrade(_config(conn, chain), "head")


def revision(engine: sa.Engine, chain: Chain) -> str | None:
    """The revision the store's tables are at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": chain.version_table}).get_current_revision()


def head(chain: Chain) -> str:
    """The newest revision of the chain."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory(str(chain.folder)).get_current_head()
    assert found is not None, f"no migration in {chain.folder}"
    return found


def _config(conn: sa.Connection, chain: Chain) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(chain.folder))
    config.attributes["connection"] = conn
    config.attributes["version_table"] = chain.version_table
    return config


def run_migrations(context: Any) -> None:
    """The body of every chain's ``env.py``: migrate on the connection ``upgrade`` opened."""
    config = context.config
    context.configure(connection=config.attributes["connection"], version_table=config.attributes["version_table"])
    with context.begin_transaction():
        context.run_migrations()


def create_missing(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Create the tables and indexes of ``metadata`` that are not there yet.

    What a chain's first migration does: a database written before the project versioned its
    tables holds some or all of them already (and perhaps rows that an index added later would
    reject: that index is then left out, with a warning, rather than failing the start-up).
    """
    metadata.create_all(conn, checkfirst=True)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            try:
                with conn.begin_nested():  # a failed CREATE must not abort the whole transaction
                    index.create(conn, checkfirst=True)
            except sa.exc.IntegrityError as err:
                log.warning("index %s not created: existing rows violate it (%s)", index.name, err.orig)
