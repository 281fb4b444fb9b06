"""The four runbooks, executed with papermill on fresh SQLite, PostgreSQL and MariaDB databases.

Each test brings its database to a known revision in-process (plain Alembic through
the Soft-Bee app, plus seeded rows), runs one runbook as an engineer would, and then
checks two things: what the database holds afterwards (``alembic_version``, row
counts, columns and indexes read back with SQLAlchemy; every row, via
``tests.helpers.snapshot``, where nothing may change) and what the executed notebook
showed (the facts it recorded, its tables, the error it stopped on).

A refusal decided before any SQL runs (an unknown target, a vague message, a
database behind head, a destructive diff) runs on SQLite only: the suite stays
near 35 notebook executions of 3-5 s each.

MariaDB, where DDL commits as it runs, runs three notebooks, the ones that prove the
runbooks themselves work there: upgrade_downgrade from base with a round trip, a data-loss
downgrade refused before anything runs, and inspect_diff showing and linting MySQL's own
SQL. What the other runs promise is proved on MariaDB by the library's tests
(``tests/engine/test_guards.py``, ``tests/engine/test_stepwise.py``), a few seconds each instead of a kernel.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from nbformat import NotebookNode
from sqlalchemy.engine import Connection

from softbee.runbook.archive.summary import read_summary
from softbee.runbook.util.history_name import is_history_table, skip_runbook_tables
from softbee.seed import seed_database
from tests.helpers import (
    EXAMPLES,
    FULL_NAME,
    HEAD,
    INSPECTIONS,
    MIGRATIONS,
    REPO_ROOT,
    VARROA,
    is_mysql,
    snapshot,
)
from tests.notebooks import run_failing_runbook, run_runbook, shown, step_outputs, table_rows

pytestmark = pytest.mark.notebook

RUNBOOKS = REPO_ROOT / "runbooks"
OTHER_PROJECT = EXAMPLES / "other_project"

# The history, oldest first (migrations/versions/).
REVISIONS = [
    "1a0c5e7b2d01",  # create users
    "2b1d6f8c3e02",  # create apiaries and hives
    "3c2e7a9d4f03",  # email verification fields on users
    "4d3f8b0e5a04",  # create inspections
    "5e4a9c1f6b05",  # health status, queen year, hive type on hives
    "6f5b0d2a7c06",  # users.full_name, backfilled
    "7a6c1e3b8d07",  # inspections.varroa_mites_per_100 and its index
    "8b7d2f4c9e08",  # create treatments
]
assert REVISIONS[-1] == HEAD
MIDDLE = INSPECTIONS
VARROA_INDEX = "ix_inspections_varroa_mites_per_100"
SEED_ROWS = 200



# -- running a runbook ----------------------------------------------------------------------




def error_output(nb: NotebookNode) -> NotebookNode:
    """The error output the failed cell left in the notebook."""
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert len(errors) == 1, f"expected one error output, found {len(errors)}"
    return errors[0]


def failed_step(nb: NotebookNode) -> str:
    """The heading of the runbook step whose cell raised."""
    heading = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            heading = cell.source.strip()
        elif cell.cell_type == "code" and any(o.output_type == "error" for o in cell.outputs):
            return heading
    raise AssertionError("no cell raised")


# -- the database, read and prepared directly --------------------------------------------


@contextmanager
def connected(url: str) -> Iterator[Connection]:
    """A connection of our own, with the engine disposed afterwards."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def recorded_revision(url: str) -> str | None:
    """What ``alembic_version`` holds (None when the table is absent or empty)."""
    with connected(url) as conn:
        if "alembic_version" not in sa.inspect(conn).get_table_names():
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(rows) <= 1, f"several revisions recorded: {rows}"
    return rows[0] if rows else None


def row_counts(url: str) -> dict[str, int]:
    """Rows per table, ``alembic_version`` and the runbooks' history left out."""
    with connected(url) as conn:
        quote = conn.dialect.identifier_preparer.quote_identifier  # "t" is a string on MySQL
        tables = [t for t in sa.inspect(conn).get_table_names()
                  if t != "alembic_version" and not is_history_table(t)]
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {quote(t)}")).scalar_one()
                for t in tables}


