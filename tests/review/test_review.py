"""review: the states inspect_diff must diagnose, each named with its fix, on SQLite and PostgreSQL."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from softbee.runbook.errors import RevisionError
from softbee.runbook.project import Project
from softbee.runbook.review.findings import (
    blocks_migration,
    check_versions,
    findings_frame,
    findings_markdown,
    review_plan,
)
from softbee.urls import parse_url
from tests.helpers import (
    FULL_NAME,
    HEAD,
    INSPECTIONS,
    MIGRATIONS,
    VARROA,
    migrations_with_extra_revision,
    project_at,
    snapshot,
)

UNKNOWN = "deadbeef0042"
BRANCH = "feedface0001"


def _execute(project: Project, *statements: str) -> None:
    with project.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        conn.commit()


def test_a_healthy_database_behind_head_has_no_findings_and_a_plan(database_url: str) -> None:
    project = project_at(database_url, INSPECTIONS)

    findings = check_versions(project)
    plan = review_plan(project, "head", findings)

    assert findings == []
    assert plan is not None and plan.start == INSPECTIONS and plan.target == HEAD


def test_an_unknown_recorded_revision_names_recover_stamp_with_purge_and_changes_nothing(
    database_url: str,
) -> None:
    project = project_at(database_url, HEAD, rows=5)
    _execute(project, f"UPDATE alembic_version SET version_num = '{UNKNOWN}'")
    before = snapshot(database_url)

    findings = check_versions(project)
    plan = review_plan(project, "head", findings)

    assert [f.severity for f in findings] == ["error"]
    assert f"records unknown revision {UNKNOWN}" in findings[0].problem
    fix = findings[0].fix
    assert fix.startswith(
        "run recover_stamp with purge=True and stamp_revision='head' "
        "(the schema matches what the migrations produce at head): `` softbee-runbook run "
        "recover_stamp ")
    words = shlex.split(fix.split("``")[1])  # the command, complete for this project (issue 18)
    assert words[words.index("app") + 1] == "softbee:create_app"
    assert words[words.index("migrations_dir") + 1] == str(MIGRATIONS)
    assert parse_url(words[words.index("database_url") + 1]) == parse_url(database_url)
    assert words[-6:] == ["-p", "purge", "true", "-p", "stamp_revision", "head"]
    assert plan is None
    assert snapshot(database_url) == before


def test_an_unknown_revision_on_a_schema_unlike_the_models_asks_for_the_matching_revision(
    database_url: str,
) -> None:
    project = project_at(database_url, HEAD)
    _execute(project, f"UPDATE alembic_version SET version_num = '{UNKNOWN}'",
             "ALTER TABLE hives ADD COLUMN legacy_note VARCHAR(20)")

    (finding,) = check_versions(project)

    assert "purge=True" in finding.fix and "stamp_revision='head'" not in finding.fix
    assert "revision the schema matches" in finding.fix


def test_a_bad_target_is_still_refused_when_the_state_blocks_a_plan(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    _execute(project, f"UPDATE alembic_version SET version_num = '{UNKNOWN}'")
    findings = check_versions(project)

    with pytest.raises(RevisionError, match="nope"):
        review_plan(project, "nope", findings)
    assert review_plan(project, "-1", findings) is None


def test_several_recorded_revisions_name_recover_stamp_with_purge(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    _execute(project, f"INSERT INTO alembic_version (version_num) VALUES ('{FULL_NAME}')")

    findings = check_versions(project)

    assert [f.severity for f in findings] == ["error"]
    assert "records 2 revisions" in findings[0].problem
    assert FULL_NAME in findings[0].problem and HEAD in findings[0].problem
    assert findings[0].fix.startswith("run recover_stamp with purge=True")
    assert review_plan(project, "head", findings) is None


def test_both_branches_of_a_branched_history_recorded_name_the_merge(
    database_url: str, tmp_path: Path
) -> None:
    migrations = migrations_with_extra_revision(tmp_path, BRANCH, VARROA)
    project = project_at(database_url, HEAD, migrations_dir=migrations)
    _execute(project, f"INSERT INTO alembic_version (version_num) VALUES ('{BRANCH}')")

    findings = check_versions(project)

    assert len(findings) == 1 and "records 2 heads" in findings[0].problem
    assert "flask db merge" in findings[0].fix and "upgrade_downgrade" in findings[0].fix
    assert review_plan(project, "head", findings) is None


def test_several_heads_in_the_scripts_block_head_but_not_an_explicit_target(
    database_url: str, tmp_path: Path
) -> None:
    migrations = migrations_with_extra_revision(tmp_path, BRANCH, VARROA)
    project = project_at(database_url, FULL_NAME, migrations_dir=migrations)

    findings = check_versions(project)

    assert len(findings) == 1 and "have 2 heads" in findings[0].problem
    assert "flask db merge" in findings[0].fix
    assert review_plan(project, "head", findings) is None
    plan = review_plan(project, BRANCH, findings)
    assert plan is not None and [s.revision for s in plan.scripts] == [VARROA, BRANCH]


def test_tables_without_a_version_table_name_recover_stamp_head(database_url: str) -> None:
    project = project_at(database_url, HEAD, rows=5)
    _execute(project, "DROP TABLE alembic_version")

    findings = check_versions(project)
    plan = review_plan(project, "head", findings)

    assert [f.severity for f in findings] == ["error"]
    assert findings[0].problem.startswith("has no alembic_version table but 5 other table(s)")
    assert findings[0].fix.startswith("run recover_stamp with stamp_revision='head'")
    assert blocks_migration(findings)
    assert plan is None  # an upgrade from base would create tables that exist


def test_an_empty_version_table_with_tables_is_the_same_problem(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    _execute(project, "DELETE FROM alembic_version")

    (finding,) = check_versions(project)

    assert finding.problem.startswith("has an empty alembic_version table but 5 other table(s)")


def test_a_new_empty_database_is_information_not_a_problem(database_url: str) -> None:
    project = project_at(database_url)

    findings = check_versions(project)

    assert [(f.severity, f.fix) for f in findings] == [
        ("info", "run upgrade_downgrade to create the schema")]
    assert not blocks_migration(findings)
    assert list(findings_frame(findings).columns) == ["severity", "problem", "fix", "blocks_plan"]


def test_findings_read_in_full_as_markdown_with_markup_escaped() -> None:
    from softbee.runbook.review.findings import Finding

    text = findings_markdown([Finding("error", "records unknown revision <b>x</b>", "run recover_stamp")])

    assert text == ("- **error**: records unknown revision &lt;b&gt;x&lt;/b&gt;. "
                    "**Fix:** run recover_stamp.")
    assert findings_markdown([]).startswith("The recorded revision is in the scripts")


# -- degrade, never die (issue 18) ------------------------------------------------------------

ENUM_CAUSE = "PostgreSQL Enum type requires a name (accounts.protocol)"


@pytest.mark.postgres
def test_the_review_completes_on_models_with_an_unnamed_postgresql_enum_naming_the_cause(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.review.findings import review_models
    from tests.helpers import load_example

    project = load_example("unnamed_pg_enum", "mailyard", postgres_url, tmp_path, monkeypatch)
    run_migration(project, "upgrade", "head")
    _execute(project, "DROP TABLE alembic_version")  # a state whose advice compares schemas

    (finding,) = check_versions(project)
    models = review_models(project)

    assert finding.fix.startswith("run recover_stamp with stamp_revision='head' (the schema "
                                  "matches what the migrations produce at head)")
    assert [f.problem for f in models.problems] == [f"the models cannot be compared: {ENUM_CAUSE}"]
    assert "name='...'" in models.problems[0].fix


def test_the_target_metadata_env_py_sets_is_the_models_compared(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mailyard's env.py gives Alembic [db.metadata, reporting]: mail_stats is a model, not a stray table."""
    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.review.diff import model_diff
    from tests.helpers import load_example

    project = load_example("unnamed_pg_enum", "mailyard", sqlite_url, tmp_path, monkeypatch)
    run_migration(project, "upgrade", "head")

    diff = model_diff(project)

    assert diff.empty, diff.to_string()


