"""MySQL/MariaDB: runs that tell the truth where DDL commits as it runs.

Every test runs on a fresh MariaDB database (``mysql_url``) and asserts on the database:
what a half-applied revision left, that a predicted loss changed nothing, that a
rehearsal on a copy left the real tables alone.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.capture import capture_plan
from softbee.runbook.engine.guards import migration_lock
from softbee.runbook.engine.migrate import plan_to, run_migration
from softbee.runbook.engine.recover import recover
from softbee.runbook.errors import (
    CannotPredict,
    DataLossError,
    LockHeld,
    MigrationFailed,
    PartiallyApplied,
    RehearsalFailed,
)
from softbee.runbook.review.lint import lint_sql
from tests.conftest import each_mysql_driver
from tests.helpers import (
    BEEYARD_APP,
    BEEYARD_REVISIONS,
    FULL_NAME,
    HEAD,
    LIVE_ONLY,
    add_hives,
    dump,
    migrations_with_extra_revision,
    project_at,
    revision_of,
    run_cli,
    scratch_databases,
    snapshot,
)

pytestmark = pytest.mark.mysql

HALF = "0ba1f0000001"  # adds a column, then fails on its next statement


def columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def first_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.text("SELECT first_name FROM users")).scalars())
    finally:
        engine.dispose()


def half_applied_history(tmp_path: Path) -> Path:
    return migrations_with_extra_revision(
        tmp_path, HALF, HEAD,
        upgrade='op.add_column("hives", sa.Column("weight_kg", sa.Float())); '
                'op.execute("UPDATE no_such_table SET x = 1")',
        downgrade='op.drop_column("hives", "weight_kg")')


def test_soft_bee_history_goes_up_and_down_through_the_runbook(mysql_url: str) -> None:
    project = project_at(mysql_url)
    result = run_migration(project, "upgrade", "head")
    assert result.committed and revision_of(mysql_url) == HEAD
    assert len(result.steps) == 8
    run_migration(project, "downgrade", "base")
    assert revision_of(mysql_url) is None
    assert set(snapshot(mysql_url)) == {"alembic_version"}


@each_mysql_driver
def test_a_revision_failing_half_way_is_reported_half_applied_with_its_recovery(
    mysql_url: str, tmp_path: Path
) -> None:
    migrations = half_applied_history(tmp_path)
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)

    with pytest.raises(PartiallyApplied) as failure:
        run_migration(project, "upgrade", "head")

    error = failure.value
    message = str(error)
    assert "NOT rolled back" in message and "rolled back, database still" not in message
    assert "no_such_table" in message and f"still records {HEAD}" in message
    assert "weight_kg" in message and "recover_stamp" in message
    # the truth on the database: the column is there, the version is not moved
    assert "weight_kg" in columns(mysql_url, "hives") and revision_of(mysql_url) == HEAD
    assert [(a["change"], a["table"], a["item"]) for a in error.applied] == [
        ("added", "hives", "weight_kg")]
    assert error.undo_sql == "ALTER TABLE `hives` DROP COLUMN `weight_kg`"
    assert "UPDATE no_such_table" in error.remaining_sql


@each_mysql_driver
def test_the_recovery_drill_undoes_the_applied_part_then_the_upgrade_keeps_every_row(
    mysql_url: str, tmp_path: Path
) -> None:
    migrations = half_applied_history(tmp_path)
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)
    with pytest.raises(PartiallyApplied) as failure:
        run_migration(project, "upgrade", "head")
    rows_before = {t: len(v["rows"]) for t, v in snapshot(mysql_url).items()}

    dry = recover(project, failure.value.undo_sql, dry_run=True)
    assert dry.dry_run and dry.verification.ok and not dry.applied
    assert "weight_kg" in columns(mysql_url, "hives")  # a dry run changed nothing

    done = recover(project, failure.value.undo_sql, dry_run=False)
    assert done.applied and done.verification.ok
    assert "weight_kg" not in columns(mysql_url, "hives") and revision_of(mysql_url) == HEAD

    # fix the revision, then the next upgrade reaches head with every row kept
    script = next((migrations / "versions").glob(f"{HALF}_*.py"))
    script.write_text(script.read_text().replace('op.execute("UPDATE no_such_table SET x = 1")', "pass"))
    run_migration(project, "upgrade", "head")
    assert revision_of(mysql_url) == HALF and "weight_kg" in columns(mysql_url, "hives")
    assert {t: len(v["rows"]) for t, v in snapshot(mysql_url).items() if t != "alembic_version"} == {
        t: n for t, n in rows_before.items() if t != "alembic_version"}


@each_mysql_driver
def test_a_revision_whose_first_statement_fails_left_nothing_and_says_so(
    mysql_url: str, tmp_path: Path
) -> None:
    """Not PartiallyApplied: nothing of it ran, so there is nothing to undo or stamp."""
    migrations = migrations_with_extra_revision(
        tmp_path, "0ba1f0000002", HEAD, upgrade='op.execute("UPDATE no_such_table SET x = 1")')
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)
    before = snapshot(mysql_url)

    with pytest.raises(MigrationFailed) as failure:
        run_migration(project, "upgrade", "head")

    message = str(failure.value)
    assert not isinstance(failure.value, PartiallyApplied), message
    assert "no_such_table" in message and f"nothing of it ran, database still at {HEAD}" in message
    assert "recover_stamp" not in message and "\n" not in message
    assert snapshot(mysql_url) == before


def test_statements_that_ran_before_the_failing_one_are_named_when_the_schema_did_not_change(
    mysql_url: str, tmp_path: Path
) -> None:
    """An UPDATE committed by the failing DDL's implicit commit is applied: PartiallyApplied says so."""
    migrations = migrations_with_extra_revision(
        tmp_path, "0ba1f0000003", HEAD,
        upgrade="op.execute(\"UPDATE users SET first_name = concat(first_name, '!')\"); "
                'op.execute("ALTER TABLE no_such_table ADD COLUMN x INT")')
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)
    names = first_names(mysql_url)

    with pytest.raises(PartiallyApplied) as failure:
        run_migration(project, "upgrade", "head")

    assert "no schema change, but 1 statement(s) before it ran and committed" in str(failure.value)
    assert "UPDATE users SET first_name" in str(failure.value)
    assert revision_of(mysql_url) == HEAD
    assert first_names(mysql_url) == sorted(f"{name}!" for name in names)


