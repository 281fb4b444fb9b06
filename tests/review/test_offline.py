"""Offline SQL: what a plan would run, rendered without touching the database."""

from __future__ import annotations

from softbee.runbook.engine.migrate import plan_migration
from softbee.runbook.review.offline import plan_sql, render_plan
from tests.helpers import FULL_NAME, HEAD, HIVE_HEALTH, project_at, snapshot


def test_upgrade_sql_is_rendered_for_postgresql_without_changing_the_database(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HIVE_HEALTH)
    before = snapshot(sqlite_url)
    sql = plan_sql(project, plan_migration(project, "upgrade", "head"), dialect="postgresql")
    assert f"-- Running upgrade {HIVE_HEALTH} -> {FULL_NAME}" in sql
    assert "ALTER TABLE users ADD COLUMN full_name VARCHAR(200)" in sql
    assert "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL" in sql
    assert f"UPDATE alembic_version SET version_num='{HEAD}'" in sql
    assert snapshot(sqlite_url) == before


def test_downgrade_sql_runs_the_downgrade_functions(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD)
    sql = plan_sql(project, plan_migration(project, "downgrade", FULL_NAME), dialect="postgresql")
    assert "DROP TABLE treatments" in sql and "DROP INDEX ix_inspections_varroa_mites_per_100" in sql
    assert "full_name" not in sql


def test_nothing_to_run_renders_nothing(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD)
    assert plan_sql(project, plan_migration(project, "upgrade", "head")) == ""


def test_rendering_revision_by_revision_gives_every_revisions_sql(sqlite_url: str) -> None:
    """render_plan shows the same revisions and statements as one offline run, in order, both ways."""
    project = project_at(sqlite_url, HIVE_HEALTH)
    before = snapshot(sqlite_url)
    for plan in (plan_migration(project, "upgrade", "head"),
                 plan_migration(project, "downgrade", "base")):
        whole = plan_sql(project, plan, dialect="postgresql")
        rendered = render_plan(project, plan, dialect="postgresql")
        assert rendered.needs_live == []
        assert [r.revision for r in rendered.revisions] == [s.revision for s in plan.scripts]
        running = [line for line in whole.splitlines() if line.startswith("-- Running")]
        assert [line for line in rendered.sql.splitlines() if line.startswith("-- Running")] == running
        statements = [line for line in whole.splitlines() if line and line not in ("BEGIN;", "COMMIT;")]
        assert all(line in rendered.sql for line in statements)
    assert snapshot(sqlite_url) == before
