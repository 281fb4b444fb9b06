"""Reading SQL types as text, and which changes can lose values."""

from __future__ import annotations

import pytest

from softbee.runbook.util.sqltypes import parse_type, type_narrowing


@pytest.mark.parametrize(
    ("text", "family", "size"),
    [("VARCHAR(50)", "string", 50), ("String(length=50)", "string", 50), ("TEXT", "string", None),
     ("NUMERIC(10, 2)", "numeric", 10), ("TIMESTAMP WITHOUT TIME ZONE", "timestamp", None)],
)
def test_types_are_read_from_what_alembic_and_sqlalchemy_print(text: str, family: str, size: int | None) -> None:
    parsed = parse_type(text)
    assert parsed is not None and (parsed.family, parsed.size) == (family, size)


@pytest.mark.parametrize(
    ("old", "new", "narrows"),
    [("VARCHAR(200)", "VARCHAR(50)", True), ("VARCHAR(50)", "TEXT", False),
     ("BIGINT", "INTEGER", True), ("INTEGER", "BIGINT", False),
     ("NUMERIC(10, 2)", "NUMERIC(6, 2)", True), ("INTEGER", "NUMERIC(12, 2)", False),
     ("TIMESTAMP", "DATE", True), ("DATE", "TIMESTAMP", False), ("TEXT", "INTEGER", True)],
)
def test_narrowing_names_changes_that_can_lose_values(old: str, new: str, narrows: bool) -> None:
    assert (type_narrowing(old, new) is not None) is narrows


def test_an_unreadable_type_is_not_called_narrowing() -> None:
    assert type_narrowing("GEOMETRY(POINT, 4326)", "VARCHAR(10)") is None
