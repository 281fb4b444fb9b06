"""Faults beyond a lost lock: the migration's session terminated mid-backfill (PostgreSQL).

``pg_terminate_backend`` of the run's own session, from another connection, after the first
batch: the run's one line says the connection was lost (never SQLAlchemy's
PendingRollbackError), where the database is (its revision and recorded phase) and that a
re-run resumes; the re-run finishes with every row filled.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.faults import lost_connection, root_cause, where_recorded
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import MigrationFailed
from softbee.runbook.project import load_project
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


@pytest.mark.postgres
def test_where_a_run_left_the_database_is_read_on_a_fresh_session_when_its_own_is_gone(
    postgres_url: str,
) -> None:
    project = project_at(postgres_url, HIVE_HEALTH)
    killer = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with project.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            recorded, phases = where_recorded(project, conn)
    finally:
        killer.dispose()
    assert recorded == (HIVE_HEALTH,) and phases == []