def test_capture_records_each_revisions_statements_on_the_scratch_copy(mysql_url: str, beeyard) -> None:
    """capture=True on MariaDB: the rehearsal runs on a copy, and every revision's statements are kept."""
    project = beeyard(mysql_url)
    run_migration(project, "upgrade", BEEYARD_REVISIONS[1])
    add_hives(mysql_url)
    unchanged = dump(mysql_url)

    captured = capture_plan(project, plan_to(project, "head"))

    assert [r.revision for r in captured.revisions] == list(LIVE_ONLY)
    fill, index = captured.revisions
    ran = [s.sql for s in fill.statements]
    assert "UPDATE hives SET yard = 'north' WHERE id = 1" in ran
    assert "UPDATE hives SET yard = 'home' WHERE id = 3" in ran
    assert any(s.sql.startswith("CREATE INDEX ix_hives_yard ON hives") for s in index.statements)
    # Alembic's look at its version table (DESCRIBE on MySQL) is bookkeeping, left out
    assert not [s for s in captured.sql().splitlines() if s.startswith(("DESCRIBE", "SHOW"))]
    assert captured.result.rehearsal and not captured.result.committed
    assert captured.result.end == LIVE_ONLY[-1]
    findings = lint_sql(captured.sql(LIVE_ONLY), {"hives": 3}, dialect="mysql")
    assert set(findings["rule"]) == {"squawk-skipped"}, findings
    # the real database: untouched, and the copy is gone
    assert dump(mysql_url) == unchanged and revision_of(mysql_url) == BEEYARD_REVISIONS[1]
    assert scratch_databases(mysql_url) == []


@each_mysql_driver
def test_a_predicted_loss_is_refused_before_anything_runs(mysql_url: str) -> None:
    project = project_at(mysql_url, HEAD, rows=20)
    before = snapshot(mysql_url)
    with pytest.raises(DataLossError, match="nothing was run") as refused:
        run_migration(project, "downgrade", FULL_NAME)
    assert any(loss["object"] == "treatments" for loss in refused.value.losses)
    assert snapshot(mysql_url) == before


def test_allow_data_loss_runs_the_predicted_loss(mysql_url: str) -> None:
    project = project_at(mysql_url, HEAD, rows=20)
    result = run_migration(project, "downgrade", FULL_NAME, allow_data_loss=True)
    assert revision_of(mysql_url) == FULL_NAME and "treatments" not in snapshot(mysql_url)
    assert any(loss["object"] == "treatments" for loss in result.losses)


