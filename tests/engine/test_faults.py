"""Faults beyond a lost lock: the migration's session terminated mid-backfill (PostgreSQL).

``pg_terminate_backend`` of the run's own session, from another connection, after the first
batch: the run's one line says the connection was lost (never SQLAlchemy's
PendingRollbackError), where the database is (its revision and recorded phase) and that a
re-run resumes; the re-run finishes with every row filled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.faults import lost_connection, root_cause, where_recorded
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import DatabaseError, MigrationFailed
from softbee.runbook.project import Project, load_project
from tests.helpers import FULL_NAME, HIVE_HEALTH, add_users, project_at, revision_of


@pytest.mark.postgres
def test_a_terminated_session_mid_backfill_is_named_as_such_and_a_rerun_finishes(
    postgres_url: str,
) -> None:
    project_at(postgres_url, HIVE_HEALTH, rows=40)
    add_users(postgres_url, 2500)
    killer = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    killed: list[bool] = []

    def progress(line: str) -> None:
        if " rows (" in line and not killed:
            with killer.connect() as conn:
                killed.extend(conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name LIKE 'softbee-runbook%'")).scalars())

    try:
        with pytest.raises(MigrationFailed) as caught:
            run_migration(load_project(database_url=postgres_url), "upgrade", FULL_NAME,
                          progress=progress)
    finally:
        killer.dispose()
    message = str(caught.value)
    assert any(killed), f"no session of the run was found to terminate: {message}"
    assert "\n" not in message and "PendingRollbackError" not in message, message
    assert "the connection to the database was lost" in message, message
    assert f"revision {HIVE_HEALTH}" in message and "phase 2 of 3" in message, message
    assert "resume" in message, message
    run_migration(load_project(database_url=postgres_url), "upgrade", FULL_NAME)
    assert revision_of(postgres_url) == FULL_NAME
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM users WHERE full_name IS NULL")).scalar_one() == 0
    engine.dispose()


def test_a_pending_rollback_error_stands_for_the_error_it_was_raised_after() -> None:
    first = sa.exc.OperationalError("SELECT 1", {}, Exception("terminating connection"),
                                    connection_invalidated=True)
    try:
        try:
            raise first
        except sa.exc.OperationalError:
            raise sa.exc.PendingRollbackError("Can't reconnect until invalid transaction is "
                                              "rolled back") from None
    except sa.exc.PendingRollbackError as second:
        second.__context__ = first
        assert root_cause(second) is first
        assert lost_connection(second)
    assert root_cause(ValueError("x")).args == ("x",) and not lost_connection(ValueError("x"))


@contextmanager
def _terminated_session(project: Project, postgres_url: str) -> Iterator[sa.Connection]:
    """A session of ``project`` that another session has just ended with pg_terminate_backend."""
    killer = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with project.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            yield conn
    finally:
        killer.dispose()


@pytest.mark.postgres
def test_where_a_run_left_the_database_is_read_on_a_fresh_session_when_its_own_is_gone(
    postgres_url: str,
) -> None:
    project = project_at(postgres_url, HIVE_HEALTH)
    with _terminated_session(project, postgres_url) as conn:
        recorded, phases = where_recorded(project, conn)
    assert recorded == (HIVE_HEALTH,) and phases == []


def _connect_failure(text: str) -> sa.exc.OperationalError:
    import psycopg2

    return sa.exc.OperationalError("connect", {}, psycopg2.OperationalError(text))


def test_a_server_going_away_or_not_taking_connections_is_a_lost_connection() -> None:
    """A restart shows as a connect failure with no SQLSTATE, or as 57P01-57P03 (fault matrix)."""
    assert lost_connection(_connect_failure(
        'connection to server at "127.0.0.1", port 5434 failed: FATAL:  the database system is '
        "shutting down"))
    assert lost_connection(_connect_failure(
        'connection to server at "127.0.0.1", port 5434 failed: Connection refused'))

    class Shutdown(Exception):
        pgcode = "57P01"

    assert lost_connection(sa.exc.OperationalError("SELECT 1", {}, Shutdown("terminating")))

    class Syntax(Exception):
        pgcode = "42601"

    assert not lost_connection(sa.exc.ProgrammingError("SELEC", {}, Syntax("syntax error")))


class _Flaky:
    """A project whose fresh sessions fail ``failures`` times (a server restarting), then work."""

    def __init__(self, project: object, failures: int) -> None:
        self.project, self.failures, self.tries = project, failures, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.project, name)

    def connect(self) -> object:
        self.tries += 1
        if self.tries <= self.failures:  # as Project.connect says it: DatabaseError
            raise DatabaseError("cannot connect to postgresql://127.0.0.1/x: FATAL:  the "
                                "database system is starting up") from _connect_failure("x")
        return self.project.connect()  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_where_a_run_left_the_database_is_read_once_a_restarting_server_is_back(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart takes seconds: fresh sessions are tried until READ_WAIT_S, not three times."""
    from softbee.runbook.engine import faults

    monkeypatch.setattr(faults, "READ_PAUSE_S", 0.01)
    project = project_at(postgres_url, HIVE_HEALTH)
    flaky = _Flaky(project, failures=6)
    with _terminated_session(project, postgres_url) as conn:
        recorded, _phases = where_recorded(flaky, conn)  # type: ignore[arg-type]
        monkeypatch.setattr(faults, "READ_WAIT_S", 0.3)
        never = _Flaky(project, failures=10_000)
        began = __import__("time").monotonic()
        with pytest.raises(DatabaseError):
            where_recorded(never, conn)  # type: ignore[arg-type]
        waited = __import__("time").monotonic() - began
    assert recorded == (HIVE_HEALTH,) and flaky.tries == 7
    assert 0.3 <= waited < 3, waited  # bounded by READ_WAIT_S