def table_names(url: str) -> set[str]:
    """The database's tables, the runbooks' history left out (docs/history.md)."""
    with connected(url) as conn:
        return {t for t in sa.inspect(conn).get_table_names() if not is_history_table(t)}


def column_names(url: str, table: str) -> set[str]:
    with connected(url) as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def index_names(url: str, table: str) -> set[str]:
    with connected(url) as conn:
        return {i["name"] for i in sa.inspect(conn).get_indexes(table)}


def execute_sql(url: str, *statements: str) -> None:
    """Change the database by hand, as someone with a SQL prompt would."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def migrate_to(url: str, revision: str) -> None:
    """Upgrade to ``revision`` with plain Alembic through the Soft-Bee app (no runbook)."""
    from softbee import create_app

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        try:
            command.upgrade(app.extensions["migrate"].migrate.get_config(), revision)
        finally:
            app.extensions["sqlalchemy"].engine.dispose()
    assert recorded_revision(url) == revision


def seed(url: str, rows: int = SEED_ROWS) -> dict[str, int]:
    """Sample rows in every table present at the current revision; the counts afterwards."""
    engine = sa.create_engine(url)
    try:
        added = seed_database(engine, rows=rows, seed=7)
    finally:
        engine.dispose()
    assert added and all(n > 0 for n in added.values())
    return row_counts(url)


def model_differences(url: str) -> list[Any]:
    """What ``flask db check`` would report: Soft-Bee's models against the live database."""
    from softbee.db import db, import_models

    import_models()
    with connected(url) as conn:  # as Soft-Bee's Migrate(include_name=...): the runbooks' tables out
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_name": skip_runbook_tables()})
        return list(compare_metadata(context, db.metadata))


def version_files(migrations_dir: Path) -> set[str]:
    return {p.name for p in (migrations_dir / "versions").glob("*.py")}


REPO_VERSION_FILES = version_files(MIGRATIONS)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of migrations/ for generate_revision to write into; the repo's stays untouched."""
    copy = tmp_path / "migrations_copy"
    shutil.copytree(MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    yield copy
    assert version_files(MIGRATIONS) == REPO_VERSION_FILES, "a runbook wrote into migrations/"


# -- upgrade_downgrade ---------------------------------------------------------------------


def test_upgrade_from_a_middle_revision_to_head_keeps_every_row(
    database_url: str, tmp_path: Path
) -> None:
    migrate_to(database_url, MIDDLE)
    before = seed(database_url)

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=database_url)

    assert recorded_revision(database_url) == HEAD
    after = row_counts(database_url)
    assert after == {**before, "treatments": 0}
    assert "full_name" in column_names(database_url, "users")
    assert "varroa_mites_per_100" in column_names(database_url, "inspections")
    summary = read_summary(nb)
    assert summary["revision_before"] == MIDDLE
    assert summary["revision_after"] == HEAD
    recorded = {r["table"]: (r["before"], r["after"]) for r in summary["row_counts"]}
    assert recorded == {**{t: (n, n) for t, n in before.items()}, "treatments": (None, 0)}
    assert shown(step_outputs(nb, "## 2. Row counts before"), "text/html"), "no row-count table"
    assert shown(step_outputs(nb, "## 4. Row counts after"), "text/html"), "no row-count table"


def test_round_trip_ends_at_head_with_every_check_ok(database_url: str, tmp_path: Path) -> None:
    migrate_to(database_url, MIDDLE)
    before = seed(database_url)

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=database_url, round_trip=True)

    assert recorded_revision(database_url) == HEAD
    assert row_counts(database_url) == {**before, "treatments": 0}
    checks = [text for text in shown(step_outputs(nb, "## 5."), "text/plain")
              if "schema back at start" in text]
    assert len(checks) == 1, "the round-trip checks table was not shown"
    for name in ("schema back at start", "row counts back at start",
                 "schema after re-apply equals first apply",
                 "row counts after re-apply equal first apply"):
        assert name in checks[0]
    assert "False" not in checks[0]
    assert read_summary(nb)["revision_after"] == HEAD