@each_mysql_driver
def test_a_rehearsal_runs_on_a_copy_and_leaves_the_database_alone(mysql_url: str) -> None:
    project = project_at(mysql_url, FULL_NAME, rows=20)
    before = snapshot(mysql_url)
    result = run_migration(project, "upgrade", "head", rehearse=True)
    assert result.rehearsal and not result.committed and result.end == HEAD
    assert snapshot(mysql_url) == before
    engine = sa.create_engine(mysql_url)
    # This database's copies only: other tests (other workers) rehearse on their own at the same time.
    own_copies = sa.engine.make_url(mysql_url).database + "_rehearsal%"
    with engine.connect() as conn:
        leftovers = conn.execute(sa.text("SHOW DATABASES LIKE :name"), {"name": own_copies}).all()
    engine.dispose()
    assert leftovers == []


@each_mysql_driver
def test_a_second_run_is_refused_naming_the_get_lock_holder(mysql_url: str) -> None:
    project = project_at(mysql_url)
    with project.connect() as other, migration_lock(project, other) as held:
        with pytest.raises(LockHeld, match=f"pid {held.holder['pid']}"):
            run_migration(project, "upgrade", "head")
    assert revision_of(mysql_url) is None


@pytest.mark.notebook
def test_the_upgrade_runbook_on_mariadb_reports_a_half_applied_revision(
    mysql_url: str, tmp_path: Path
) -> None:
    """Through the notebook: base to head, then the failing revision stops the run as half-applied."""
    from tests.notebooks import run_failing_runbook, run_runbook

    migrations = half_applied_history(tmp_path)
    run_runbook("upgrade_downgrade", tmp_path, database_url=mysql_url, target=HEAD,
                migrations_dir=str(migrations))
    assert revision_of(mysql_url) == HEAD

    error, _ = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=mysql_url,
                                   migrations_dir=str(migrations))
    assert error.ename == "PartiallyApplied"
    assert "NOT rolled back" in error.evalue and "recover_stamp" in error.evalue
    assert "weight_kg" in columns(mysql_url, "hives") and revision_of(mysql_url) == HEAD


# -- issue 18: say what was done, and only that ------------------------------------------------


def test_a_failed_rehearsal_is_the_rehearsals_failure_with_the_real_database_named_untouched(
    mysql_url: str, tmp_path: Path
) -> None:
    """Not "PartiallyApplied ... alembic_version still records X. Finish with recover_stamp": the copy failed."""
    migrations = half_applied_history(tmp_path)
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)
    before = dump(mysql_url)

    with pytest.raises(RehearsalFailed) as failure:
        run_migration(project, "upgrade", "head", rehearse=True)

    message = str(failure.value)
    assert not isinstance(failure.value, PartiallyApplied), message
    assert "rehearsal" in message and "scratch copy" in message and "no_such_table" in message
    database = sa.engine.make_url(mysql_url).database
    assert f"the real database {database} was not touched: it is still at {HEAD}" in message
    for untrue in ("NOT rolled back", "still records", "recover_stamp", "stamp_revision"):
        assert untrue not in message, message
    assert isinstance(failure.value.on_copy, PartiallyApplied)  # what happened on the copy
    assert dump(mysql_url) == before and scratch_databases(mysql_url) == []


def test_a_rehearsal_whose_revision_left_nothing_on_the_copy_says_the_copy_not_the_database(
    mysql_url: str, tmp_path: Path
) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "0ba1f0000005", HEAD, upgrade='op.execute("UPDATE no_such_table SET x = 1")')
    project = project_at(mysql_url, HEAD, rows=5, migrations_dir=migrations)
    before = dump(mysql_url)

    with pytest.raises(RehearsalFailed) as failure:
        run_migration(project, "upgrade", "head", rehearse=True)

    message = str(failure.value)
    assert f"nothing of it ran, the scratch copy was at {HEAD}" in message, message
    assert "fix the script and rehearse again" in message and "database still at" not in message
    assert message.endswith(f"was not touched: it is still at {HEAD}")
    assert dump(mysql_url) == before and scratch_databases(mysql_url) == []


