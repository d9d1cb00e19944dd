"""One way to open the project's SQL databases: SQLite by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)


def make_engine(url: str) -> sa.Engine:
    """An engine with SQLite tuned for several processes sharing one file.

    WAL lets readers (monitoring, other replicas) proceed while a writer writes;
    the 30 s busy timeout makes writers queue instead of failing.
    """
    is_sqlite = url.startswith("sqlite")
    engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=True)
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


# Any constant shared by every process of the project: the key of the schema lock.
_SCHEMA_LOCK = 0x6D6C6F7073  # "mlops"


def create_schema(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create missing tables; safe when several processes start at once on one empty database.

    Two replicas starting together would both see no table and both issue CREATE TABLE; on
    PostgreSQL the loser fails on the catalogue's unique index. A transaction-scoped advisory
    lock makes them take turns, and the second one then finds the tables there.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn)
        # create_all adds no index to a table that exists already (one made by an older release)
        for table in metadata.sorted_tables:
            for index in table.indexes:
                try:
                    with conn.begin_nested():  # a failed CREATE must not abort the whole transaction
                        index.create(conn, checkfirst=True)
                except sa.exc.IntegrityError as err:  # rows written before the index already break it
                    log.warning("index %s not created: existing rows violate it (%s)", index.name, err.orig)


def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table) -> sa.Insert:
    """INSERT that skips rows whose unique key is there already (ON CONFLICT DO NOTHING)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project runs on SQLite and PostgreSQL
        raise NotImplementedError(f"no ON CONFLICT insert for {engine.dialect.name}")
    return insert(table).on_conflict_do_nothing()