@pytest.mark.mysql
def test_upgrade_from_base_with_a_round_trip_on_mariadb_ends_at_head_with_every_check_ok(
    mysql_url: str, tmp_path: Path
) -> None:
    """The notebook on a database whose DDL commits as it runs: revision by revision, both ways."""
    url = mysql_url

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=url, round_trip=True)

    assert recorded_revision(url) == HEAD
    assert table_names(url) == {"alembic_version", "users", "apiaries", "hives", "inspections",
                                "treatments"}
    assert "full_name" in column_names(url, "users")
    assert VARROA_INDEX in index_names(url, "inspections")
    assert set(row_counts(url).values()) == {0}
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == ("base", HEAD)
    assert summary["data_loss"] == [] and summary["rehearsal"] is False
    steps = table_rows(shown(step_outputs(nb, "## 3. Migrate"), "text/html")[0])
    assert [s["revision"] for s in steps] == REVISIONS + REVISIONS[::-1] + REVISIONS
    checks = [text for text in shown(step_outputs(nb, "## 5."), "text/plain")
              if "schema back at start" in text]
    assert len(checks) == 1 and "False" not in checks[0]


def test_downgrade_without_target_goes_one_step_down(database_url: str, tmp_path: Path) -> None:
    migrate_to(database_url, VARROA)
    before = seed(database_url)
    migrate_to(database_url, HEAD)  # treatments is created empty: dropping it loses nothing

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=database_url,
                     direction="downgrade")

    assert recorded_revision(database_url) == VARROA
    assert "treatments" not in table_names(database_url)
    assert row_counts(database_url) == before
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == (HEAD, VARROA)


def test_unknown_target_fails_at_preflight_and_changes_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    database_url = sqlite_url  # preflight refuses before any SQL runs: one dialect is enough
    migrate_to(database_url, MIDDLE)
    seed(database_url)
    before = snapshot(database_url)

    error, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=database_url,
                                    target="nope")

    assert error.ename == "RevisionError"
    assert "'nope'" in error.evalue
    assert error_output(nb).ename == "RevisionError"
    assert "'nope'" in error_output(nb).evalue
    assert failed_step(nb).startswith("## 1. Preflight")
    assert snapshot(database_url) == before


def test_rehearsal_leaves_revision_schema_and_rows_as_they_were(
    database_url: str, tmp_path: Path
) -> None:
    migrate_to(database_url, MIDDLE)
    seed(database_url)
    before = snapshot(database_url)

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=database_url, rehearse=True)

    assert snapshot(database_url) == before
    summary = read_summary(nb)
    assert summary["rehearsal"] is True
    assert summary["revision_after"] == MIDDLE
    assert f"would end at {HEAD}" in summary["outcome"]


def test_downgrade_dropping_full_name_with_values_is_refused(
    any_database_url: str, tmp_path: Path
) -> None:
    """Rolled back after the fact on SQLite and PostgreSQL; on MariaDB refused before it runs."""
    database_url = any_database_url
    migrate_to(database_url, FULL_NAME)
    seed(database_url)
    before = snapshot(database_url)

    error, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=database_url,
                                    direction="downgrade")

    assert error.ename == "DataLossError"
    assert "users.full_name" in error.evalue
    assert error_output(nb).ename == "DataLossError"
    assert failed_step(nb).startswith("## 3. Migrate")
    if is_mysql(database_url):
        assert "nothing was run" in error.evalue and "rolled back" not in error.evalue
    assert snapshot(database_url) == before
    assert recorded_revision(database_url) == FULL_NAME
    assert "full_name" in column_names(database_url, "users")


def test_downgrade_dropping_full_name_applies_with_allow_data_loss_and_lists_the_loss(
    database_url: str, tmp_path: Path
) -> None:
    migrate_to(database_url, FULL_NAME)
    before = seed(database_url)

    nb = run_runbook("upgrade_downgrade", tmp_path, database_url=database_url,
                     direction="downgrade", allow_data_loss=True)

    assert recorded_revision(database_url) == REVISIONS[REVISIONS.index(FULL_NAME) - 1]
    assert "full_name" not in column_names(database_url, "users")
    assert {"first_name", "last_name"} <= column_names(database_url, "users")
    assert row_counts(database_url) == before
    losses = read_summary(nb)["data_loss"]
    assert [(x["kind"], x["object"], x["lost"]) for x in losses] == [
        ("column dropped", "users.full_name", before["users"])
    ]


# -- inspect_diff ----------------------------------------------------------------------------


