"""Generating revisions: specific messages, a database at head, no silent destruction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from softbee.runbook.errors import DestructiveChange, NotAtHead, ParameterError
from softbee.runbook.review.revision import check_message, generate_revision
from tests.helpers import HEAD, MIGRATIONS, VARROA, project_at


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of migrations/, so generated files never touch the repo."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.parametrize("message", ["Update database", "Changes", "fix", "", "Users table"])
def test_vague_messages_are_refused_with_a_reason(message: str) -> None:
    with pytest.raises(ParameterError, match="message"):
        check_message(message)


def test_specific_message_is_accepted_and_normalised() -> None:
    assert check_message("  Add email  verification fields to user model ") == (
        "Add email verification fields to user model"
    )


def test_no_change_writes_nothing(sqlite_url: str, migrations_copy: Path) -> None:
    project = project_at(sqlite_url, HEAD, migrations_dir=migrations_copy)
    before = sorted(p.name for p in (migrations_copy / "versions").glob("*.py"))
    new = generate_revision(project, "Add nothing to the schema today")
    assert new.path is None and new.diff.empty
    assert sorted(p.name for p in (migrations_copy / "versions").glob("*.py")) == before


def test_database_behind_head_is_refused(sqlite_url: str, migrations_copy: Path) -> None:
    project = project_at(sqlite_url, VARROA, migrations_dir=migrations_copy)
    with pytest.raises(NotAtHead, match="upgrade it first"):
        generate_revision(project, "Add index on varroa mite counts")


def test_real_change_writes_one_revision_with_the_operation(database_url: str, migrations_copy: Path) -> None:
    project = project_at(database_url, HEAD, migrations_dir=migrations_copy)
    with project.connect() as conn:
        conn.exec_driver_sql("DROP INDEX ix_inspections_varroa_mites_per_100")
        conn.commit()
    new = generate_revision(project, "Add index on varroa mite counts")
    assert new.path is not None and new.path.parent == migrations_copy / "versions"
    assert "create_index" in new.source and "Add index on varroa mite counts" in new.source
    assert f"down_revision = '{HEAD}'" in new.source or f'down_revision = "{HEAD}"' in new.source


def test_destructive_diff_is_refused_unless_allowed(sqlite_url: str, migrations_copy: Path) -> None:
    project = project_at(sqlite_url, HEAD, migrations_dir=migrations_copy)
    with project.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY)")
        conn.commit()
    count = len(list((migrations_copy / "versions").glob("*.py")))
    with pytest.raises(DestructiveChange, match="remove_table scratch_notes") as caught:
        generate_revision(project, "Drop the scratch notes table")
    assert caught.value.operations[0]["table"] == "scratch_notes"
    assert len(list((migrations_copy / "versions").glob("*.py"))) == count
    new = generate_revision(project, "Drop the scratch notes table", allow_destructive=True)
    assert new.path is not None and "drop_table('scratch_notes')" in new.source
