"""expected: the schema a revision produces (a migrated scratch database, cached) and schema comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.review import expected
from softbee.runbook.review.expected import (
    SchemaSnapshot,
    compare_schemas,
    expected_schema,
    model_drift,
    reflect_schema,
)
from tests.helpers import load_example

DRIFT_HEAD = "d3000000002b"


def test_compare_schemas_says_each_difference_in_one_line() -> None:
    live = SchemaSnapshot("the database", "postgresql", tables={
        "hives": {"column id": "INTEGER NOT NULL", "column name": "VARCHAR(80)",
                  "column nickname": "VARCHAR(40)"},
        "legacy": {"column id": "INTEGER NOT NULL"}})
    want = SchemaSnapshot("revision abc", "postgresql", tables={
        "hives": {"column id": "INTEGER NOT NULL", "column name": "VARCHAR(80) NOT NULL",
                  "index ix_hives_apiary_id": "(apiary_id)"}},
        enums={"mail_protocol": "'imap', 'pop3'"})

    lines = [str(d) for d in compare_schemas(live, want)]

    assert lines == [
        "enum type mail_protocol missing from the database",
        "column hives.name: VARCHAR(80) NOT NULL in revision abc, VARCHAR(80) in the database",
        "column hives.nickname not in revision abc",
        "index ix_hives_apiary_id on hives missing from the database",
        "table legacy not in revision abc",
    ]
    assert compare_schemas(want, want) == []


def test_the_expected_schema_is_the_migrations_not_the_models_and_is_cached(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_example("models_drift_from_migrations", "driftyard", database_url, tmp_path,
                           monkeypatch)
    run_migration(project, "upgrade", "head")

    first = expected_schema(project, "head")
    with project.connect() as conn:
        live = reflect_schema(conn)

    assert compare_schemas(live, first) == []
    assert "column nickname" not in first.tables["hives"]  # a model column no revision creates
    assert list((tmp_path / "schema-cache").glob("*.json"))
    monkeypatch.setattr(expected, "scratch_database", None)  # a second call builds nothing
    assert expected_schema(project, DRIFT_HEAD) == first


def test_the_models_drift_from_the_migrations_is_listed_place_by_place(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_example("models_drift_from_migrations", "driftyard", database_url, tmp_path,
                           monkeypatch)
    with project.connect() as conn:
        metadata = project.target_metadata(conn)

    lines = sorted(str(d) for d in model_drift(project, metadata))

    assert len(lines) == 3, lines
    assert lines[0].startswith(f"column apiaries.name: VARCHAR(80) in revision {DRIFT_HEAD}, ")
    assert lines[1] == f"column hives.nickname not in revision {DRIFT_HEAD}"
    assert lines[2] == f"index ix_hives_apiary_id on hives not in revision {DRIFT_HEAD}"
