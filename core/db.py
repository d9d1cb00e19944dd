"""One way to open the project's SQL databases: SQLite by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

# What a database that is down, restarting or failing over raises: the statement may succeed in a
# moment. Other errors (a constraint, a bad query) say the statement itself is at fault.
UNAVAILABLE: tuple[type[sa.exc.DBAPIError], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError)


def make_engine(url: str) -> sa.Engine:
    """An engine with SQLite tuned for several processes sharing one file.

    WAL lets readers (monitoring, other replicas) proceed while a writer writes;
    the 30 s busy timeout makes writers queue instead of failing.
    """
    is_sqlite = url.startswith("sqlite")
    # A server's connections go stale (a restart, an idle timeout): each is checked as it leaves the
    # pool. A SQLite file's cannot, and the check was a second statement for every lookup.
    engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=not is_sqlite)
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table) -> sa.Insert:
    """INSERT that skips rows whose unique key is there already (ON CONFLICT DO NOTHING)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project runs on SQLite and PostgreSQL
        raise NotImplementedError(f"no ON CONFLICT insert for {engine.dialect.name}")
    return insert(table).on_conflict_do_nothing()
