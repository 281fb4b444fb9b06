"""A writing run's history rows, asserted on the database: applied, rolled back, half-applied, stamped.

On PostgreSQL and SQLite the rows commit with the migration's one transaction, so a refused
run leaves only its one ``rolled back`` row; on MariaDB each revision's row commits with it,
and a revision that fails half-way is recorded ``half-applied``. Rehearsals, dry runs and
``history=False`` write nothing; a role that cannot create the table is told so in one line.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.engine.recover import recover
from softbee.runbook.errors import DataLossError, PartiallyApplied
from softbee.runbook.history.recorder import file_sha256
from softbee.runbook.history.table import HistoryUnavailable
from softbee.runbook.project import load_project
from softbee.runbook.util.history_name import HISTORY_TABLE, RUN_ID_ENV, RUNBOOK_ENV
from tests.conftest import POSTGRESQL, SQLITE
from tests.helpers import (
    FULL_NAME,
    HEAD,
    MIGRATIONS,
    VARROA,
    dump,
    history_rows,
    migrations_with_extra_revision,
    project_at,
    revision_of,
)


HALF = "0ba1f0000001"  # adds a column, then fails on its next statement


def steps(url: str) -> list[tuple[str, str | None, str | None, str]]:
    """(direction, from, to, outcome) of every row but the table's creation."""
    return [(r.direction, r.revision_from, r.revision_to, r.outcome)
            for r in history_rows(url) if r.outcome != "created"]


def test_each_revision_applied_is_one_row_with_its_run_who_and_file_hash(
    any_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(database_url=any_database_url, migrations_dir=str(MIGRATIONS))
    run_migration(project, "upgrade", FULL_NAME, history=False)
    monkeypatch.setenv(RUN_ID_ENV, "3f2a00000001")
    monkeypatch.setenv(RUNBOOK_ENV, "upgrade_downgrade")

    run_migration(project, "upgrade", "head")

    rows = history_rows(any_database_url)
    created, *applied = rows
    assert (created.outcome, created.revision_to) == ("created", FULL_NAME)  # its creation, first
    assert [(r.revision_from, r.revision_to, r.outcome) for r in applied] == [
        (FULL_NAME, VARROA, "applied"), (VARROA, HEAD, "applied")]
    assert {r.run_id for r in rows} == {"3f2a00000001"}
    assert {r.runbook for r in applied} == {"upgrade_downgrade"}
    assert len({r.database_id for r in rows}) == 1
    head_file = next((MIGRATIONS / "versions").glob(f"{HEAD}_*.py"))
    assert applied[-1].sha256 == file_sha256(head_file)
    assert "@" in applied[-1].user_host and applied[-1].alembic_version
    assert applied[0].started_at <= applied[0].finished_at


@pytest.mark.parametrize("any_database_url", [SQLITE, POSTGRESQL], indirect=True)
def test_a_refused_run_leaves_one_rolled_back_row_in_a_transaction_of_its_own(
    any_database_url: str
) -> None:
    project = project_at(any_database_url, HEAD, rows=10)
    before = steps(any_database_url)

    with pytest.raises(DataLossError):
        run_migration(project, "downgrade", FULL_NAME)

    added = steps(any_database_url)[len(before):]
    assert [(d, f, t, o) for d, f, t, o in added] == [("downgrade", HEAD, FULL_NAME, "rolled back")]
    assert revision_of(any_database_url) == HEAD
    detail = history_rows(any_database_url)[-1].detail or ""
    assert "would lose data" in detail


@pytest.mark.mysql
def test_a_revision_half_applied_on_mariadb_is_recorded_half_applied_after_the_committed_ones(
    mysql_url: str, tmp_path: Path
) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, HALF, HEAD,
        upgrade='op.add_column("hives", sa.Column("weight_kg", sa.Float())); '
                'op.execute("UPDATE no_such_table SET x = 1")',
        downgrade='op.drop_column("hives", "weight_kg")')
    project = project_at(mysql_url, VARROA, migrations_dir=migrations)

    with pytest.raises(PartiallyApplied):
        run_migration(project, "upgrade", "head")

    assert steps(mysql_url)[-2:] == [("upgrade", VARROA, HEAD, "applied"),
                                     ("upgrade", HEAD, HALF, "half-applied")]


def test_a_rehearsal_and_history_false_write_nothing(any_database_url: str) -> None:
    project = project_at(any_database_url, FULL_NAME)
    rows = history_rows(any_database_url)

    run_migration(project, "upgrade", "head", rehearse=True)
    assert history_rows(any_database_url) == rows
    run_migration(project, "upgrade", "head", history=False)
    assert history_rows(any_database_url) == rows and revision_of(any_database_url) == HEAD


def test_a_recovery_records_its_stamp_and_a_dry_run_nothing(any_database_url: str) -> None:
    project = project_at(any_database_url, HEAD)
    rows = len(history_rows(any_database_url))

    recover(project, "", "head", dry_run=True)
    assert len(history_rows(any_database_url)) == rows
    recover(project, "", "head", dry_run=False)

    assert steps(any_database_url)[-1] == ("stamp", HEAD, HEAD, "stamped")
    assert history_rows(any_database_url)[-1].sha256


def test_the_table_name_comes_from_the_apps_config(any_database_url: str) -> None:
    project = load_project(database_url=any_database_url, migrations_dir=str(MIGRATIONS))
    project.app.config["SOFTBEE_HISTORY_TABLE"] = "ops_migration_log"

    run_migration(project, "upgrade", FULL_NAME)

    engine = sa.create_engine(any_database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "ops_migration_log" in tables and HISTORY_TABLE not in tables


@pytest.mark.postgres
def test_a_role_that_cannot_create_the_table_is_told_in_one_line_and_history_false_goes_on(
    postgres_url: str
) -> None:
    owner = load_project(database_url=postgres_url, migrations_dir=str(MIGRATIONS))
    run_migration(owner, "upgrade", FULL_NAME, history=False)
    role = f"history_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = sa.engine.make_url(postgres_url).set(username=role).render_as_string(False)
    project = load_project(database_url=url, migrations_dir=str(MIGRATIONS))
    try:
        with pytest.raises(HistoryUnavailable) as refused:
            run_migration(project, "upgrade", "head")

        message = str(refused.value)
        assert "\n" not in message and "history=False" in message and HISTORY_TABLE in message
        assert revision_of(postgres_url) == FULL_NAME and history_rows(postgres_url) == []
        with pytest.raises(Exception, match="permission denied|must be owner"):
            run_migration(project, "upgrade", "head", history=False)  # goes on, to the DDL
    finally:
        project.engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
