"""drift: the live schema against the schema its recorded revision produces, one line per difference."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import DriftError
from softbee.runbook.project import load_project
from softbee.runbook.review import drift as drift_module
from softbee.runbook.review.drift import check_drift, drift_gate, drift_lines
from softbee.runbook.review.expected import SKIPPED, SchemaSnapshot
from tests.helpers import EXAMPLES as EXAMPLES_DIR
from tests.helpers import HEAD, VARROA, assemble_envpy_project, is_mysql, project_at

DROPPED_INDEX = "ix_inspections_varroa_mites_per_100"
THREE_CHANGES = [
    "column apiaries.name nullable: revision NOT NULL, database NULL",
    "column users.nickname not in any revision",
    f"index {DROPPED_INDEX} on inspections missing",
]


def change_by_hand(url: str) -> None:
    """Drop an index, add a column and make a column nullable, as someone in psql would."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            on = " ON inspections" if is_mysql(url) else ""
            conn.exec_driver_sql(f"DROP INDEX {DROPPED_INDEX}{on}")
            conn.exec_driver_sql("ALTER TABLE users ADD COLUMN nickname VARCHAR(40)")
            with Operations.context(MigrationContext.configure(conn)) as op:
                with op.batch_alter_table("apiaries") as batch:  # SQLite: a table rebuild
                    batch.alter_column("name", existing_type=sa.String(120), nullable=True)
    finally:
        engine.dispose()


def test_drift_names_exactly_a_dropped_index_an_added_column_and_a_nullability(
    any_database_url: str,
) -> None:
    project = project_at(any_database_url, HEAD)
    clean = check_drift(project)
    assert clean.checked, clean.error
    assert clean.lines == () and not clean.drifted
    assert clean.message().startswith(f"no drift: the schema is what revision {HEAD} produces")

    change_by_hand(any_database_url)
    found = check_drift(project)

    assert sorted(found.lines) == THREE_CHANGES
    assert found.revision == HEAD
    assert found.message().startswith(f"drift from revision {HEAD} in 3 place(s): ")


def test_below_head_drift_is_against_the_recorded_revision_not_head(database_url: str) -> None:
    project = project_at(database_url, VARROA)  # the revisions above it are not drift

    assert check_drift(project).lines == ()