def test_a_half_applied_downgrade_is_finished_by_stamping_the_revision_it_goes_to(
    mysql_url: str, tmp_path: Path
) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "0ba1f0000004", HEAD,
        upgrade='op.add_column("hives", sa.Column("weight_kg", sa.Float()))',
        downgrade='op.drop_column("hives", "weight_kg"); op.execute("UPDATE no_such_table SET x = 1")')
    project = project_at(mysql_url, "0ba1f0000004", rows=5, migrations_dir=migrations)

    with pytest.raises(PartiallyApplied) as failure:
        run_migration(project, "downgrade", "-1")

    message = str(failure.value)
    assert f"-p stamp_revision {HEAD} " in message, message
    assert "-p stamp_revision 0ba1f0000004" not in message
    assert revision_of(mysql_url) == "0ba1f0000004"  # the truth: still recorded, column gone
    assert "weight_kg" not in columns(mysql_url, "hives")


def test_advised_commands_name_the_app_migrations_and_database_and_run_as_copied(
    mysql_url: str, tmp_path: Path
) -> None:
    """The undo command of a half-applied revision, copied as it is, undoes it on this database."""
    migrations = half_applied_history(tmp_path)
    project = project_at(mysql_url, HEAD, rows=5, migrations_dir=migrations)
    with pytest.raises(PartiallyApplied) as failure:
        run_migration(project, "upgrade", "head")
    message = str(failure.value)
    commands = re.findall(r"`` (softbee-runbook run .*?) ``", message)
    assert len(commands) == 2, message
    for command in commands:
        words = shlex.split(command)
        for name in ("app", "migrations_dir", "database_url"):
            assert ["-p", name] == words[words.index(name) - 1:words.index(name) + 1], command
        assert words[words.index("migrations_dir") + 1] == str(migrations)
        assert words[words.index("database_url") + 1] == mysql_url

    words = shlex.split(commands[0])  # the undo
    assert words[:3] == ["softbee-runbook", "run", "recover_stamp"]
    done = run_cli(*words[2:], archive=tmp_path / "archive")
    assert done.returncode == 0, done.stderr
    assert "weight_kg" not in columns(mysql_url, "hives") and revision_of(mysql_url) == HEAD


def test_an_unrenderable_revision_on_an_empty_database_is_not_a_loss(mysql_url: str, beeyard) -> None:
    """beeyard's last two revisions need a live connection: base -> head runs, no allow_data_loss."""
    project = beeyard(mysql_url)
    result = run_migration(project, "upgrade", "head")
    assert result.committed and revision_of(mysql_url) == BEEYARD_REVISIONS[-1]
    assert result.losses == []


def test_an_unrenderable_revision_on_a_database_with_rows_cannot_be_predicted_not_a_loss(
    mysql_url: str, beeyard
) -> None:
    project = beeyard(mysql_url)
    run_migration(project, "upgrade", BEEYARD_REVISIONS[1])
    add_hives(mysql_url)
    before = dump(mysql_url)

    with pytest.raises(CannotPredict) as refused:
        run_migration(project, "upgrade", "head")

    message = str(refused.value)
    assert not isinstance(refused.value, DataLossError)
    assert "cannot predict" in message and "would lose data" not in message
    assert refused.value.revisions == list(LIVE_ONLY)
    command = re.search(r"`` (softbee-runbook run upgrade_downgrade .*?) ``", message)
    assert command, message
    words = shlex.split(command[1])
    assert words[words.index("app") + 1] == BEEYARD_APP
    assert words[words.index("database_url") + 1] == mysql_url
    assert words[words.index("rehearse") + 1] == "true" and words[words.index("target") + 1] == "head"
    assert dump(mysql_url) == before


@pytest.mark.notebook
def test_the_cli_prints_the_advice_whole_and_the_command_it_prints_runs_as_copied(
    mysql_url: str, tmp_path: Path
) -> None:
    """The error line was cut at "Finish with recover_st..." and its commands addressed Soft-Bee."""
    migrations = half_applied_history(tmp_path)
    project_at(mysql_url, HEAD, rows=5, migrations_dir=migrations)
    failed = run_cli("upgrade_downgrade", "-p", "database_url", mysql_url,
                     "-p", "migrations_dir", str(migrations), archive=tmp_path / "archive")
    assert failed.returncode == 1, failed.stderr
    (line,) = [text for text in failed.stderr.splitlines() if text.startswith("softbee-runbook:")]
    commands = re.findall(r"`` (softbee-runbook run .*?) ``", line)
    assert len(commands) == 2, line
    assert "-p stamp_revision 0ba1f0000001 -p dry_run false" in commands[1]

    undo = shlex.split(commands[0])
    done = run_cli(*undo[2:], archive=tmp_path / "archive")
    assert done.returncode == 0, done.stderr
    assert "weight_kg" not in columns(mysql_url, "hives") and revision_of(mysql_url) == HEAD
