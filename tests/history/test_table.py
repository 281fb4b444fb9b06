"""The history table is the runbooks' record, never the project's schema.

Not counted, not a model difference, not a loss, not something autogenerate writes a drop
for, and never a password in a row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import MigrationFailed
from softbee.runbook.review.counts import row_counts
from softbee.runbook.review.diff import model_diff, schema_of
from softbee.runbook.util.history_name import HISTORY_TABLE, skip_runbook_tables
from tests.helpers import (
    FULL_NAME,
    HEAD,
    HUNG_AFTER_S,
    MIGRATIONS,
    history_rows,
    migrations_with_extra_revision,
    project_at,
)


def test_the_history_table_is_no_row_count_no_schema_and_no_model_difference(
    any_database_url: str
) -> None:
    project = project_at(any_database_url, HEAD)
    assert history_rows(any_database_url)  # it is there

    with project.connect() as conn:
        assert HISTORY_TABLE not in row_counts(conn)
        assert HISTORY_TABLE not in schema_of(conn)
    assert model_diff(project).empty


def test_a_round_trip_over_the_first_run_is_not_disturbed_by_the_table_it_creates(
    sqlite_url: str
) -> None:
    project = project_at(sqlite_url, FULL_NAME, rows=5)
    result = run_migration(project, "upgrade", "head", round_trip=True)
    assert all(check["ok"] for check in result.checks)


def test_bare_flask_db_migrate_writes_no_drop_of_the_history_table(
    sqlite_url: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    project_at(sqlite_url, HEAD, migrations_dir=migrations)
    before = set((migrations / "versions").glob("*.py"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "FLASK_APP"}}
    env.update(FLASK_APP="softbee", DATABASE_URL=sqlite_url, PYTHONWARNINGS="ignore")

    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", "migrate", "-d", str(migrations), "-m", "nothing"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HUNG_AFTER_S, check=False)

    assert done.returncode == 0, done.stderr
    written = set((migrations / "versions").glob("*.py")) - before
    assert all(HISTORY_TABLE not in path.read_text() for path in written)


def test_skip_runbook_tables_asks_the_projects_own_include_name_for_the_rest() -> None:
    include = skip_runbook_tables(lambda name, type_, parents: name != "legacy")
    assert not include(HISTORY_TABLE, "table", {})
    assert not include("legacy", "table", {}) and include("hives", "table", {})


@pytest.mark.postgres
def test_no_row_holds_a_password(postgres_url: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    migrations = migrations_with_extra_revision(  # fails naming the URL, password and all
        tmp_path, "0ba1f0000009", HEAD,
        upgrade="raise RuntimeError(op.get_bind().engine.url.render_as_string(False))")
    url = make_url(postgres_url).set(password="s3cretpw").render_as_string(False)
    project = project_at(url, HEAD, migrations_dir=migrations)  # trust: the password is unused

    with pytest.raises(MigrationFailed):
        run_migration(project, "upgrade", "head")

    last = history_rows(postgres_url)[-1]
    assert last.outcome == "rolled back" and "postgres:***@" in (last.detail or "")
    assert "s3cretpw" not in repr(history_rows(postgres_url))
