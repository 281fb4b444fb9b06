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

from softbee.runbook.errors import DatabaseError, first_line
from softbee.runbook.online.record import in_progress
from softbee.runbook.project import Project
from softbee.runbook.review.state import current_revisions
from softbee.runbook.util.error_codes import error_code
from softbee.urls import redact_text

_CONSEQUENCES = (sa.exc.PendingRollbackError, sa.exc.ResourceClosedError)
# What reading a lost run's database can fail with: the old session's errors, or a new one's
# "cannot connect" (Project.connect's DatabaseError) while the server restarts.
READ_FAILURES = (sa.exc.DBAPIError, sa.exc.PendingRollbackError, DatabaseError)


def root_cause(error: BaseException) -> BaseException:
    """``error``, or the database error it was raised while handling, when it is only a consequence."""
    seen: set[int] = set()
    current: BaseException | None = error
    while isinstance(current, _CONSEQUENCES) and id(current) not in seen:
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return current if isinstance(current, sa.exc.DBAPIError) else error


# SQLSTATEs of a server going away: admin_shutdown (a fast restart, pg_terminate_backend),
# crash_shutdown (an immediate one), cannot_connect_now (starting up, shutting down).
_GONE_CODES = {"57P01", "57P02", "57P03"}
# What libpq says, with no SQLSTATE, when it cannot reach the server or the server went away.
_GONE_TEXT = ("connection to server", "could not connect to server", "server closed the connection",
              "connection already closed", "connection refused", "the database system is",
              "ssl syscall error", "no connection to the server", "terminating connection")


def lost_connection(error: BaseException) -> bool:
    """True when ``error`` (or the error behind it) is the database connection going away.

    That is an invalidated connection, SQLAlchemy's consequence of one, a server shutting
    down or starting up (SQLSTATE 57P01-57P03, class 08), or a connection that could not be
    made or was closed under the driver (libpq's own words, which carry no SQLSTATE).
    """
    cause = root_cause(error)
    if getattr(cause, "connection_invalidated", False) or isinstance(
            cause, sa.exc.PendingRollbackError):
        return True
    code = error_code(cause)
    if isinstance(code, str) and (code in _GONE_CODES or code.startswith("08")):
        return True
    if isinstance(cause, (sa.exc.OperationalError, sa.exc.InterfaceError)) and code is None:
        text = str(getattr(cause, "orig", None) or cause).lower()
        return any(words in text for words in _GONE_TEXT)
    return False


READ_WAIT_S = 30.0  # how long fresh sessions are tried, to read where a lost run left the database
READ_PAUSE_S = 1.0  # between two tries (a restarting server takes a few seconds)


def where_recorded(project: Project, connection: Connection) -> tuple[tuple[str, ...], list[str]]:
    """The revision ``alembic_version`` records and the phases in progress, read on ``connection``.

    When that connection is gone (its session terminated, its server restarted), they are read
    on a fresh session instead, tried every READ_PAUSE_S for at most READ_WAIT_S (a restart
    takes seconds): what the run committed is the database's record, not the dead session's.
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
    deadline = time.monotonic() + READ_WAIT_S
    while True:
        try:
            with project.connect() as fresh:
                return read(fresh)
        except (sa.exc.DBAPIError, DatabaseError) as exc:  # not up yet, or a dead pooled session
            failure = exc
        left = deadline - time.monotonic()
        if left <= 0:
            raise failure
        time.sleep(min(READ_PAUSE_S, left))


def unreadable_outcome(error: BaseException, revision: str, earlier_committed: bool
                       ) -> tuple[str, str]:
    """The outcome and advice of a failed ``revision`` when where the database is cannot be read.

    Never "rolled back": what the run committed before the connection went is unknown here.
    """
    reason = redact_text(first_line(root_cause(error)))
    before = ", and the revisions before it" if earlier_committed else ""
    return (f"where the database is now could not be read for {READ_WAIT_S:g} s ({reason}): "
            f"{revision}'s open transaction is gone with its connection, what its phases{before} "
            "committed stays (softbee-runbook status shows where it is)",
            "run upgrade_downgrade again once the database is back: it starts from what is "
            "recorded")


def outcome_after_loss(project: Project, connection: Connection, start: str | None,
                       error: BaseException) -> tuple[str, str]:
    """The outcome and advice of a run whose connection was lost outside a revision's own guard.

    Read from the database (:func:`where_recorded`), so a run that committed revisions or
    phases before its connection went never says it was rolled back to where it started.
    """
    try:
        recorded, phases = where_recorded(project, connection)
    except READ_FAILURES as exc:
        reason = redact_text(first_line(root_cause(exc)))
        return (f"where the database is now could not be read for {READ_WAIT_S:g} s ({reason}): "
                "what the run committed stays (softbee-runbook status shows where it is)",
                "run upgrade_downgrade again once the database is back: it starts from what "
                "is recorded")
    again = "run upgrade_downgrade again once the database is back"
    at = ", ".join(recorded) or "base"
    if phases:
        return (f"the database is at revision {at}, {'; '.join(phases)}: what those phases "
                "committed stays, a re-run resumes there", again)
    if at == (start or "base"):
        return f"rolled back, database still at {at}", again
    return f"the database is at revision {at} (committed)", f"{again}: it goes on from there"


def where_after_stop(app: str, migrations_dir: str, database_url: str | None) -> str:
    """Where a stopped run (SIGTERM, Ctrl-C) left its database, read from it: a clause for its line."""
    from softbee.runbook.project import load_project

    try:
        project = load_project(app, migrations_dir, database_url)
        with project.connect() as conn:
            recorded, phases = where_recorded(project, conn)
    except Exception as exc:  # noqa: BLE001 - the run's line must still be printed
        return (f"where the database is could not be read ({redact_text(first_line(exc))}): run "
                "the runbook again once it can be reached, it goes on from what is recorded")
    now = f"the database is at revision {', '.join(recorded) or 'base'} (committed)"
    if phases:
        now += "; " + "; ".join(phases)
    return (f"{now}, what the run had not committed went with its session: run it again to "
            "resume from there")
