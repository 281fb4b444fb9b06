"""Recovery: fix SQL in one transaction, stamp, verify, commit only when it holds."""

from __future__ import annotations

import pytest

from softbee.runbook.engine.recover import diagnose, load_fix_sql, recover, split_statements
from softbee.runbook.errors import RecoveryError, RevisionError
from tests.conftest import POSTGRESQL_PSYCOPG, RUNBOOK_DATABASES, each_pg_driver
from tests.helpers import (
    FULL_NAME,
    HEAD,
    VARROA,
    production_project,
    project_at,
    revision_of,
    snapshot,
)

HAND_COLUMN = "ALTER TABLE inspections ADD COLUMN varroa_mites_per_100 INTEGER"
INDEX = "CREATE INDEX ix_inspections_varroa_mites_per_100 ON inspections (varroa_mites_per_100)"


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = "UPDATE t SET a = 'x;y'; -- trailing; comment\n/* block; */ DELETE FROM t;"
    assert split_statements(sql) == ["UPDATE t SET a = 'x;y'", "DELETE FROM t"]


def test_fix_sql_can_be_a_file(tmp_path) -> None:
    path = tmp_path / "fix.sql"
    path.write_text("SELECT 1;")
    assert load_fix_sql(str(path)) == "SELECT 1;"
    with pytest.raises(RecoveryError, match="does not exist"):
        load_fix_sql(str(tmp_path / "missing.sql"))


def test_diagnosis_shows_the_hand_made_column(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=30)
    with project.connect() as conn:
        conn.exec_driver_sql(HAND_COLUMN)
        conn.commit()
    diagnosis = diagnose(project)
    assert diagnosis.recorded == (FULL_NAME,) and diagnosis.unknown == ()
    assert "add_index" in set(diagnosis.diff["operation"])


@pytest.mark.parametrize("database_url", (*RUNBOOK_DATABASES, POSTGRESQL_PSYCOPG), indirect=True)
def test_dry_run_verifies_then_rolls_back(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=30)
    with project.connect() as conn:
        conn.exec_driver_sql(HAND_COLUMN)
        conn.commit()
    before = snapshot(database_url)
    result = recover(project, INDEX, VARROA, dry_run=True)
    assert result.verification.ok and result.dry_run and not result.applied
    assert snapshot(database_url) == before


@pytest.mark.parametrize("database_url", (*RUNBOOK_DATABASES, POSTGRESQL_PSYCOPG), indirect=True)
def test_real_recovery_commits_fix_and_stamp(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=30)
    with project.connect() as conn:
        conn.exec_driver_sql(HAND_COLUMN)
        conn.commit()
    result = recover(project, INDEX, VARROA, dry_run=False)
    assert result.succeeded and result.applied
    assert revision_of(database_url) == VARROA
    indexes = [name for name, _ in snapshot(database_url)["inspections"]["indexes"]]
    assert "ix_inspections_varroa_mites_per_100" in indexes


def test_unverified_stamp_is_not_committed(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME)
    before = snapshot(database_url)
    result = recover(project, "", HEAD, dry_run=False)
    assert not result.verification.ok and not result.applied
    assert snapshot(database_url) == before


@pytest.mark.parametrize("database_url", (*RUNBOOK_DATABASES, POSTGRESQL_PSYCOPG), indirect=True)
def test_sql_error_in_the_fix_changes_nothing(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=10)
    before = snapshot(database_url)
    with pytest.raises(RecoveryError, match="statement 2"):
        recover(project, "CREATE INDEX ix_users_first_name ON users (first_name); ALTR TABLE x", None,
                dry_run=False)
    assert snapshot(database_url) == before


def test_stamp_to_an_unknown_revision_is_refused_before_anything_runs(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME)
    before = snapshot(database_url)
    with pytest.raises(RevisionError, match="0badc0ffee00"):
        recover(project, INDEX, "0badc0ffee00", dry_run=False)
    assert snapshot(database_url) == before


