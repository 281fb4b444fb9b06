"""A change made outside the runbooks is named by the next run's set-up, in one line.

A bare ``flask db upgrade`` between two runs moves ``alembic_version`` and writes no history
row; an applied revision file edited afterwards no longer has the sha256 its row recorded.
Asserted on SQLite, PostgreSQL and MariaDB through the library, and through each runbook's
set-up (one runbook per database, so the three runbooks and the three databases are all
covered without nine notebook runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.history.outside import history_setup, moved_outside
from softbee.runbook.project import load_project
from softbee.runbook.util.history_name import RUN_ID_ENV
from tests.helpers import (
    FULL_NAME,
    HEAD,
    HUNG_AFTER_S,
    MIGRATIONS,
    history_rows,
    project_at,
    revision_of,
)
from tests.notebooks import run_runbook, shown, step_outputs


def bare_flask_db(*args: str, url: str, cwd: Path) -> None:
    """``flask db <args>`` as someone would type it, outside the runbooks."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "FLASK_ENV", "FLASK_APP", RUN_ID_ENV}}
    env.update(FLASK_APP="softbee", DATABASE_URL=url, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HUNG_AFTER_S, check=False)
    assert done.returncode == 0, done.stderr


def test_a_bare_flask_db_upgrade_between_two_runs_is_named_with_the_run_before_it(
    any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "3f2a9c000001")
    project = project_at(any_database_url, FULL_NAME)
    assert moved_outside(project) == []

    bare_flask_db("upgrade", url=any_database_url, cwd=tmp_path)

    assert revision_of(any_database_url) == HEAD
    [line] = moved_outside(project)
    assert line.startswith(f"recorded {FULL_NAME} by run 3f2a… on 20")
    assert line.endswith(f"; now at {HEAD} with no run recorded")
    run_migration(project, "upgrade", "head")  # the next run records the move it found, once
    last = history_rows(any_database_url)[-1]
    assert (last.direction, last.revision_from, last.revision_to, last.outcome) == (
        "outside", FULL_NAME, HEAD, "found moved outside")
    assert moved_outside(project) == []


def test_a_bare_stamp_is_named_and_a_run_after_it_is_not(
    any_database_url: str, tmp_path: Path
) -> None:
    project = project_at(any_database_url, HEAD)
    bare_flask_db("stamp", FULL_NAME, url=any_database_url, cwd=tmp_path)

    [line] = moved_outside(project)
    assert f"now at {FULL_NAME} with no run recorded" in line and "unarchived run" in line
    bare_flask_db("stamp", HEAD, url=any_database_url, cwd=tmp_path)
    assert moved_outside(project) == []  # back where the history says: nothing to say


def test_an_applied_revision_file_edited_afterwards_is_named_by_the_next_run(
    any_database_url: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    project = project_at(any_database_url, HEAD, migrations_dir=migrations)
    script = next((migrations / "versions").glob(f"{FULL_NAME}_*.py"))

    script.write_text(script.read_text() + "\n# edited after it was applied\n")

    project = load_project(database_url=any_database_url, migrations_dir=str(migrations))
    [line] = moved_outside(project)
    assert line.startswith(f"revision {FULL_NAME}'s file {script.name} was edited after")
    assert "sha256" in line and HEAD not in line


@pytest.mark.notebook
@pytest.mark.parametrize(("runbook", "any_database_url"), [
    pytest.param("upgrade_downgrade", "sqlite"),
    pytest.param("inspect_diff", "postgresql", marks=pytest.mark.postgres),
    pytest.param("recover_stamp", "mysql", marks=pytest.mark.mysql),
], indirect=["any_database_url"])
def test_each_runbooks_set_up_names_a_bare_flask_db_upgrade_since_the_last_run(
    runbook: str, any_database_url: str, tmp_path: Path
) -> None:
    project_at(any_database_url, FULL_NAME)
    bare_flask_db("upgrade", url=any_database_url, cwd=tmp_path)

    nb = run_runbook(runbook, tmp_path, database_url=any_database_url)

    said = " ".join(shown(step_outputs(nb, "## Set-up"), "text/markdown"))
    assert "**Changed outside the runbooks:**" in said
    assert f"recorded {FULL_NAME} by an unarchived run" in said
    assert f"now at {HEAD} with no run recorded" in said


def test_the_set_up_says_nothing_changed_when_the_history_agrees(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD)
    assert history_setup(project) == (
        [], "History: no change outside the runbooks since the last recorded run.")
