"""What differs between databases, in one place: one small object per dialect.

Like Alembic's ``ddl/`` impls, each class declares facts (``transactional_ddl``,
``lock_kind``) and overrides only what differs: how a session gets its timeouts,
what to pass a new connection so it is born with them, and who holds a lock the
run waited for. Runbook code asks ``dialect_for(connection)`` instead of branching
on ``dialect.name``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection

from softbee.runbook.errors import ParameterError
from softbee.runbook.util.compat import dbapi_connection
from softbee.runbook.util.error_codes import (  # noqa: F401 - re-exported
    DEADLOCK_DETECTED,
    LOCK_NOT_AVAILABLE,
    QUERY_CANCELED,
    UNDEFINED_TABLE,
    error_code,
)
from softbee.runbook.util.options import (  # its old home: re-exported
    DEFAULT_LOCK_TIMEOUT_MS as DEFAULT_LOCK_TIMEOUT_MS,
)


def check_timeouts(lock_timeout_ms: int | None, statement_timeout_ms: int | None) -> None:
    """Refuse a timeout that is not a whole number of milliseconds, 0 or more (None: leave alone)."""
    for name, value in (("lock_timeout_ms", lock_timeout_ms),
                        ("statement_timeout_ms", statement_timeout_ms)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ParameterError(f"{name} must be a whole number of milliseconds, not {value!r}")


@dataclass(frozen=True)
class TimeoutReached:
    """A statement stopped by one of the run's timeouts: which kind, and the setting as set."""

    kind: str  # "lock" or "statement"
    setting: str  # how the message names it, e.g. "lock_timeout (300 ms)"


# What to check when a connection is refused: the same words for every driver.
CHECK_THE_URL = "check DATABASE_URL (or database_url), the server, and the credentials"
WRONG_CREDENTIALS = "the user or password in DATABASE_URL is wrong"
NO_DATABASE = "create the database or fix its name in DATABASE_URL"
SERVER_UNREACHABLE = "is the server running, and are host and port right?"