def test_a_failed_revision_whose_database_cannot_be_read_is_never_called_rolled_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the read's own connect error escaped and the run said "rolled back, database still
    at <start>" (after a fast restart during 8b7d2f4c9e08's DDL, with two revisions committed)."""
    from softbee.runbook.engine import online_run

    def unreachable(*_args: object) -> None:
        raise _connect_failure('connection to server at "127.0.0.1" failed: FATAL:  the database '
                               "system is shutting down")

    def cannot_connect(*_args: object) -> None:
        raise DatabaseError("cannot connect to postgresql://127.0.0.1/x: the database system is "
                            "shutting down (check DATABASE_URL)")

    for failing in (unreachable, cannot_connect):
        monkeypatch.setattr(online_run, "where_recorded", failing)
        outcome, advice = online_run._outcome(None, None, "8b7d2f4c9e08", True)  # type: ignore[arg-type]
        assert "rolled back" not in outcome and "could not be read" in outcome, outcome
        assert "the database system is shutting down" in outcome, outcome
        assert advice is not None and "again" in advice, advice


@pytest.mark.postgres
def test_a_connection_lost_outside_a_revision_reads_where_the_database_is(
    postgres_url: str,
) -> None:
    """The guard around the whole run: never "still at <start>" when the database moved on."""
    from softbee.runbook.engine.faults import outcome_after_loss

    project = project_at(postgres_url, HIVE_HEALTH)
    with _terminated_session(project, postgres_url) as conn:
        moved, advice = outcome_after_loss(project, conn, "3c2e7a9d4f03", ValueError())
        stayed, _ = outcome_after_loss(project, conn, HIVE_HEALTH, ValueError())
    assert moved == f"the database is at revision {HIVE_HEALTH} (committed)", moved
    assert "again" in advice and "rolled back" not in moved
    assert stayed == f"rolled back, database still at {HIVE_HEALTH}", stayed


def test_a_lost_connection_whose_driver_error_was_caught_on_the_way_says_no_internals(
    tmp_path: Path,
) -> None:
    """A check swallowed the driver's error: only SQLAlchemy's "Can't reconnect ... rolled back"
    reached the run. Its line says the connection was lost, never that text (the fault matrix's
    restart during a backfill's first batch)."""
    from softbee.runbook.engine.migrate import _explain
    from softbee.runbook.review.plan import Plan
    from softbee.runbook.util.options import RunOptions

    project = load_project(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    alone = sa.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled "
                                        "back. Please rollback() fully before proceeding")
    plan = Plan("upgrade", HIVE_HEALTH, FULL_NAME, [])
    message = str(_explain(project, alone, plan, [], RunOptions(), "the outcome read back"))
    assert "the connection to the database was lost" in message, message
    assert "reconnect" not in message and "rolled back" not in message, message