def test_the_gate_refuses_a_drifted_database_unless_allowed(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    assert drift_gate(project).lines == ()
    change_by_hand(database_url)

    with pytest.raises(DriftError, match="allow_drift=True") as refused:
        drift_gate(project)

    assert sorted(refused.value.lines) == THREE_CHANGES
    assert len(str(refused.value).splitlines()) == 1
    assert drift_gate(project, allow_drift=True).drifted


def test_a_check_that_cannot_run_is_a_finding_not_a_crash(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_at(sqlite_url, HEAD)

    def broken(*_args: object, **_kwargs: object) -> SchemaSnapshot:
        raise PermissionError("no right to create a scratch database")

    monkeypatch.setattr(drift_module, "expected_schema", broken)
    found = check_drift(project)
    gate = drift_gate(project)  # lets the run go on, saying why

    assert not found.checked and not found.drifted
    assert found.error == ("drift could not be checked: PermissionError: no right to create a "
                           "scratch database")
    assert gate.error == found.error


def test_the_runbooks_own_tables_are_never_drift(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        for table in sorted(SKIPPED - {"alembic_version"}):
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY)")
    engine.dispose()

    assert check_drift(project).lines == ()


def test_harmless_spellings_are_not_drift() -> None:
    want = SchemaSnapshot("revision a", "postgresql", tables={"t": {
        "column n": "INTEGER NOT NULL DEFAULT (0)", "column s": "CHARACTER VARYING(20)",
        "check t_n_check": "(n > 0)", "unique (s)": "t_s_key",
        "foreign key (n)": "REFERENCES u (id)"}})
    live = SchemaSnapshot("the database", "postgresql", tables={"t": {
        "column n": "INT NOT NULL DEFAULT 0", "column s": "VARCHAR(20)",
        "check ck_1": "n > 0", "unique (s)": "uq_t_s", "foreign key (n)": "REFERENCES  u (id)"}})

    assert drift_lines(live, want) == []


def test_each_kind_of_difference_is_one_line() -> None:
    want = SchemaSnapshot("revision a", "postgresql", tables={
        "t": {"column n": "INTEGER NOT NULL DEFAULT 0", "index ix_t_n": "(n)",
              "check ck": "n > 0", "foreign key (n)": "REFERENCES u (id)"},
        "gone": {"column id": "INTEGER NOT NULL"}}, enums={"mood": "'calm', 'angry'"})
    live = SchemaSnapshot("the database", "postgresql", tables={
        "t": {"column n": "BIGINT DEFAULT 1", "index ix_t_n": "(n) UNIQUE",
              "foreign key (n)": "REFERENCES u (id) ONDELETE CASCADE"},
        "extra": {"column id": "INTEGER NOT NULL"}}, enums={"mood": "'calm'"})

    assert drift_lines(live, want) == [
        "enum type mood values: revision 'calm', 'angry', database 'calm'",
        "table extra not in any revision",
        "table gone missing",
        "check (n > 0) on t missing",
        "column t.n type: revision INTEGER, database BIGINT",
        "column t.n nullable: revision NOT NULL, database NULL",
        "column t.n default: revision 0, database 1",
        "foreign key (n) on t: revision REFERENCES u (id), database REFERENCES u (id) "
        "ONDELETE CASCADE",
        "index ix_t_n on t: revision (n), database (n) UNIQUE",
    ]


# -- zero false positives: a freshly migrated database has no drift ----------------------------

EXAMPLES = [  # (the example, its app package, the app as the runbooks are given it)
    ("enum_change", "swarmlog", "swarmlog:app"),
    ("history_quirks", "swarmlog", "swarmlog:create_app"),
    ("models_drift_from_migrations", "driftyard", "driftyard:create_app"),
    ("native_autocommit_block", "combs", "combs:app"),
    ("other_project", "beeyard", "beeyard:app"),
    ("revision_reads_current_app", "broodbox", "broodbox:create_app"),
    ("unnamed_pg_enum", "mailyard", "mailyard:create_app"),
]


def load_shape(root: Path, package: str, app: str, url: str, monkeypatch: pytest.MonkeyPatch):
    """The project at ``root`` (its app package ``package`` imported afresh) on ``url``."""
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [str(root), *sys.path])
    monkeypatch.chdir(root)
    return load_project(app, "migrations", url)


@pytest.mark.parametrize(("shape", "package", "app"), EXAMPLES)
def test_a_freshly_migrated_example_has_no_drift(
    shape: str, package: str, app: str, any_database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shape == "history_quirks" and any_database_url.startswith("sqlite"):
        pytest.skip("history_quirks is for PostgreSQL and MariaDB: b8000000002b cannot run on SQLite")
    shutil.copytree(EXAMPLES_DIR / shape, tmp_path / shape,
                    ignore=shutil.ignore_patterns("__pycache__"))
    project = load_shape(tmp_path / shape, package, app, any_database_url, monkeypatch)
    run_migration(project, "upgrade", "head")

    found = check_drift(project)

    assert found.checked, found.error
    assert found.lines == ()


@pytest.mark.parametrize("shape", ["flask_migrate_4x", "alembic_generic"])
def test_a_freshly_migrated_envpy_shape_has_no_drift(
    shape: str, any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = assemble_envpy_project(shape, tmp_path / f"hivelog_{shape}")
    project = load_shape(root, "hivelog", "hivelog:create_app", any_database_url, monkeypatch)
    run_migration(project, "upgrade", "head")

    found = check_drift(project)

    assert found.checked, found.error
    assert found.lines == ()


def test_tables_without_a_recorded_revision_are_a_state_problem_not_drift(sqlite_url: str) -> None:
    project = project_at(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE hives (id INTEGER PRIMARY KEY)")
    engine.dispose()

    found = check_drift(project)

    assert not found.checked and not found.drifted
    assert found.error == ("drift could not be checked: the database records no revision but has "
                           "1 table(s); stamp the revision it is at (recover_stamp) first")
    assert check_drift(project_at(f"sqlite:///{Path(sqlite_url[10:]).parent / 'empty.db'}")).lines == ()
