"""What differs between databases, in one place: one small object per dialect.

Like Alembic's ``ddl/`` impls, each class declares facts (``transactional_ddl``,
``lock_kind``) and overrides only what differs: how a session gets its timeouts,
what to pass a new connection so it is born with them, and who holds a lock the
run waited for. Runbook code asks ``dialect_for(connection)`` instead of branching
on ``dialect.name``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection

from softbee.runbook.compat import dbapi_connection
from softbee.runbook.errors import ParameterError


def check_timeouts(lock_timeout_ms: int | None, statement_timeout_ms: int | None) -> None:
    """Refuse a timeout that is not a whole number of milliseconds, 0 or more (None: leave alone)."""
    for name, value in (("lock_timeout_ms", lock_timeout_ms),
                        ("statement_timeout_ms", statement_timeout_ms)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ParameterError(f"{name} must be a whole number of milliseconds, not {value!r}")


class Dialect:
    """A database the runbooks know nothing special about: no lock, no timeouts."""

    name: ClassVar[str] = "default"
    transactional_ddl: ClassVar[bool] = False
    lock_kind: ClassVar[str] = "none"

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        """Give the session its lock and statement timeouts (None leaves a setting alone).

        The caller commits: a ``SET`` rolled back with its transaction would not hold.
        """

    def reset_timeouts(self, connection: Connection) -> None:
        """Put the session's timeouts back to the server's settings."""

    def connect_params(
        self, driver: str, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> dict[str, Any]:
        """Extra DBAPI connect arguments so a new session is born with the timeouts."""
        return {}

    def file_holders(self, url: URL) -> list[dict[str, Any]]:
        """Processes that have the database file open (only file databases have one)."""
        return []


class PostgreSQL(Dialect):
    """Transactional DDL, a session-level advisory lock, ``lock_timeout``/``statement_timeout``."""

    name = "postgresql"
    transactional_ddl = True
    lock_kind = "pg_advisory_lock"

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        # None leaves the server's (or the DBA's per-database) setting alone; 0 means no limit.
        if lock_timeout_ms is not None:
            connection.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
        if statement_timeout_ms is not None:
            connection.exec_driver_sql(f"SET statement_timeout = {int(statement_timeout_ms)}")

    def reset_timeouts(self, connection: Connection) -> None:
        connection.exec_driver_sql("RESET lock_timeout")
        connection.exec_driver_sql("RESET statement_timeout")

    def connect_params(
        self, driver: str, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> dict[str, Any]:
        if driver not in ("psycopg2", "psycopg"):  # asyncpg and others take no libpq options
            return {}
        options = []
        if lock_timeout_ms is not None:
            options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
        if statement_timeout_ms is not None:
            options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        return {"options": " ".join(options)} if options else {}


class SQLite(Dialect):
    """Transactional DDL (with the runbooks' BEGIN), a lock file, ``busy_timeout`` as lock timeout."""

    name = "sqlite"
    transactional_ddl = True
    lock_kind = "lock_file"
    DRIVER_DEFAULT_TIMEOUT_MS: ClassVar[int] = 5000  # pysqlite's own default busy timeout

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        # SQLite has no statement timeout; waiting for another connection's lock is busy_timeout.
        if lock_timeout_ms is not None:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")

    def reset_timeouts(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {self.DRIVER_DEFAULT_TIMEOUT_MS}")

    def connect_params(
        self, driver: str, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> dict[str, Any]:
        if driver != "pysqlite" or lock_timeout_ms is None:
            return {}
        return {"timeout": lock_timeout_ms / 1000}

    def file_holders(self, url: URL) -> list[dict[str, Any]]:
        """Processes with the database file (or its journal) open, from ``/proc``."""
        database = url.database or ""
        if not database or database == ":memory:" or not Path("/proc").is_dir():
            return []
        path = Path(database).resolve()
        names = {str(path), f"{path}-journal", f"{path}-wal"}
        holders = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            if _opens_any(entry, names):
                pid = int(entry.name)
                holders.append({"pid": pid, "command": _command_line(entry)})
        return holders


def _opens_any(process: Path, names: set[str]) -> bool:
    try:
        return any(os.readlink(fd) in names for fd in (process / "fd").iterdir())
    except OSError:  # gone, or not ours to read
        return False


def _command_line(process: Path) -> str:
    try:
        raw = (process / "cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())[:120]


def rollback_fully(connection: Connection) -> None:
    """Roll back whatever is open, even a transaction a failed ``COMMIT`` left behind.

    After SQLite refuses a ``COMMIT`` (``database is locked``) the transaction is still open
    in the driver while SQLAlchemy considers it gone: roll the driver back too.
    """
    connection.rollback()
    raw = dbapi_connection(connection)
    if getattr(raw, "in_transaction", False):
        raw.rollback()


DIALECTS: dict[str, Dialect] = {d.name: d for d in (PostgreSQL(), SQLite())}
DEFAULT = Dialect()


def dialect_named(name: str) -> Dialect:
    """The facts for a dialect name (``postgresql``, ``sqlite``...); unknown ones get no guards."""
    return DIALECTS.get(name, DEFAULT)


def dialect_for(connection: Connection) -> Dialect:
    """The facts for the database ``connection`` talks to."""
    return dialect_named(connection.dialect.name)
