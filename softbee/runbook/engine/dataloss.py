"""The data-loss guard: rows and values counted before and after, and what went missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.review.counts import column_value_counts, has_rows, row_counts, user_tables


@dataclass
class Snapshot:
    """Rows per table and non-null values per column, taken inside the migration's transaction."""

    rows: dict[str, int]
    values: dict[str, dict[str, int]]
    # PostgreSQL estimate mode: inserted minus deleted rows per table as the session counts them.
    changes: dict[str, int] = field(default_factory=dict)


def take_snapshot(
    connection: Connection,
    count_mode: str = "exact",
    baseline: Snapshot | None = None,
    tables: list[str] | None = None,
) -> Snapshot:
    """Rows per table (by ``count_mode``) and non-null values per column.

    Estimates come from statistics that do not move inside a transaction, so with
    ``count_mode="estimate"`` on PostgreSQL a snapshot taken after ``baseline`` in the
    same transaction adds the inserts and deletes made since (``pg_stat_xact_user_tables``),
    and every table is checked for emptiness with a cheap ``EXISTS``: a truncated or
    emptied table is never mistaken for an unchanged one. ``tables`` limits it to those.
    """
    rows = row_counts(connection, count_mode, tables)
    if count_mode != "estimate":
        return Snapshot(rows=rows, values=column_value_counts(
            connection, user_tables(connection) if tables is None else tables))
    changes: dict[str, int] = {}
    if connection.dialect.name == "postgresql":
        changes = _session_row_changes(connection)
        if baseline is not None:
            rows = {
                t: max(0, baseline.rows.get(t, 0) + changes.get(t, 0) - baseline.changes.get(t, 0))
                for t in rows
            }
        occupied = {t: has_rows(connection, t) for t in rows}
        rows = {t: (max(n, 1) if occupied[t] else 0) for t, n in rows.items()}
    # No full scans on huge tables: every column of a non-empty table counts as holding values.
    inspector = sa.inspect(connection)
    values = {
        table: {col["name"]: count for col in inspector.get_columns(table)}
        for table, count in rows.items()
    }
    return Snapshot(rows=rows, values=values, changes=changes)


def _session_row_changes(connection: Connection) -> dict[str, int]:
    """Rows inserted minus deleted per table, as this session's not-yet-flushed statistics say.

    ``pg_stat_xact_user_tables`` also holds earlier transactions' counts until the session
    flushes them, which it never does inside a transaction: only differences between two
    readings in the same transaction mean something.
    """
    result = connection.execute(
        sa.text(
            "SELECT relname, n_tup_ins - n_tup_del FROM pg_stat_xact_user_tables "
            "WHERE schemaname = current_schema()"
        )
    )
    return {name: int(change) for name, change in result}


def find_losses(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """Rows lost, tables with rows dropped, column values dropped or nulled.

    A table or column that disappears while a new one appears holding the same data
    (same rows, same values per column) was renamed or copied, not lost.
    """
    losses: list[dict[str, Any]] = []
    new_tables = {t: n for t, n in after.rows.items() if t not in before.rows}
    for table, count in sorted(before.rows.items()):
        if table not in after.rows:
            if count > 0 and not _moved_table(before, after, table, new_tables):
                losses.append(_loss("table dropped", table, count,
                                    f"table {table} with {count} row(s) dropped"))
            continue
        if after.rows[table] < count:
            losses.append(_loss("rows lost", table, count - after.rows[table],
                                f"{table}: {count} -> {after.rows[table]} rows"))
        old_columns, new_columns = before.values.get(table, {}), after.values.get(table, {})
        added = sorted(new_columns[c] for c in new_columns if c not in old_columns)
        for column, values in sorted(old_columns.items()):
            if column not in new_columns:
                if values > 0 and values in added:
                    added.remove(values)  # renamed, or copied into a new column first
                elif values > 0:
                    losses.append(_loss("column dropped", f"{table}.{column}", values,
                                        f"column {table}.{column} with {values} value(s) dropped"))
            elif (nulled := values - new_columns[column] - max(0, count - after.rows[table])) > 0:
                # values gone beyond the rows that went: set to NULL, or dropped and re-added
                losses.append(_loss("values lost", f"{table}.{column}", nulled,
                                    f"{table}.{column}: {values} -> {new_columns[column]} values"))
    return losses


def _loss(kind: str, obj: str, lost: int, detail: str) -> dict[str, Any]:
    return {"kind": kind, "object": obj, "lost": lost, "detail": detail}


def _moved_table(before: Snapshot, after: Snapshot, table: str, new_tables: dict[str, int]) -> bool:
    """True when a table new in ``after`` holds exactly what ``table`` held (a rename)."""
    shape = sorted(before.values.get(table, {}).values())
    for candidate, rows in new_tables.items():
        if rows == before.rows[table] and sorted(after.values.get(candidate, {}).values()) == shape:
            del new_tables[candidate]
            return True
    return False