class Dialect:
    """A database the runbooks know nothing special about: no lock, no timeouts."""

    name: ClassVar[str] = "default"
    label: ClassVar[str] = "other databases"
    transactional_ddl: ClassVar[bool] = False
    # Online revisions (online.run_phases) run in phases outside the transaction (phases.py).
    online_phases: ClassVar[bool] = False
    lock_kind: ClassVar[str] = "none"
    # How a statement that loses its lock is tried again (engine/retries.py): RETRIES' keys.
    lock_retry: ClassVar[str] = "none"
    lock_timeout_setting: ClassVar[str] = "none"
    statement_timeout_setting: ClassVar[str] = "none"
    # The dialect a review renders the pending SQL in and lints (squawk reads PostgreSQL only).
    # PostgreSQL's rendering stands in where the database's own cannot be rendered offline
    # (SQLite's batch migrations reflect the table) or is not known to the checks.
    review_sql: ClassVar[str] = "postgresql"

    def timeout_reached(
        self, error: BaseException, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> TimeoutReached | None:
        """The timeout that stopped ``error``'s statement, or None when it was something else."""
        return None

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

    def connection_hint(self, error: BaseException) -> str:
        """What to check when the database refused a connection with ``error``."""
        return CHECK_THE_URL


class PostgreSQL(Dialect):
    """Transactional DDL, a session-level advisory lock, ``lock_timeout``/``statement_timeout``."""

    name = "postgresql"
    label = "PostgreSQL"
    transactional_ddl = True
    online_phases = True
    lock_kind = "pg_advisory_lock"
    lock_retry = "savepoint"
    lock_timeout_setting = "`lock_timeout`"
    statement_timeout_setting = "`statement_timeout`"

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        # None leaves the server's (or the DBA's per-database) setting alone; 0 means no limit.
        if lock_timeout_ms is not None:
            connection.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
        if statement_timeout_ms is not None:
            connection.exec_driver_sql(f"SET statement_timeout = {int(statement_timeout_ms)}")

    def reset_timeouts(self, connection: Connection) -> None:
        connection.exec_driver_sql("RESET statement_timeout")  # first: nothing after it times out
        connection.exec_driver_sql("RESET lock_timeout")

    def timeout_reached(
        self, error: BaseException, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> TimeoutReached | None:
        code = error_code(error)
        if code == LOCK_NOT_AVAILABLE:
            return TimeoutReached("lock", f"lock_timeout ({lock_timeout_ms} ms)")
        if code == QUERY_CANCELED:
            return TimeoutReached("statement", f"statement_timeout ({statement_timeout_ms} ms)")
        return None

    def connection_hint(self, error: BaseException) -> str:
        # libpq fails before the server answers, so without a SQLSTATE: its text is the same
        # under psycopg2 and psycopg 3, but for host names, which psycopg 3 resolves itself.
        reason = str(getattr(error, "orig", None) or error)
        if "password authentication failed" in reason or re.search(r'role ".*" does not exist', reason):
            return WRONG_CREDENTIALS
        if re.search(r'database ".*" does not exist', reason):
            return NO_DATABASE
        if any(text in reason for text in (
                "Connection refused", "could not translate host", "failed to resolve host")):
            return SERVER_UNREACHABLE
        return CHECK_THE_URL

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
    label = "SQLite"
    transactional_ddl = True
    lock_kind = "lock_file"
    lock_timeout_setting = "busy timeout"
    DRIVER_DEFAULT_TIMEOUT_MS: ClassVar[int] = 5000  # pysqlite's own default busy timeout

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        # SQLite has no statement timeout; waiting for another connection's lock is busy_timeout.
        if lock_timeout_ms is not None:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")

    def reset_timeouts(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {self.DRIVER_DEFAULT_TIMEOUT_MS}")

    def timeout_reached(
        self, error: BaseException, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> TimeoutReached | None:
        orig = getattr(error, "orig", None) or error
        if "database is locked" in str(orig):
            return TimeoutReached("lock", f"lock timeout ({lock_timeout_ms} ms)")
        return None

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


class MySQL(Dialect):
    """MySQL and MariaDB: every DDL statement commits on its own, so no run is atomic.

    One migration at a time is ``GET_LOCK``; waiting for a table's metadata lock is
    ``lock_wait_timeout`` (and row locks ``innodb_lock_wait_timeout``), both whole seconds;
    the statement timeout is MariaDB's ``max_statement_time`` (seconds) or MySQL's
    ``max_execution_time`` (milliseconds, SELECT only).
    """

    name = "mysql"
    label = "MySQL, MariaDB"
    transactional_ddl = False
    lock_kind = "get_lock"
    lock_retry = "statement"
    lock_timeout_setting = "`lock_wait_timeout` (whole seconds)"
    statement_timeout_setting = "`max_statement_time` (MariaDB), `max_execution_time` (MySQL, SELECT only)"
    review_sql = "mysql"  # what will run is MySQL's SQL (CHANGE, MODIFY, concat()...)
    LOCK_WAIT_TIMEOUT: ClassVar[int] = 1205  # lock_wait_timeout and innodb_lock_wait_timeout
    STATEMENT_TIMEOUTS: ClassVar[dict[int, str]] = {
        1969: "max_statement_time",  # MariaDB
        3024: "max_execution_time",  # MySQL
    }
    CONNECTION_HINTS: ClassVar[dict[int, str]] = {
        1045: WRONG_CREDENTIALS,  # access denied
        1698: WRONG_CREDENTIALS,  # access denied, no password given
        1049: NO_DATABASE,  # unknown database
        2002: SERVER_UNREACHABLE,  # can't connect (mysqlclient, and sockets)
        2003: SERVER_UNREACHABLE,  # can't connect over TCP (PyMySQL)
        2005: SERVER_UNREACHABLE,  # unknown host
    }

    def set_timeouts(
        self, connection: Connection, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> None:
        if lock_timeout_ms:  # 0 (no limit) keeps the server's setting
            seconds = _whole_seconds(lock_timeout_ms)
            connection.exec_driver_sql(
                f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")
        if statement_timeout_ms is not None:
            if is_mariadb(connection):
                connection.exec_driver_sql(
                    f"SET SESSION max_statement_time = {int(statement_timeout_ms) / 1000:.3f}")
            else:
                connection.exec_driver_sql(
                    f"SET SESSION max_execution_time = {int(statement_timeout_ms)}")

    def reset_timeouts(self, connection: Connection) -> None:
        connection.exec_driver_sql(
            "SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT")
        statement = "max_statement_time" if is_mariadb(connection) else "max_execution_time"
        connection.exec_driver_sql(f"SET SESSION {statement} = DEFAULT")

    def timeout_reached(
        self, error: BaseException, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> TimeoutReached | None:
        code = error_code(error)
        if code == self.LOCK_WAIT_TIMEOUT:
            waited = f"{_whole_seconds(lock_timeout_ms)} s" if lock_timeout_ms else "the server's"
            return TimeoutReached("lock", f"lock_wait_timeout ({waited})")
        if code in self.STATEMENT_TIMEOUTS:
            limit = f"{statement_timeout_ms / 1000:g} s" if statement_timeout_ms else "the server's"
            return TimeoutReached("statement", f"{self.STATEMENT_TIMEOUTS[code]} ({limit})")
        return None

    def connection_hint(self, error: BaseException) -> str:
        # By number: mysqlclient says "Can't connect to server on 'host' (115)" where PyMySQL
        # says "... Connection refused".
        return self.CONNECTION_HINTS.get(error_code(error), CHECK_THE_URL)  # type: ignore[arg-type]

    def connect_params(
        self, driver: str, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> dict[str, Any]:
        if driver not in ("pymysql", "mysqldb") or not lock_timeout_ms:
            return {}
        seconds = _whole_seconds(lock_timeout_ms)
        return {"init_command": f"SET SESSION lock_wait_timeout = {seconds}, "
                                f"innodb_lock_wait_timeout = {seconds}"}


def is_mariadb(connection: Connection) -> bool:
    """True when a MySQL-dialect connection talks to MariaDB."""
    return bool(getattr(connection.dialect, "is_mariadb", False))


def _whole_seconds(milliseconds: int) -> int:
    """MySQL's lock timeouts are whole seconds: round up, and never 0 (which would not wait at all)."""
    return max(1, -(-int(milliseconds) // 1000))


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
    in the driver while SQLAlchemy considers it gone: roll the driver back too. A connection
    that was lost (invalidated) has no transaction left to roll back, and is not reconnected:
    asking it for its driver connection would open a new session, which fails (a new error in
    place of the real one) while the server restarts.
    """
    connection.rollback()
    if connection.invalidated:
        return
    raw = dbapi_connection(connection)
    if getattr(raw, "in_transaction", False):
        raw.rollback()


DIALECTS_IN_ORDER: tuple[Dialect, ...] = (PostgreSQL(), SQLite(), MySQL())
DIALECTS: dict[str, Dialect] = {d.name: d for d in DIALECTS_IN_ORDER}
DIALECTS["mariadb"] = DIALECTS["mysql"]
DEFAULT = Dialect()


def dialect_named(name: str) -> Dialect:
    """The facts for a dialect name (``postgresql``, ``sqlite``...); unknown ones get no guards."""
    return DIALECTS.get(name, DEFAULT)


def dialect_for(connection: Connection) -> Dialect:
    """The facts for the database ``connection`` talks to."""
    return dialect_named(connection.dialect.name)
