"""Models versus database: Alembic's ``compare_metadata`` as a table, destructive rows marked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from softbee.runbook.online.phases import PHASE_TABLE
from softbee.runbook.project import Project
from softbee.runbook.review.counts import SKIPPED_TABLES, has_rows
from softbee.runbook.util.history_name import is_history_table
from softbee.runbook.util.sqltypes import type_narrowing, type_text

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd

DIFF_COLUMNS = ["operation", "table", "column", "detail", "destructive"]

# Options of the project's context.configure() that also shape a comparison.
_COMPARE_OPTS = (
    "compare_type",
    "compare_server_default",
    "include_object",
    "include_name",
    "include_schemas",
    "render_as_batch",
    "version_table",
    "version_table_schema",
)


def raw_diffs(project: Project, connection: Connection | None = None) -> list[Any]:
    """Alembic's diff list between the project's models and the live database."""
    if connection is None:
        with project.connect() as conn:
            return raw_diffs(project, conn)
    args = project.configure_args
    opts = {key: args[key] for key in _COMPARE_OPTS if key in args}
    opts.setdefault("compare_type", True)
    opts["include_name"] = _without_phase_table(opts.get("include_name"))
    metadata = project.target_metadata(connection)  # env.py's own, where it sets one
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, metadata))


def _without_phase_table(include_name: Any) -> Any:
    """The project's ``include_name``, also leaving out the runbook's phase record and history."""
    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table" and (name == PHASE_TABLE or is_history_table(name)):
            return False
        return include_name(name, type_, parent_names) if include_name else True
    return include


def model_diff(project: Project, connection: Connection | None = None) -> pd.DataFrame:
    """The model-vs-database differences as rows of operation, table, column, detail."""
    return diff_frame(raw_diffs(project, connection))


def diff_frame(diffs: list[Any]) -> pd.DataFrame:
    """Flatten Alembic's diff tuples (and lists of modify tuples) into a DataFrame."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for entry in diffs:
        items = entry if isinstance(entry, list) else [entry]
        rows.extend(_row(item) for item in items)
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)


def _row(item: tuple[Any, ...]) -> dict[str, Any]:
    op = item[0]
    table: str | None = None
    column: str | None = None
    detail = ""
    destructive = False
    if op in ("add_table", "remove_table"):
        table = item[1].name
        detail = ", ".join(c.name for c in item[1].columns)
        destructive = op == "remove_table"
    elif op in ("add_column", "remove_column"):
        table, col = item[2], item[3]
        column = col.name
        detail = f"{type_text(col.type)}{'' if col.nullable else ' NOT NULL'}"
        destructive = op == "remove_column"
        if op == "add_column" and col.server_default is not None:
            detail += f" DEFAULT {_text(col.server_default)}"
    elif op in ("add_index", "remove_index"):
        index = item[1]
        table = index.table.name if index.table is not None else None
        column = ", ".join(c.name for c in index.columns)
        detail = f"{index.name}{' UNIQUE' if index.unique else ''}"
    elif op in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = item[1]
        table = constraint.table.name if constraint.table is not None else None
        column = ", ".join(c.name for c in constraint.columns) if constraint.columns else None
        detail = f"{type(constraint).__name__} {constraint.name or ''}".strip()
    elif op == "modify_type":
        _, _, table, column, kw, old, new = item
        detail = f"{type_text(old)} -> {type_text(new)}"
        destructive = is_narrowing(old, new)
    elif op == "modify_nullable":
        _, _, table, column, kw, old, new = item
        detail = f"{old} -> {new}"
        destructive = old is True and new is False and kw.get("existing_server_default") is None
    elif op in ("modify_default", "modify_comment"):
        _, _, table, column, kw, old, new = item
        detail = f"{_text(old)} -> {_text(new)}"
    else:
        detail = repr(item[1:])
    return {"operation": op, "table": table, "column": column, "detail": detail,
            "destructive": destructive}


def _text(value: Any) -> str:
    if value is None:
        return "None"
    arg = getattr(value, "arg", value)
    return str(getattr(arg, "text", arg))


def is_narrowing(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> bool:
    """True when ``new`` may not hold every value ``old`` holds (lint's rules, on the SQL types)."""
    return type_narrowing(type_text(old), type_text(new)) is not None


def destructive_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the rows that can lose data."""
    return frame[frame["destructive"]].reset_index(drop=True)


# -- the live schema, as the runs compare it before and after ---------------------------


def schema_of(connection: Connection) -> dict[str, dict[str, str]]:
    """Each table's columns as ``TYPE [NOT NULL]``, plus its indexes, from the live database.

    Alembic leaves its version table behind, empty, after a downgrade to base: that is the
    same state as no version table, so an empty one is left out.
    """
    inspector = sa.inspect(connection)
    schema: dict[str, dict[str, str]] = {}
    for table in sorted(inspector.get_table_names()):
        if table == PHASE_TABLE or is_history_table(table) or (
                table in SKIPPED_TABLES and not has_rows(connection, table)):
            continue  # an empty version table is base, as no version table is
        columns = {
            col["name"]: f"{col['type']}{'' if col['nullable'] else ' NOT NULL'}"
            for col in inspector.get_columns(table)
        }
        for index in inspector.get_indexes(table):
            columns[f"index {index['name']}"] = ",".join(str(c) for c in index["column_names"])
        schema[table] = columns
    return schema

def schema_changes(
    before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> pd.DataFrame:
    """Tables and columns added, removed or changed."""
    import pandas as pd

    return pd.DataFrame(schema_change_rows(before, after),
                        columns=["change", "table", "item", "detail"])


def schema_change_rows(
    before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The rows of :func:`schema_changes` as plain dicts (none: the schema did not change)."""
    rows: list[dict[str, Any]] = []
    for table in sorted(set(before) | set(after)):
        if table not in before:
            rows.append({"change": "table added", "table": table, "item": "", "detail": ""})
            continue
        if table not in after:
            rows.append({"change": "table removed", "table": table, "item": "", "detail": ""})
            continue
        old, new = before[table], after[table]
        for item in sorted(set(old) | set(new)):
            if item not in old:
                rows.append({"change": "added", "table": table, "item": item, "detail": new[item]})
            elif item not in new:
                rows.append({"change": "removed", "table": table, "item": item, "detail": old[item]})
            elif old[item] != new[item]:
                rows.append({"change": "changed", "table": table, "item": item,
                             "detail": f"{old[item]} -> {new[item]}"})
    return rows
