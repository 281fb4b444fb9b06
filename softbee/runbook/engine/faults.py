"""What a failure was, under what SQLAlchemy made of it: the lost connection behind a PendingRollbackError.

When the migration's session is terminated (``pg_terminate_backend``) or its server goes
away, the first error is the driver's ("terminating connection due to administrator
command"); the next use of the connection raises SQLAlchemy's ``PendingRollbackError`` ("Can't
reconnect until invalid transaction is rolled back"), and that second error is the one that
reaches the run's ``except``. :func:`root_cause` finds the first; :func:`lost_connection` says
whether it was the connection that went, so the run's one line says that, not SQLAlchemy's
internals. (Issue 21, the fault matrix: this is its first piece.)
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.online.record import in_progress
from softbee.runbook.project import Project
from softbee.runbook.review.state import current_revisions

_CONSEQUENCES = (sa.exc.PendingRollbackError, sa.exc.ResourceClosedError)


def root_cause(error: BaseException) -> BaseException:
    """``error``, or the database error it was raised while handling, when it is only a consequence."""
    seen: set[int] = set()
    current: BaseException | None = error
    while isinstance(current, _CONSEQUENCES) and id(current) not in seen:
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return current if isinstance(current, sa.exc.DBAPIError) else error


def lost_connection(error: BaseException) -> bool:
    """True when ``error`` (or the error behind it) is the database connection going away."""
    cause = root_cause(error)
    return bool(getattr(cause, "connection_invalidated", False)) or isinstance(
        cause, sa.exc.PendingRollbackError)


READ_ATTEMPTS = 3  # fresh sessions tried, a second apart, to read where a lost run left the database


def where_recorded(project: Project, connection: Connection) -> tuple[tuple[str, ...], list[str]]:
    """The revision ``alembic_version`` records and the phases in progress, read on ``connection``.

    When that connection is gone (its session terminated, its server restarted), they are read
    on a fresh session instead (a few attempts, a second apart): what the run committed is the
    database's record, not the dead session's.
    """
    def read(conn: Connection) -> tuple[tuple[str, ...], list[str]]:
        recorded = tuple(current_revisions(project, conn))
        phases = in_progress(conn)
        conn.commit()
        return recorded, phases

    try:
        return read(connection)
    except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
        if not lost_connection(exc):
            raise
        failure: Exception = exc
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(1.0)
        try:
            with project.connect() as fresh:
                return read(fresh)
        except sa.exc.DBAPIError as exc:  # the pool's other sessions may be dead too
            failure = exc
    raise failure