def test_inspect_diff_changes_nothing_and_shows_pending_revisions_sql_and_lint(
    any_database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL's SQL linted by squawk and our checks on SQLite and PostgreSQL; MySQL's own SQL
    by our checks alone on MariaDB, where squawk cannot parse it."""
    database_url = any_database_url
    migrate_to(database_url, MIDDLE)
    seed(database_url)
    before = snapshot(database_url)
    pending = len(REVISIONS) - REVISIONS.index(MIDDLE) - 1

    nb = run_runbook("inspect_diff", tmp_path, database_url=database_url)

    assert snapshot(database_url) == before
    summary = read_summary(nb)
    assert summary["revision_before"] == summary["revision_after"] == MIDDLE
    assert summary["outcome"].startswith(f"read-only: {pending} pending revision(s)")
    plan = step_outputs(nb, "## 2. Pending revisions")
    assert any(f": {pending} revision(s)" in text for text in shown(plan, "text/markdown"))
    assert all(rev in "".join(shown(plan, "text/html")) for rev in REVISIONS[-pending:])
    sql = "".join(shown(step_outputs(nb, "## 4. The SQL that will run"), "text/markdown"))
    assert "ALTER TABLE users ADD COLUMN full_name" in sql
    assert "CREATE TABLE treatments" in sql
    findings = table_rows(shown(step_outputs(nb, "## 5. Lint findings"), "text/html")[0])
    backfill = [(f["rule"], f["object"]) for f in findings if f["severity"] != "info"
                or f["rule"] == "set-not-null-after-backfill"]
    if is_mysql(database_url):
        # MySQL's own SQL, what will run: concat() and MODIFY, not PostgreSQL's || and SET NOT NULL
        assert "Rendered for **mysql**" in sql
        assert "concat(users.first_name" in sql and "MODIFY full_name VARCHAR(200) NOT NULL" in sql
        assert "SET NOT NULL" not in sql and "||" not in sql
        assert [f["rule"] for f in findings if f["source"] == "squawk"] == ["squawk-skipped"]
    else:
        # Rendered for PostgreSQL on SQLite too (its batch revisions cannot render offline).
        assert "Rendered for **postgresql**" in sql and "SET NOT NULL" in sql
        assert "squawk-skipped" not in {f["rule"] for f in findings}
    # The full_name fill and NOT NULL are online phases, listed as such: the forms lint asks for.
    assert backfill == []
    assert "-- softbee-runbook phase 2/3 (online on PostgreSQL): backfill users.full_name" in sql


def test_inspect_diff_lints_the_pending_sql_and_recognises_the_backfill_pattern(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Pending at 4d3f8b0e5a04, on tables with rows: users.full_name is added nullable, filled,
    then made NOT NULL (the guide's pattern) as online phases: the runbook lists the phases,
    and lint finds nothing to say about the forms it would point to."""
    migrate_to(sqlite_url, MIDDLE)
    seed(sqlite_url)

    nb = run_runbook("inspect_diff", tmp_path, database_url=sqlite_url)

    findings = table_rows(shown(step_outputs(nb, "## 5. Lint findings"), "text/html")[0])
    about_full_name = {f["rule"] for f in findings if f["object"] == "users.full_name"}
    assert not about_full_name & {"not-null-without-default", "set-not-null",
                                  "set-not-null-after-backfill", "full-table-update"}
    text = json.dumps(nb)
    assert "Phases of the online revisions" in text and "backfill users.full_name" in text


UNKNOWN_REVISION = "deadbeef0042"


@pytest.mark.parametrize(
    ("statements", "problem", "fix"),
    [
        pytest.param(
            [f"UPDATE alembic_version SET version_num = '{UNKNOWN_REVISION}'",
             "ALTER TABLE hives ADD COLUMN legacy_note VARCHAR(20)"],
            f"records unknown revision {UNKNOWN_REVISION}",
            "run recover_stamp with purge=True",
            id="unknown-recorded-revision",
        ),
        pytest.param(
            [f"INSERT INTO alembic_version (version_num) VALUES ('{FULL_NAME}')",
             "ALTER TABLE hives ADD COLUMN legacy_note VARCHAR(20)"],
            "records 2 revisions",
            "run recover_stamp with purge=True",
            id="several-recorded-revisions",
        ),
        pytest.param(
            ["DROP TABLE alembic_version", "ALTER TABLE hives ADD COLUMN legacy_note VARCHAR(20)"],
            "has no alembic_version table but 5 other table(s)",
            "run recover_stamp with stamp_revision set to the revision the schema matches",
            id="no-version-table",
        ),
    ],
)
def test_inspect_diff_diagnoses_a_broken_version_state_and_still_diffs_and_lints(
    sqlite_url: str, tmp_path: Path, statements: list[str], problem: str, fix: str
) -> None:
    """The state is shown with the runbook that fixes it; the model diff and lint still run.

    Every case also carries a hand-added column (``hives.legacy_note``), so the model diff
    has a row and lint has a finding to prove it ran."""
    migrate_to(sqlite_url, HEAD)
    seed(sqlite_url)
    with connected(sqlite_url) as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        conn.commit()
    before = snapshot(sqlite_url)

    nb = run_runbook("inspect_diff", tmp_path, database_url=sqlite_url)

    assert snapshot(sqlite_url) == before
    finding, drift = shown(step_outputs(nb, "## 1. Current revision"), "text/markdown")
    assert finding.startswith(f"- **error**: {problem}")
    # Drift needs one recorded, known revision: a broken state is said, never drift (issue 19).
    assert drift.startswith("**Drift:** drift could not be checked: ")
    assert f"**Fix:** {fix}" in finding
    diff = table_rows(shown(step_outputs(nb, "## 3. Models vs database"), "text/html")[0])
    assert [(d["operation"], d["table"], d["column"]) for d in diff] == [
        ("remove_column", "hives", "legacy_note")]
    lint = table_rows(shown(step_outputs(nb, "## 5. Lint findings"), "text/html")[0])
    assert {(f["rule"], f["object"]) for f in lint} >= {("drop-column", "hives.legacy_note")}
    summary = read_summary(nb)
    (recorded,) = summary["state_problems"]
    assert recorded.startswith(problem) and f": {fix}" in recorded
    assert summary["outcome"].endswith("1 model difference(s), 1 lint error(s), "
                                       "1 finding(s) on the recorded state")


def test_inspect_diff_on_an_unknown_recorded_revision_completes_without_a_plan(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The issue's case: it used to stop at step 2 on Alembic's ResolutionError."""
    migrate_to(sqlite_url, HEAD)
    with connected(sqlite_url) as conn:
        conn.execute(sa.text(f"UPDATE alembic_version SET version_num = '{UNKNOWN_REVISION}'"))
        conn.commit()

    nb = run_runbook("inspect_diff", tmp_path, database_url=sqlite_url)

    plan = "".join(shown(step_outputs(nb, "## 2. Pending revisions"), "text/markdown"))
    assert plan.startswith("**No plan:**")
    sql = "".join(shown(step_outputs(nb, "## 4. The SQL"), "text/markdown"))
    assert sql == "No SQL: there is no plan (step 2)."
    summary = read_summary(nb)
    assert summary["revision_before"] == summary["revision_after"] == UNKNOWN_REVISION
    assert summary["outcome"] == ("read-only: no plan, 0 model difference(s), 0 lint error(s), "
                                  "1 finding(s) on the recorded state")
    (problem,) = summary["state_problems"]
    assert problem.startswith(
        f"records unknown revision {UNKNOWN_REVISION}: it is not in migrations/ (a revision "
        "deleted, or applied from another branch): run recover_stamp with purge=True and "
        "stamp_revision='head' (the schema matches what the migrations produce at head): "
        "`` softbee-runbook run recover_stamp -p app softbee:create_app -p migrations_dir ")


def test_runbook_runs_with_the_kernel_in_the_runbooks_folder_as_jupyterlab_starts_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JupyterLab starts a notebook's kernel in the notebook's folder; `make lab` sets
    SOFTBEE_PROJECT_ROOT so "migrations" still means the project's migrations/."""
    monkeypatch.setenv("SOFTBEE_PROJECT_ROOT", str(REPO_ROOT))

    run_runbook("upgrade_downgrade", tmp_path, cwd=RUNBOOKS, database_url=sqlite_url)

    assert recorded_revision(sqlite_url) == HEAD


# -- generate_revision -----------------------------------------------------------------------


def test_generate_revision_at_head_with_matching_models_writes_nothing(
    database_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    migrate_to(database_url, HEAD)
    files = version_files(migrations_copy)

    nb = run_runbook("generate_revision", tmp_path, database_url=database_url,
                     migrations_dir=str(migrations_copy), message="Add hive weight to inspections")

    assert version_files(migrations_copy) == files
    assert recorded_revision(database_url) == HEAD
    summary = read_summary(nb)
    assert "nothing written" in summary["outcome"]
    assert summary["revision_file"] is None


def test_generate_revision_refuses_a_database_behind_head(
    sqlite_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    migrate_to(sqlite_url, VARROA)
    files = version_files(migrations_copy)

    error, _ = run_failing_runbook("generate_revision", tmp_path, database_url=sqlite_url,
                                   migrations_dir=str(migrations_copy),
                                   message="Add hive weight to inspections")

    assert error.ename == "NotAtHead"
    assert VARROA in error.evalue and HEAD in error.evalue
    assert version_files(migrations_copy) == files
    assert recorded_revision(sqlite_url) == VARROA


def test_generate_revision_refuses_a_vague_message(
    sqlite_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    migrate_to(sqlite_url, HEAD)
    # A real model diff, so only the message can stop the run.
    execute_sql(sqlite_url, f"DROP INDEX {VARROA_INDEX}")
    files = version_files(migrations_copy)

    error, _ = run_failing_runbook("generate_revision", tmp_path, database_url=sqlite_url,
                                   migrations_dir=str(migrations_copy), message="Update database")

    assert error.ename == "ParameterError"
    assert "too vague" in error.evalue
    assert version_files(migrations_copy) == files


def test_generate_revision_writes_one_file_creating_the_missing_index(
    database_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    migrate_to(database_url, HEAD)
    execute_sql(database_url, f"DROP INDEX {VARROA_INDEX}")
    files = version_files(migrations_copy)

    nb = run_runbook("generate_revision", tmp_path, database_url=database_url,
                     migrations_dir=str(migrations_copy), message="Add index on varroa mite counts")

    new = version_files(migrations_copy) - files
    assert len(new) == 1, f"expected one new revision file, got {sorted(new)}"
    assert version_files(migrations_copy) >= files
    path = migrations_copy / "versions" / new.pop()
    source = path.read_text(encoding="utf-8")
    assert "create_index" in source and VARROA_INDEX in source
    assert f"down_revision = '{HEAD}'" in source
    assert read_summary(nb)["revision_file"] == str(path)
    assert any(str(path) in text for text in shown(step_outputs(nb, "## 6."), "text/markdown"))
    # Writing a revision does not apply it.
    assert recorded_revision(database_url) == HEAD
    assert VARROA_INDEX not in index_names(database_url, "inspections")


def test_generate_revision_refuses_a_destructive_diff_and_writes_nothing(
    sqlite_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    database_url = sqlite_url  # the refusal is decided on the diff table: one dialect is enough
    migrate_to(database_url, HEAD)
    # A table no model knows: autogenerate proposes remove_table for it.
    execute_sql(database_url, "CREATE TABLE hive_scales (id INTEGER PRIMARY KEY, grams INTEGER)")
    files = version_files(migrations_copy)

    error, _ = run_failing_runbook("generate_revision", tmp_path, database_url=database_url,
                                   migrations_dir=str(migrations_copy),
                                   message="Add hive weight to inspections")

    assert error.ename == "DestructiveChange"
    assert "remove_table hive_scales" in error.evalue
    assert version_files(migrations_copy) == files
    assert "hive_scales" in table_names(database_url)


# -- any Flask-Migrate project ---------------------------------------------------------------


def test_upgrade_runbook_migrates_another_flask_migrate_project(
    sqlite_url: str, tmp_path: Path
) -> None:
    nb = run_runbook("upgrade_downgrade", tmp_path, cwd=OTHER_PROJECT, app="beeyard:app",
                     migrations_dir="migrations", database_url=sqlite_url)

    assert recorded_revision(sqlite_url) == "c0ffee000002"
    assert table_names(sqlite_url) == {"alembic_version", "yards"}
    assert column_names(sqlite_url, "yards") == {"id", "name", "forage"}
    summary = read_summary(nb)
    assert (summary["revision_before"], summary["revision_after"]) == ("base", "c0ffee000002")
