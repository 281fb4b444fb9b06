"""Advised commands are complete for the run that gives them, and never hold a password."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import RevisionError
from softbee.runbook.project.advice import runbook_command
from softbee.urls import parse_url
from tests.helpers import HEAD, MIGRATIONS, project_at

SECRET = "s3cr3t-pw"


def _project(url: str) -> SimpleNamespace:
    return SimpleNamespace(app_spec='pkg:create_app("config.Runbook")', migrations_spec="db/migrations",
                           url=parse_url(url))


def test_a_command_names_app_migrations_and_database_then_its_parameters() -> None:
    command = runbook_command(_project("postgresql://app@db:5432/hives"), "recover_stamp",
                              fix_sql="DROP TABLE `x`; SELECT 'a b'", dry_run=False)
    assert shlex.split(command) == [
        "softbee-runbook", "run", "recover_stamp", "-p", "app", 'pkg:create_app("config.Runbook")',
        "-p", "migrations_dir", "db/migrations",
        "-p", "database_url", "postgresql+psycopg2://app@db:5432/hives",
        "-p", "fix_sql", "DROP TABLE `x`; SELECT 'a b'", "-p", "dry_run", "false"]


def test_a_password_is_never_written_the_env_var_is_named_when_it_holds_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"postgresql://app:{SECRET}@db:5432/hives"
    masked = runbook_command(_project(url), "upgrade_downgrade", rehearse=True)
    assert SECRET not in masked and "app:***@db" in masked
    assert masked.endswith("(put the database password back in place of ***)")

    monkeypatch.setenv("DATABASE_URL", url)
    named = runbook_command(_project(url), "upgrade_downgrade", rehearse=True)
    assert SECRET not in named and '-p database_url "$DATABASE_URL" -p rehearse true' in named


def test_an_unknown_recorded_revision_is_refused_with_the_complete_recover_command(
    sqlite_url: str,
) -> None:
    project = project_at(sqlite_url, HEAD)
    with project.connect() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'deadbeef0042'")
        conn.commit()
    with pytest.raises(RevisionError) as refused:
        run_migration(project, "upgrade", "head")
    words = shlex.split(str(refused.value).split("``")[1])
    assert words[:3] == ["softbee-runbook", "run", "recover_stamp"]
    assert words[words.index("migrations_dir") + 1] == str(MIGRATIONS)
    assert parse_url(words[words.index("database_url") + 1]) == parse_url(sqlite_url)
    assert words[words.index("purge") + 1] == "true"
