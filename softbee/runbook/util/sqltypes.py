"""SQL column types as text: their family and size, and whether a change can lose values.

Reads the forms Alembic and SQLAlchemy print (``VARCHAR(50)``, ``NUMERIC(10, 2)``,
``String(length=50)``, ``TIMESTAMP WITHOUT TIME ZONE``...). Used by lint and by the
model diff, so both call the same changes narrowing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from softbee.runbook.util.sqltext import one_line


@dataclass(frozen=True)
class SqlType:
    """A column type reduced to what decides whether values fit."""

    family: str
    rank: int = 0  # integers and floats: storage size order; timestamps: 2 with time zone
    size: int | None = None  # string length or numeric precision; None: unbounded
    scale: int | None = None
    values: tuple[str, ...] | None = None  # an ENUM's values


def type_text(type_: Any) -> str:
    """A column type as SQL text; an ENUM with its values (SQLAlchemy prints it as a VARCHAR)."""
    enums = getattr(type_, "enums", None)
    if enums:
        return "ENUM(" + ", ".join(_quote_value(value) for value in enums) + ")"
    return str(type_)


def _quote_value(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _family(rank: int, family: str, *names: str) -> dict[str, tuple[str, int]]:
    return dict.fromkeys(names, (family, rank))


_FAMILIES: dict[str, tuple[str, int]] = {
    **_family(0, "string", "VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER", "NCHAR",
              "NVARCHAR", "TEXT", "STRING", "UNICODE", "UNICODETEXT", "CITEXT", "CLOB"),
    **_family(1, "integer", "SMALLINT", "INT2", "SMALLINTEGER", "SMALLSERIAL"),
    **_family(2, "integer", "INTEGER", "INT", "INT4", "SERIAL"),
    **_family(3, "integer", "BIGINT", "INT8", "BIGINTEGER", "BIGSERIAL"),
    **_family(0, "numeric", "NUMERIC", "DECIMAL"),
    **_family(1, "float", "REAL", "FLOAT4"),
    **_family(2, "float", "DOUBLE PRECISION", "DOUBLE", "DOUBLE_PRECISION", "FLOAT8", "FLOAT"),
    **_family(0, "boolean", "BOOLEAN", "BOOL"),
    **_family(1, "timestamp", "TIMESTAMP", "DATETIME", "TIMESTAMP WITHOUT TIME ZONE"),
    **_family(2, "timestamp", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
    **_family(0, "date", "DATE"),
    **_family(0, "time", "TIME", "TIMETZ", "TIME WITHOUT TIME ZONE", "TIME WITH TIME ZONE"),
    **_family(0, "json", "JSON", "JSONB"),
    **_family(0, "binary", "BYTEA", "LARGEBINARY", "BLOB", "BINARY", "VARBINARY"),
}
_UNBOUNDED_STRINGS = {"TEXT", "UNICODETEXT", "CLOB", "CITEXT"}
_INT_DIGITS = {1: 5, 2: 10, 3: 19}


def parse_type(text: str) -> SqlType | None:
    """``VARCHAR(50)``, ``NUMERIC(10, 2)``, ``String(length=50)``... as family and size."""
    args = m[1] if (m := re.search(r"\(([^)]*)\)", text)) else ""
    if re.match(r"\s*ENUM\s*\(", text, re.I):
        return SqlType("enum", values=tuple(v.replace("''", "'") for v in
                                            re.findall(r"'((?:[^']|'')*)'", args)))
    name = one_line(re.sub(r"\([^)]*\)|\[\]", " ", text)).upper()
    name = re.split(r"\s+(?:NOT\s+NULL|NULL|DEFAULT|COLLATE)\b|,", name)[0].strip()
    if not re.fullmatch(r"[A-Z_][A-Z_0-9 ]*", name):
        return None
    if re.search(r"timezone\s*=\s*True", args, re.IGNORECASE):
        name = "TIMESTAMPTZ"
    family, rank = _FAMILIES.get(name, (name.lower(), 0))
    numbers = [int(x) for x in re.findall(r"(?<![\w.])\d+", args)]
    if family == "string":
        size = None if name in _UNBOUNDED_STRINGS or not numbers else numbers[0]
        return SqlType(family, size=size)
    if family == "numeric":
        if not numbers:
            return SqlType(family)
        return SqlType(family, size=numbers[0], scale=numbers[1] if len(numbers) > 1 else 0)
    if name == "FLOAT" and numbers:
        rank = 1 if numbers[0] <= 24 else 2
    return SqlType(family, rank=rank)


def compatible(old: SqlType | None, new: SqlType | None) -> bool:
    return old is None or new is None or old.family == new.family


def type_narrowing(old: str, new: str) -> str | None:
    """Why changing a column from SQL type ``old`` to ``new`` can lose values (None: safe or unknown)."""
    parsed_old, parsed_new = parse_type(old), parse_type(new)
    if parsed_old is None or parsed_new is None:
        return None
    return narrowing(parsed_old, parsed_new)


def narrowing(old: SqlType, new: SqlType) -> str | None:
    """Why ``old -> new`` can lose or reject existing values; None when every value fits."""
    if new.family == "string":
        if old.family == "string" and new.size is not None and (
            old.size is None or new.size < old.size
        ):
            return f"max length {old.size or 'unlimited'} -> {new.size}"
        return None
    if old.family == new.family == "enum":
        gone = [value for value in old.values or () if value not in (new.values or ())]
        return f"values {', '.join(gone)} no longer allowed" if gone else None
    if old.family == new.family:
        if new.family in {"integer", "float"} and new.rank < old.rank:
            return "smaller range"
        if new.family == "numeric" and new.size is not None:
            if old.size is None:
                return "unbounded precision -> bounded"
            old_scale, new_scale = old.scale or 0, new.scale or 0
            if new_scale < old_scale or new.size - new_scale < old.size - old_scale:
                return "fewer digits"
        return None
    if old.family == "integer" and new.family == "numeric":
        fits = new.size is None or new.size - (new.scale or 0) >= _INT_DIGITS[old.rank]
        return None if fits else "fewer integer digits"
    if old.family == "integer" and new.family == "float":
        return "large integers lose precision" if old.rank > new.rank else None
    if {old.family, new.family} <= {"integer", "numeric", "float"}:
        return f"{old.family} -> {new.family} rounds or rejects values"
    if old.family == "timestamp" and new.family in {"date", "time"}:
        return f"drops the {'time' if new.family == 'date' else 'date'} part"
    if old.family == "date" and new.family == "timestamp":
        return None
    return f"{old.family} -> {new.family}: values that do not convert make it fail"