def test_purge_replaces_a_revision_missing_from_the_scripts(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    with project.connect() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'deadbeef0000'")
        conn.commit()
    assert diagnose(project).unknown == ("deadbeef0000",)
    with pytest.raises(RevisionError, match="purge=True"):
        recover(project, "", HEAD, dry_run=False)
    result = recover(project, "", HEAD, purge=True, dry_run=False)
    assert result.succeeded and revision_of(database_url) == HEAD


@pytest.mark.parametrize("fix", ["BEGIN; DROP TABLE treatments; COMMIT;", "DROP TABLE treatments; COMMIT",
                                 "drop table treatments; end"])
def test_transaction_control_in_the_fix_is_refused_so_a_dry_run_stays_dry(database_url: str, fix: str) -> None:
    project = project_at(database_url, HEAD, rows=10)
    before = snapshot(database_url)
    with pytest.raises(RecoveryError, match="remove BEGIN/COMMIT/ROLLBACK"):
        recover(project, fix, None, dry_run=True)
    assert snapshot(database_url) == before


def test_production_needs_confirm_even_for_a_dry_run(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from softbee.runbook.errors import ConfirmationRequired

    project_at(sqlite_url, FULL_NAME)
    project = production_project(sqlite_url, monkeypatch)
    with pytest.raises(ConfirmationRequired):
        recover(project, INDEX, VARROA, dry_run=True)
    result = recover(project, "", None, dry_run=True, confirm=project.database_name)
    assert result.dry_run


@pytest.mark.postgres
@each_pg_driver
def test_fix_waiting_on_a_lock_times_out_and_changes_nothing(postgres_url: str) -> None:
    import sqlalchemy as sa

    project = project_at(postgres_url, FULL_NAME, rows=10)
    before = snapshot(postgres_url)
    reader = sa.create_engine(postgres_url)
    with reader.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM users"))  # ACCESS SHARE until rollback
        reader_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with pytest.raises(RecoveryError, match=r"lock_timeout \(300 ms\) reached") as caught:
            recover(project, "ALTER TABLE users ADD COLUMN nickname VARCHAR(40)", None,
                    dry_run=False, lock_timeout_ms=300)
        conn.rollback()
    # the session that held it, and what it held (issue 18: every timeout names its holder)
    assert f"pid {reader_pid} (" in str(caught.value), caught.value
    assert "AccessShareLock on users" in str(caught.value) and "rolled back" in str(caught.value)
    reader.dispose()
    assert snapshot(postgres_url) == before


# -- verified against the migrations, not the models (issue 18) -----------------------------

QUEEN_YEAR_BY_HAND = ("ALTER TABLE hives ADD COLUMN queen_year INTEGER; "
                      "CREATE INDEX ix_hives_queen_year ON hives (queen_year)")


def test_an_exact_fix_on_an_app_whose_models_drift_is_verified_and_the_drift_reported_apart(
    any_database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.engine.migrate import run_migration
    from tests.helpers import load_example

    project = load_example("models_drift_from_migrations", "driftyard", any_database_url, tmp_path,
                           monkeypatch)
    run_migration(project, "upgrade", "d3000000001a")  # d3000000002b then "failed": done by hand

    result = recover(project, QUEEN_YEAR_BY_HAND, "head", dry_run=False)

    assert result.verification.ok, result.verification.message
    assert result.succeeded and revision_of(any_database_url) == "d3000000002b"
    assert result.verification.message.startswith("verified: the schema matches revision d3000000002b")
    assert len(result.model_drift) == 3
    assert any("the models differ from the migrations in 3 place(s)" in note for note in result.notes)
    assert "column hives.nickname not in revision d3000000002b" in " ".join(result.notes)


@pytest.mark.postgres
def test_verification_migrates_a_history_with_an_autocommit_block_revision(
    postgres_url: str, tmp_path
) -> None:
    from tests.helpers import migrations_with_extra_revision

    concurrent = "CREATE INDEX CONCURRENTLY ix_treatments_notes ON treatments (notes)"
    migrations = migrations_with_extra_revision(
        tmp_path, "ac0000000001", HEAD,
        upgrade=f"with op.get_context().autocommit_block(): op.execute({concurrent!r})",
        downgrade="op.drop_index('ix_treatments_notes', table_name='treatments')")
    (migrations / "versions" / "ac0000000002_later.py").write_text(
        '"""A later revision\n\nRevision ID: ac0000000002\n"""\n'
        "revision = 'ac0000000002'\ndown_revision = 'ac0000000001'\nbranch_labels = None\n"
        "depends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n")
    project = project_at(postgres_url, HEAD, migrations_dir=migrations)

    result = recover(project, concurrent.replace(" CONCURRENTLY", ""), "ac0000000001", dry_run=True)

    assert result.verification.ok, result.verification.message
    assert "ac0000000001" in result.verification.message


@pytest.mark.postgres
def test_recover_and_diagnose_complete_on_models_with_an_unnamed_postgresql_enum(
    postgres_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.engine.migrate import run_migration
    from tests.helpers import load_example

    project = load_example("unnamed_pg_enum", "mailyard", postgres_url, tmp_path, monkeypatch)
    run_migration(project, "upgrade", "c4000000001a")

    diagnosis = diagnose(project)
    result = recover(project, "ALTER TABLE accounts ADD COLUMN port INTEGER", "head", dry_run=False)

    cause = "PostgreSQL Enum type requires a name (accounts.protocol)"
    assert any(f"the models cannot be compared: {cause}" in p for p in diagnosis.problems)
    assert f"the models cannot be compared: {cause}" in diagnosis.frame().to_string()
    assert result.succeeded and revision_of(postgres_url) == "c4000000002b"
    assert any(cause in note for note in result.notes)


@pytest.mark.postgres
def test_the_recover_stamp_runbook_completes_on_an_unnamed_postgresql_enum_naming_it(
    postgres_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from softbee.runbook.engine.migrate import run_migration
    from tests.helpers import load_example
    from tests.notebooks import run_runbook

    run_migration(load_example("unnamed_pg_enum", "mailyard", postgres_url, tmp_path, monkeypatch),
                  "upgrade", "c4000000001a")

    nb = run_runbook("recover_stamp", tmp_path, cwd=tmp_path / "unnamed_pg_enum",
                     app="mailyard:create_app", database_url=postgres_url,
                     fix_sql="ALTER TABLE accounts ADD COLUMN port INTEGER",
                     stamp_revision="head", dry_run=False)

    text = json.dumps(nb)
    assert "the models cannot be compared: PostgreSQL Enum type requires a name (accounts.protocol)" in text
    assert "Recovery succeeded" in text and revision_of(postgres_url) == "c4000000002b"
