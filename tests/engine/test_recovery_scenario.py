"""The issue's scenario: a column added by hand breaks the upgrade; recover_stamp repairs it.

Someone ran ``ALTER TABLE inspections ADD COLUMN varroa_mites_per_100 INTEGER``
on a database at 6f5b0d2a7c06, the revision before 7a6c1e3b8d07 adds that column
and its index. The upgrade then fails on the duplicate column. The team guide's
answer is "fix by hand, then ``flask db stamp``": here, create the missing index
and stamp 7a6c1e3b8d07, through the recover_stamp runbook, which verifies the
schema against the stamped revision before committing anything.

Also: a fix with a SQL error, a stamp of a revision that does not exist, and a
database recording a revision whose script was deleted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.archive.summary import read_summary
from tests.helpers import snapshot
from tests.run.test_runbooks import (
    HEAD,
    VARROA,
    VARROA_INDEX,
    column_names,
    error_output,
    execute_sql,
    failed_step,
    index_names,
    migrate_to,
    model_differences,
    recorded_revision,
    row_counts,
    run_failing_runbook,
    run_runbook,
    seed,
)

pytestmark = pytest.mark.notebook

BEFORE_VARROA = "6f5b0d2a7c06"
FIX_SQL = f"CREATE INDEX {VARROA_INDEX} ON inspections (varroa_mites_per_100)"
DELETED_REVISION = "deadbeef0000"


def add_varroa_column_by_hand(url: str) -> str:
    """Seed a database at 6f5b0d2a7c06, then add 7a6c1e3b8d07's column (not its index) by hand."""
    migrate_to(url, BEFORE_VARROA)
    seed(url)
    execute_sql(url, "ALTER TABLE inspections ADD COLUMN varroa_mites_per_100 INTEGER")
    assert "varroa_mites_per_100" in column_names(url, "inspections")
    assert VARROA_INDEX not in index_names(url, "inspections")
    return url


def record_a_deleted_revision(url: str) -> str:
    """Seed a database at head, then make alembic_version name a revision no script has."""
    migrate_to(url, HEAD)
    seed(url)
    execute_sql(url, f"UPDATE alembic_version SET version_num = '{DELETED_REVISION}'")
    return url


@pytest.fixture
def column_added_by_hand(database_url: str) -> str:
    return add_varroa_column_by_hand(database_url)


@pytest.fixture
def recorded_revision_without_script(database_url: str) -> str:
    return record_a_deleted_revision(database_url)


def test_upgrade_over_a_column_added_by_hand_fails_and_changes_nothing(
    column_added_by_hand: str, tmp_path: Path
) -> None:
    url = column_added_by_hand
    before = snapshot(url)

    refused, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=url)
    assert refused.ename == "DriftError"  # the column is drift from 6f5b0d2a7c06 (issue 19)
    assert "column inspections.varroa_mites_per_100 not in any revision" in refused.evalue
    assert failed_step(nb).startswith("## 1. Preflight")
    assert snapshot(url) == before

    error, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=url,
                                    allow_drift=True)

    assert error.ename == "MigrationFailed"
    assert VARROA in error.evalue
    assert "recover_stamp" in error.evalue
    assert error_output(nb).ename == "MigrationFailed"
    assert failed_step(nb).startswith("## 3. Migrate")
    assert snapshot(url) == before


def test_recover_stamp_dry_run_verifies_but_commits_nothing(
    column_added_by_hand: str, tmp_path: Path
) -> None:
    url = column_added_by_hand
    before = snapshot(url)

    nb = run_runbook("recover_stamp", tmp_path, database_url=url, fix_sql=FIX_SQL,
                     stamp_revision=VARROA, dry_run=True)

    summary = read_summary(nb)
    assert summary["dry_run"] is True
    assert summary["outcome"].startswith(f"dry run: verified: the schema matches revision {VARROA}")
    assert summary["revision_before"] == BEFORE_VARROA
    assert snapshot(url) == before
    assert recorded_revision(url) == BEFORE_VARROA
    assert VARROA_INDEX not in index_names(url, "inspections")


def test_fix_and_stamp_then_upgrade_reaches_head_with_models_matching(
    column_added_by_hand: str, tmp_path: Path
) -> None:
    url = column_added_by_hand
    rows = row_counts(url)

    nb = run_runbook("recover_stamp", tmp_path, database_url=url, fix_sql=FIX_SQL,
                     stamp_revision=VARROA, dry_run=False)

    assert recorded_revision(url) == VARROA
    assert VARROA_INDEX in index_names(url, "inspections")
    assert row_counts(url) == rows
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == (BEFORE_VARROA, VARROA)
    assert summary["dry_run"] is False
    assert summary["outcome"].startswith(f"verified: the schema matches revision {VARROA}")

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=url)

    assert recorded_revision(url) == HEAD
    assert row_counts(url) == {**rows, "treatments": 0}
    assert model_differences(url) == []
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == (VARROA, HEAD)


def test_fix_sql_with_a_syntax_error_rolls_back_every_statement(
    column_added_by_hand: str, tmp_path: Path
) -> None:
    url = column_added_by_hand
    before = snapshot(url)

    # The first statement is good: it must be rolled back with the second.
    error, _ = run_failing_runbook("recover_stamp", tmp_path, database_url=url,
                                   fix_sql=f"{FIX_SQL};\nCREAT INDEX oops ON inspections (id)",
                                   stamp_revision=VARROA, dry_run=False)

    assert error.ename == "RecoveryError"
    assert "statement 2" in error.evalue
    assert snapshot(url) == before
    assert VARROA_INDEX not in index_names(url, "inspections")


def test_stamp_of_a_revision_that_does_not_exist_fails_and_changes_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    add_varroa_column_by_hand(sqlite_url)
    before = snapshot(sqlite_url)

    error, _ = run_failing_runbook("recover_stamp", tmp_path, database_url=sqlite_url,
                                   fix_sql=FIX_SQL, stamp_revision="0123456789ab", dry_run=False)

    assert error.ename == "RevisionError"
    assert "0123456789ab" in error.evalue
    assert snapshot(sqlite_url) == before


def test_upgrade_stops_at_preflight_when_the_recorded_revision_has_no_script(
    sqlite_url: str, tmp_path: Path
) -> None:
    record_a_deleted_revision(sqlite_url)
    before = snapshot(sqlite_url)

    error, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=sqlite_url)

    assert error.ename == "RevisionError"
    assert DELETED_REVISION in error.evalue
    assert "recover_stamp" in error.evalue and "purge=True" in error.evalue
    assert failed_step(nb).startswith("## 1. Preflight")
    assert snapshot(sqlite_url) == before


def test_recover_stamp_with_purge_replaces_a_recorded_revision_that_has_no_script(
    recorded_revision_without_script: str, tmp_path: Path
) -> None:
    url = recorded_revision_without_script
    rows = row_counts(url)

    nb = run_runbook("recover_stamp", tmp_path, database_url=url, stamp_revision=HEAD,
                     purge=True, dry_run=False)

    assert recorded_revision(url) == HEAD
    assert row_counts(url) == rows
    assert model_differences(url) == []
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == (DELETED_REVISION, HEAD)
    assert summary["outcome"].startswith(f"verified: the schema matches revision {HEAD}")
