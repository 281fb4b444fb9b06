"""The one connection factory: every session the runbooks open, bounded by the run's timeouts.

:func:`open_session` is the only place a session is opened (``Project.connect`` calls it;
a test reads the library's source to keep it so). It gives each session the run's lock and
statement timeouts with the dialect's own ``set_timeouts``, on every checkout. A timeout on
any of a project's sessions is turned by :func:`explain_timeouts` into one line naming the
session that held the lock (:func:`describe_timeout`), except on a session whose caller
explains it itself (:func:`caller_explains_timeouts`: a migration says where it left the
database, and the online phases retry on the driver's error).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from softbee.runbook.errors import SessionTimeout
from softbee.runbook.project.dialects import (
    TimeoutReached,
    dialect_for,
    dialect_named,
)
from softbee.runbook.util.compat import dbapi_connection
from softbee.runbook.util.options import Timeouts as Timeouts  # its old home: re-exported
from softbee.runbook.util.sqltext import table_names
from softbee.urls import redact_text


class SessionOwner(Protocol):
    """What this module reads of a :class:`~softbee.runbook.project.Project` (which imports it)."""

    url: URL
    engine: Engine

    @property
    def dialect(self) -> str:
        """The database's kind: postgresql, mysql, mariadb or sqlite."""

    def connect(self) -> Connection:
        """A session with the run's timeouts."""


def open_session(engine: Engine, timeouts: Timeouts) -> Connection:
    """The one place a runbook session is opened: connected, then given the run's timeouts.

    Applied on every checkout, not only when the driver connects: a pooled session a run
    reset to the server's settings is bounded again before anyone reads through it.
    """
    connection = engine.connect()
    try:
        dialect_for(connection).set_timeouts(
            connection, timeouts.lock_timeout_ms, timeouts.statement_timeout_ms)
        connection.commit()  # a SET rolled back with its transaction would not hold
    except BaseException:
        connection.close()
        raise
    record_session_timeouts(connection, timeouts)
    return connection


_TIMEOUTS_KEY = "softbee_runbook_timeouts"


def record_session_timeouts(connection: Connection, timeouts: Timeouts) -> None:
    """Note the timeouts ``connection``'s session has now (what a timeout message names)."""
    connection.info[_TIMEOUTS_KEY] = timeouts


def session_timeouts_of(connection: Connection) -> Timeouts:
    """The timeouts ``connection``'s session was last given (none noted: the server's)."""
    return connection.info.get(_TIMEOUTS_KEY) or Timeouts(None, None)


# Connections whose caller explains their timeouts itself (a migration says where the
# database is left); and whether a timeout is being explained (no explaining the explainer).
_CALLER_EXPLAINS: ContextVar[tuple[Connection, ...]] = ContextVar(
    "softbee_runbook_caller_explains", default=())
_EXPLAINING: ContextVar[bool] = ContextVar("softbee_runbook_explaining", default=False)


@contextmanager
def caller_explains_timeouts(connection: Connection) -> Iterator[None]:
    """In the block a timeout on ``connection`` stays the driver's error, for the caller to explain."""
    token = _CALLER_EXPLAINS.set((*_CALLER_EXPLAINS.get(), connection))
    try:
        yield
    finally:
        _CALLER_EXPLAINS.reset(token)


def explain_timeouts(project: SessionOwner) -> None:
    """Make a timeout on any of ``project``'s sessions one line naming who held the lock.

    PostgreSQL's "canceling statement due to lock timeout" does not say who held it; the
    sessions that do are read from another session, and the statement is stopped with a
    :class:`~softbee.runbook.errors.SessionTimeout` naming them. Sessions whose caller
    explains their timeouts (:func:`caller_explains_timeouts`) keep the driver's error.
    """
    engine = project.engine
    previous = getattr(engine, "_softbee_explainer", None)
    if previous is not None:
        sa.event.remove(engine, "handle_error", previous)

    def explain(context: Any) -> None:
        connection = context.connection
        if connection is None or _EXPLAINING.get() or any(
                connection is c for c in _CALLER_EXPLAINS.get()):
            return
        has = session_timeouts_of(connection)
        timeout = dialect_named(project.dialect).timeout_reached(
            context.sqlalchemy_exception, has.lock_timeout_ms, has.statement_timeout_ms)
        if timeout is None:
            return
        statement = " ".join(str(context.statement or "").split())
        token = _EXPLAINING.set(True)
        try:
            thread_id = getattr(dbapi_connection(connection), "thread_id", None)  # MySQL drivers
            message = describe_timeout(project, timeout, statement,
                                       thread_id() if callable(thread_id) else None)
        except Exception:  # noqa: BLE001 - no one to name: the driver's own error stands
            return
        finally:
            _EXPLAINING.reset(token)
        raise SessionTimeout(message)

    sa.event.listen(engine, "handle_error", explain)
    engine._softbee_explainer = explain  # type: ignore[attr-defined]


# -- who holds what a session waited for ---------------------------------------------


