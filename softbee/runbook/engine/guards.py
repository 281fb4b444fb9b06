"""Guard rails: one migration at a time, timeouts, production confirmation (data loss: ``dataloss``)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.engine.dataloss import Snapshot as Snapshot  # its old home: re-exported
from softbee.runbook.engine.dataloss import find_losses as find_losses
from softbee.runbook.engine.dataloss import take_snapshot as take_snapshot
from softbee.runbook.errors import ConfirmationRequired, LockHeld, ParameterError
from softbee.runbook.project import APPLICATION_NAME, Project
from softbee.runbook.project.dialects import (
    QUERY_CANCELED,
    Dialect,
    check_timeouts,
    dialect_for,
    error_code,
    rollback_fully,
)
from softbee.runbook.project.routing import timeouts_for_new_sessions
from softbee.runbook.project.sessions import (
    Timeouts,
    record_session_timeouts,
    session_timeouts_of,
)
from softbee.runbook.review.counts import row_counts

# pg_advisory_lock(int4, int4): a fixed pair; advisory locks are per database already.
LOCK_CLASS = 0x50F7BEE
LOCK_OBJECT = 1
POLL_SECONDS = 0.2


# -- production ---------------------------------------------------------------------------


def is_production(project: Project, production: bool | None = None) -> bool:
    """True when ``production`` says so or FLASK_ENV is production (a False cannot overrule it)."""
    return bool(production) or project.environment == "production"


def require_confirmation(project: Project, confirm: str | None, production: bool | None = None) -> None:
    """Refuse to write to production unless ``confirm`` names the database."""
    if not is_production(project, production):
        return
    if confirm != project.database_name:
        got = "no confirm" if not confirm else f"confirm={confirm!r}"
        raise ConfirmationRequired(
            f"{project.safe_url} is production and {got} was given: pass "
            f"confirm={project.database_name!r} to say this is the database you mean"
        )


# -- one migration at a time -------------------------------------------------------------


def counts_under_lock(
    project: Project, count_mode: str = "exact", lock_wait_s: float = 0.0
) -> dict[str, int]:
    """Rows per table, counted holding the migration lock.

    While another run migrates, its locked tables would make the count wait (up to
    ``lock_timeout_ms``): holding the lock first makes this run fail at once instead, with
    :class:`~softbee.runbook.errors.LockHeld` naming the run that holds it.
    """
    with project.connect() as conn, migration_lock(project, conn, lock_wait_s):
        return row_counts(conn, count_mode)


@dataclass
class LockInfo:
    """Who holds the migration lock and since when."""

    kind: str
    holder: dict[str, Any] = field(default_factory=dict)


@contextmanager
def migration_lock(project: Project, connection: Connection, wait_s: float = 0.0) -> Iterator[LockInfo]:
    """Hold the database's migration lock for the block, waiting up to ``wait_s`` seconds."""
    if not math.isfinite(wait_s) or wait_s < 0:
        raise ParameterError(f"lock_wait_s must be a number of seconds, 0 or more, not {wait_s}")
    kind = dialect_for(connection).lock_kind
    if kind == "pg_advisory_lock":
        with _pg_lock(connection, wait_s) as info:
            yield info
    elif kind == "get_lock":
        with _mysql_lock(connection, wait_s) as info:
            yield info
    elif kind == "lock_file" and project.url.database not in (None, "", ":memory:"):
        # resolve(): a symlink or another spelling of the path must find the same lock
        with _file_lock(Path(str(project.url.database)).resolve(), wait_s) as info:
            yield info
    else:
        yield LockInfo(kind="none")


@contextmanager
def _pg_lock(connection: Connection, wait_s: float) -> Iterator[LockInfo]:
    deadline = time.monotonic() + wait_s
    while True:
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": LOCK_CLASS, "o": LOCK_OBJECT}
        ).scalar_one()
        connection.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            holder = pg_lock_holder(connection)
            raise LockHeld(
                f"another migration holds the lock on this database: {describe_holder(holder)}; "
                f"waited {wait_s:g}s (raise lock_wait_s to wait longer)",
                holder,
            )
        time.sleep(POLL_SECONDS)
    try:
        yield LockInfo(kind="pg_advisory_lock", holder={"pid": _pg_pid(connection)})
    finally:
        if not connection.closed:
            rollback_fully(connection)
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:c, :o)"), {"c": LOCK_CLASS, "o": LOCK_OBJECT}
            )
            connection.commit()


def _pg_pid(connection: Connection) -> int:
    pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    connection.commit()
    return int(pid)


def pg_lock_holder(connection: Connection) -> dict[str, Any]:
    """The session holding the migration advisory lock: pid, application, since when."""
    row = connection.execute(
        sa.text(
            "SELECT a.pid, a.application_name, a.usename, a.backend_start, a.client_addr "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::int8 = :c AND l.objid::int8 = :o"
        ),
        {"c": LOCK_CLASS, "o": LOCK_OBJECT},
    ).first()
    connection.commit()
    if row is None:
        return {}
    return {
        "pid": row.pid,
        "application": row.application_name,
        "user": row.usename,
        "since": row.backend_start.isoformat(timespec="seconds") if row.backend_start else None,
        "client": str(row.client_addr) if row.client_addr else "local socket",
    }