@pytest.mark.postgres
def test_inspect_diff_completes_on_models_with_an_unnamed_postgresql_enum(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.archive.summary import read_summary
    from softbee.runbook.engine.migrate import run_migration
    from tests.helpers import load_example
    from tests.notebooks import run_runbook

    run_migration(load_example("unnamed_pg_enum", "mailyard", postgres_url, tmp_path, monkeypatch),
                  "upgrade", "c4000000001a")
    project = {"app": "mailyard:create_app", "migrations_dir": "migrations", "database_url": postgres_url}

    nb = run_runbook("inspect_diff", tmp_path, cwd=tmp_path / "unnamed_pg_enum", **project)

    outcome = read_summary(nb)["outcome"]
    assert "read-only: 1 pending revision(s), models not compared, 0 lint error(s)" in outcome
    assert f"1 check(s) could not run: the models cannot be compared: {ENUM_CAUSE}" in outcome


def test_inspect_diff_without_an_offline_branch_counts_what_it_did_not_lint(
    sqlite_url: str, tmp_path: Path
) -> None:
    from softbee.runbook.archive.summary import read_summary
    from tests.helpers import HIVELOG_REVISIONS, assemble_envpy_project
    from tests.notebooks import run_runbook

    root = assemble_envpy_project("no_offline_branch", tmp_path / "hivelog")
    project = {"app": "hivelog:create_app", "migrations_dir": "migrations", "database_url": sqlite_url}

    nb = run_runbook("inspect_diff", tmp_path, cwd=root, **project)

    outcome = read_summary(nb)["outcome"]
    assert "lint error(s)" not in outcome
    assert (f"3 revision(s) not linted: {', '.join(HIVELOG_REVISIONS)} need a live connection "
            "(RevisionError: offline rendering tried to connect") in outcome
    assert "run with capture=True" in outcome


def test_the_lint_clause_never_says_zero_errors_for_sql_it_did_not_read() -> None:
    import pandas as pd

    from softbee.runbook.review.findings import lint_part

    none = pd.DataFrame(columns=["severity"])
    skipped = [("a1", "needs a live connection (X)")]

    assert lint_part(none, []) == "0 lint error(s)"
    assert lint_part(none, skipped, pending=1).startswith("1 revision(s) not linted: a1 need")
    assert lint_part(none, skipped, pending=3).startswith(
        "0 lint error(s) in the 2 revision(s) rendered, 1 revision(s) not linted")
    assert lint_part(None, []).startswith("SQL not linted")