def blockers_of(
    project: SessionOwner, statement: str, waiting: int | None = None
) -> list[dict[str, Any]]:
    """Sessions holding locks on the tables ``statement`` names (looked up from a new connection).

    When ``statement`` names no table that another session holds (a catalog query reflecting
    the schema waits on the tables it describes), the sessions holding an ACCESS EXCLUSIVE
    lock in this database are listed: the only lock a read waits for.

    MySQL and MariaDB do not say who holds a metadata lock (without performance_schema or the
    METADATA_LOCK_INFO plugin): there the sessions of this database with an open transaction,
    the ones that can hold one, are listed (:func:`mysql_open_transactions`), but for the
    session that waited (``waiting``, its connection id, when known).
    """
    if dialect_named(project.dialect).lock_kind == "get_lock":
        return mysql_open_transactions(project, waiting)
    if project.dialect != "postgresql":
        return []
    tables = table_names(statement)
    select = ("SELECT DISTINCT l.pid, c.relname, l.mode, a.application_name, "
              "left(a.query, 120) AS query, a.state "
              "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
              "JOIN pg_stat_activity a ON a.pid = l.pid "
              "WHERE l.granted AND l.pid <> pg_backend_pid() AND l.pid <> :waiting AND ")
    besides = {"waiting": -1 if waiting is None else waiting}  # the session that waited: not its own
    with project.connect() as conn:
        rows = [dict(row) for row in conn.execute(
            sa.text(select + "c.relname = ANY(:tables)"), {"tables": tables, **besides}).mappings()
        ] if tables else []
        if not rows:
            rows = [dict(row) for row in conn.execute(sa.text(
                select + "l.mode = 'AccessExclusiveLock' AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY l.pid, c.relname"), besides).mappings()]
        return rows


def mysql_open_transactions(project: SessionOwner, besides: int | None = None) -> list[dict[str, Any]]:
    """Other sessions of this MySQL/MariaDB database with an open transaction, oldest first."""
    with project.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.ID AS pid, p.USER AS user, p.HOST AS client, p.COMMAND AS command, "
            "LEFT(p.INFO, 120) AS query, t.trx_started AS since "
            "FROM information_schema.INNODB_TRX t "
            "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            "WHERE p.ID <> CONNECTION_ID() AND p.ID <> :besides AND p.DB = DATABASE() "
            "ORDER BY t.trx_started LIMIT 5"), {"besides": -1 if besides is None else besides}
        ).mappings()
        return [dict(row) for row in rows]


def describe_blockers(project: SessionOwner, statement: str, waiting: int | None = None) -> str:
    """One phrase naming the sessions that hold what ``statement`` waited for (not ``waiting``)."""
    blockers = blockers_of(project, statement, waiting)
    if dialect_named(project.dialect).lock_kind == "get_lock":
        return "; ".join(
            f"pid {b['pid']} (user {b['user']}, client {b['client']}, "
            f"{'idle' if b['command'] == 'Sleep' else b['command']}, transaction open since "
            f"{b['since']}" + (f", query {b['query']!r}" if b["query"] else "") + ")"
            for b in blockers
        ) or "a session that has since let go (SHOW PROCESSLIST lists the sessions)"
    return "; ".join(
        f"pid {b['pid']} ({b['application_name'] or 'no application name'}, {b['mode']} on "
        f"{b['relname']}, state {b['state']}, query {b['query']!r})" for b in blockers
    ) or "a session that has since let go"


def describe_file_holders(project: SessionOwner) -> str:
    """The processes other than this one that hold the SQLite file open, as one phrase."""
    holders = [h for h in dialect_named(project.dialect).file_holders(project.url)
               if h["pid"] != os.getpid()]
    if not holders:
        return "another connection of this process"
    return "; ".join(f"pid {h['pid']} ({h['command']})" for h in holders)


def describe_timeout(
    project: SessionOwner, timeout: TimeoutReached, statement: str, waiting: int | None = None
) -> str:
    """One line for a session of the run stopped by a timeout: what waited, on whom, what to do.

    ``waiting`` is the stopped session's connection id where the driver tells it (MySQL).
    """
    catalog = "pg_catalog." in statement or "information_schema." in statement.lower()
    shown = ("reading the schema" if catalog else repr(redact_text(
        statement if len(statement) <= 100 else statement[:97] + "...")))
    if timeout.kind == "statement":
        return (f"{timeout.setting} reached by {shown}: the run stopped there; raise "
                "statement_timeout_ms (or count with count_mode='estimate')")
    if project.dialect == "sqlite":
        return (f"{timeout.setting} reached: the SQLite file is locked by "
                f"{describe_file_holders(project)}; the run stopped there: retry when that "
                "process lets go of it, or raise lock_timeout_ms")
    return (f"{timeout.setting} reached: {shown} waited for a lock held by "
            f"{describe_blockers(project, statement, waiting)}; the run stopped there: retry "
            "when that session ends, or raise lock_timeout_ms")
