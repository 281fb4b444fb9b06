"""The model-vs-database diff as a table, with destructive operations marked."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.project import load_project
from softbee.runbook.review.diff import (
    destructive_rows,
    diff_frame,
    is_narrowing,
    model_diff,
)
from tests.helpers import EXAMPLES, HEAD, VARROA, project_at


def test_database_at_head_matches_the_models(database_url: str) -> None:
    assert model_diff(project_at(database_url, HEAD)).empty


def test_database_behind_head_shows_the_missing_table_and_column(database_url: str) -> None:
    frame = model_diff(project_at(database_url, "6f5b0d2a7c06"))
    ops = set(zip(frame["operation"], frame["table"], frame["column"].fillna(""), strict=True))
    assert ("add_table", "treatments", "") in ops
    assert ("add_column", "inspections", "varroa_mites_per_100") in ops
    assert destructive_rows(frame).empty


def test_table_unknown_to_the_models_is_a_destructive_remove(database_url: str) -> None:
    project = project_at(database_url, HEAD)
    with project.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY)")
        conn.commit()
    destructive = destructive_rows(model_diff(project))
    assert list(destructive["operation"]) == ["remove_table"]
    assert list(destructive["table"]) == ["scratch_notes"]


def test_narrowing_types_are_destructive_and_widening_is_not() -> None:
    assert is_narrowing(sa.String(200), sa.String(50))
    assert not is_narrowing(sa.String(50), sa.String(200))
    assert is_narrowing(sa.BigInteger(), sa.Integer())
    assert not is_narrowing(sa.Integer(), sa.BigInteger())
    assert is_narrowing(sa.Text(), sa.Integer())


def test_a_missing_table_comes_with_its_index(sqlite_url: str) -> None:
    frame = model_diff(project_at(sqlite_url, VARROA))
    assert list(zip(frame["operation"], frame["table"], strict=True)) == [
        ("add_table", "treatments"), ("add_index", "treatments")]
    assert frame["detail"].iloc[1] == "ix_treatments_hive_id"


def test_lint_of_the_model_diff_flags_only_not_null_columns_without_a_server_default(
    sqlite_url: str,
) -> None:
    from softbee.runbook.review.counts import row_counts
    from softbee.runbook.review.lint import lint_diff

    project = project_at(sqlite_url, "4d3f8b0e5a04", rows=100)
    with project.connect() as conn:
        findings = lint_diff(model_diff(project, conn), row_counts(conn))
    flagged = set(findings[findings["rule"] == "not-null-without-default"]["object"])
    # hives.hive_type and hives.health_status have server defaults; users.full_name has none.
    assert flagged == {"users.full_name"}


def test_numeric_narrowing_is_destructive_like_lint_says() -> None:
    assert is_narrowing(sa.Numeric(10, 2), sa.Numeric(6, 2))
    assert is_narrowing(sa.BigInteger(), sa.Float())
    assert is_narrowing(sa.Integer(), sa.Numeric(4, 2))
    assert not is_narrowing(sa.Integer(), sa.Numeric(12, 2))


ENUM_CHANGE = EXAMPLES / "enum_change"


def test_an_enum_change_shows_its_values_not_a_varchar(
    mysql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: on MariaDB the diff said VARCHAR(9) -> VARCHAR(9); it names the values."""
    root = tmp_path / "enum_change"
    shutil.copytree(ENUM_CHANGE, root)
    # history_quirks has a swarmlog package too: this test must import its own, not that one.
    for name in [m for m in sys.modules if m == "swarmlog" or m.startswith("swarmlog.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(root)
    project = load_project("swarmlog:app", "migrations", mysql_url)
    run_migration(project, "upgrade", "head")

    frame = model_diff(project)

    rows = frame[frame["operation"] == "modify_type"]
    assert list(rows["detail"]) == [
        "ENUM('active', 'queenless') -> ENUM('active', 'queenless', 'dead')"], frame
    assert not rows["destructive"].any()  # a value added: every stored value still fits


def test_an_enum_losing_a_value_is_destructive() -> None:
    old, new = sa.Enum("active", "queenless", "dead"), sa.Enum("active", "queenless")
    frame = diff_frame([("modify_type", None, "colonies", "status", {}, old, new)])
    assert list(frame["detail"]) == [
        "ENUM('active', 'queenless', 'dead') -> ENUM('active', 'queenless')"]
    assert list(frame["destructive"]) == [True]