def _mysql_lock_name(connection: Connection) -> str:
    """GET_LOCK names are server-wide: one lock per database."""
    database = connection.exec_driver_sql("SELECT DATABASE()").scalar_one()
    return f"{APPLICATION_NAME}:{database}"[:64]


@contextmanager
def _mysql_lock(connection: Connection, wait_s: float) -> Iterator[LockInfo]:
    name = _mysql_lock_name(connection)
    # GET_LOCK takes fractional seconds of waiting on MariaDB and MySQL 8; 0 means do not wait.
    got = connection.execute(sa.text("SELECT GET_LOCK(:name, :wait)"),
                             {"name": name, "wait": wait_s}).scalar()
    connection.commit()
    if got != 1:
        holder = mysql_lock_holder(connection, name)
        raise LockHeld(
            f"another migration holds the lock on this database (GET_LOCK {name!r}): "
            f"{describe_holder(holder)}; waited {wait_s:g}s (raise lock_wait_s to wait longer)",
            holder,
        )
    try:
        pid = connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        connection.commit()
        yield LockInfo(kind="get_lock", holder={"pid": int(pid)})
    finally:
        if not connection.closed and not connection.invalidated:
            rollback_fully(connection)
            connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            connection.commit()


def mysql_lock_holder(connection: Connection, name: str) -> dict[str, Any]:
    """The session holding the named GET_LOCK: its connection id, user, host and since when."""
    row = connection.execute(
        sa.text("SELECT p.ID AS pid, p.USER AS user, p.HOST AS client, p.TIME AS seconds "
                "FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(:name)"),
        {"name": name},
    ).first()
    connection.commit()
    if row is None:
        return {}
    since = datetime.now(UTC).timestamp() - float(row.seconds or 0)
    return {
        "pid": int(row.pid),
        "user": row.user,
        "client": row.client,
        "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
    }


def describe_holder(holder: Mapping[str, Any]) -> str:
    """One phrase naming the lock holder."""
    if not holder:
        return "holder unknown (it may just have finished: try again)"
    parts = [f"pid {holder.get('pid')}"]
    if holder.get("application"):
        parts.append(f"application {holder['application']!r}")
    if holder.get("user"):
        parts.append(f"user {holder['user']}")
    if holder.get("client"):
        parts.append(f"client {holder['client']}")
    if holder.get("host"):
        parts.append(f"host {holder['host']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return ", ".join(parts)


@contextmanager
def _file_lock(database: Path, wait_s: float) -> Iterator[LockInfo]:
    path = database.with_name(database.name + ".runbook.lock")
    deadline = time.monotonic() + wait_s
    handle: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = _read_holder(handle.read())
                    raise LockHeld(
                        f"another migration holds the lock file {path.name}: "
                        f"{describe_holder(holder)}; waited {wait_s:g}s "
                        "(raise lock_wait_s to wait longer)",
                        holder,
                    ) from None
                time.sleep(POLL_SECONDS)
        holder = {
            "pid": os.getpid(),
            "application": APPLICATION_NAME,
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        try:
            yield LockInfo(kind="lock_file", holder=holder)
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _read_holder(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- timeouts ----------------------------------------------------------------------------


@contextmanager
def session_timeouts(connection: Connection, timeouts: Timeouts) -> Iterator[None]:
    """Give ``connection`` and every session opened in this block the lock and statement timeouts.

    The runbook's own session gets them now; any other session that opens while the block
    runs (a project's ``env.py`` building its own engine) is born with them
    (:func:`~softbee.runbook.project.routing.timeouts_for_new_sessions`), so nothing waits forever.
    Afterwards the session is given back the timeouts it had (the run's, from the factory).
    """
    lock_timeout_ms, statement_timeout_ms = timeouts.lock_timeout_ms, timeouts.statement_timeout_ms
    check_timeouts(lock_timeout_ms, statement_timeout_ms)
    dialect = dialect_for(connection)
    had = session_timeouts_of(connection)
    dialect.set_timeouts(connection, lock_timeout_ms, statement_timeout_ms)
    connection.commit()
    record_session_timeouts(connection, Timeouts(
        had.lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms,
        had.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms))
    try:
        with timeouts_for_new_sessions(timeouts):
            yield
    finally:
        if not connection.closed and not connection.invalidated:
            _reset_timeouts(connection, dialect)
            dialect.set_timeouts(connection, had.lock_timeout_ms, had.statement_timeout_ms)
            connection.commit()
            record_session_timeouts(connection, had)


def _reset_timeouts(connection: Connection, dialect: Dialect) -> None:
    """Put the session's timeouts back, statement_timeout first so nothing after it can time out.

    A statement_timeout that fires just as a statement ends leaves a cancel pending that
    PostgreSQL delivers to the session's next statement ("canceling statement due to user
    request", SQLSTATE 57014): with a short timeout that can be this reset. It is then rolled
    back and run once more; the pending cancel has been spent.
    """
    for attempt in (1, 2):
        rollback_fully(connection)
        try:
            dialect.reset_timeouts(connection)
            connection.commit()
            return
        except sa.exc.OperationalError as exc:
            if attempt == 2 or error_code(exc) != QUERY_CANCELED:
                raise
