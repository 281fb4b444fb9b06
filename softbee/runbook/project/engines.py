"""The engine the runbooks open sessions from, and the connection ``env.py`` is lent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from softbee.runbook.errors import ConfigError, first_line
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.util.compat import engine_options
from softbee.urls import redact_text, redact_url

APPLICATION_NAME = "softbee-runbook"


def quiet_alembic() -> None:
    """Keep Alembic's INFO chatter (re-enabled by env.py's fileConfig) out of the runbooks."""
    logging.getLogger("alembic").setLevel(logging.WARNING)


def describe_connection_error(exc: sa.exc.DBAPIError, url: URL) -> str:
    """One line saying why the database refused us, with the password masked."""
    reason = redact_text(first_line(exc.orig if exc.orig is not None else exc))
    hint = dialect_named(url.get_backend_name()).connection_hint(exc)
    return f"cannot connect to {redact_url(url)}: {reason} ({hint})"


def make_engine(url: URL) -> Engine:
    """Create the engine the runbooks use: psycopg2 named, SQLite with real transactions.

    Sessions come from it only through :func:`open_session` (``Project.connect``).
    """
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).parent.exists():
            raise ConfigError(
                f"SQLite file {database!r} is in a folder that does not exist: create it or fix the URL"
            )
        engine = sa.create_engine(url, isolation_level=None, **engine_options())
        _enable_sqlite_transactions(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": 10, "application_name": APPLICATION_NAME}
    elif url.get_backend_name() in ("mysql", "mariadb"):
        connect_args = {"connect_timeout": 10}  # PyMySQL and mysqlclient alike: seconds
    try:
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True,
                                **engine_options())
    except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"no driver for {redact_url(url)}: {exc}") from None


def _enable_sqlite_transactions(engine: Engine) -> None:
    """Make pysqlite emit BEGIN itself so DDL is transactional (SQLAlchemy's documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")




class BoundEngine:
    """Looks like an Engine to ``env.py``; every connection it gives is the caller's, lent."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.url = connection.engine.url
        self.dialect = connection.dialect

    def connect(self) -> _Lent:
        return _Lent(self._connection)

    def begin(self) -> _Lent:
        return _Lent(self._connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection.engine, name)


class _Lent:
    """The runbook's connection lent to ``env.py``: it may enter, begin, commit and close it.

    None of that reaches the connection: its transaction is the runbook's, which commits
    or rolls back after the guards have looked (the multi-database template, for one,
    begins and commits a transaction of its own on every connection it opens).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __enter__(self) -> _Lent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def begin(self) -> _Lent:
        return self

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class SkippedEngine:
    """Another bind's engine, while one bind is migrated: env.py may open, begin and close it.

    It never connects: that bind's ``configure`` and ``run_migrations`` are skipped in this
    block (``routing``), and it is migrated in its own block, on its own guarded connection.
    """

    def __init__(self, url: URL) -> None:
        self.url = url
        self.dialect = url.get_dialect()()
        self.engine = self

    def connect(self) -> SkippedEngine:
        return self

    def begin(self) -> SkippedEngine:
        return self

    def begin_twophase(self, *_args: object) -> SkippedEngine:
        return self

    def prepare(self) -> None:
        return None

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def close(self) -> None:
        return None

    def dispose(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None
