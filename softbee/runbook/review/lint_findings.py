"""A lint finding's shape, its one-line fixes, and the row counts the checks weigh.

Shared by the SQL checks (``lint_statements``), squawk's findings (``lint_squawk``) and the
autogenerate diff's (``lint_diff``); :mod:`~softbee.runbook.review.lint` is the entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from softbee.runbook.util.sqltext import one_line

FINDING_COLUMNS: tuple[str, ...] = (
    "severity",
    "source",
    "rule",
    "revision",
    "object",
    "message",
    "fix",
)
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}

# One-line fixes for our rules, also used for the squawk rules in SAME_AS when squawk has none.
FIXES = {
    "drop-table": "Archive the rows, and drop the table in a later release once no code uses it.",
    "drop-column": "Archive the values, and drop the column in a later release once no code "
    "reads it.",
    "rename-column": "Expand/contract: add the new column, backfill and dual-write, switch the "
    "code, then drop the old one.",
    "rename-table": "Expand/contract: create the new table (or a view), switch the code, then "
    "drop the old name.",
    "rename-as-drop-add": "For a rename use op.alter_column(table, old, new_column_name=new) "
    "instead of drop_column + add_column.",
    "not-null-without-default": "Add the column nullable (or with server_default=...), backfill "
    "it, then alter_column(..., nullable=False).",
    "set-not-null": "Backfill NULLs in the same revision first; on a large table use "
    "online.backfill(...) then online.set_not_null(...) (docs/online.md).",
    "set-not-null-after-backfill": "Make sure the backfill covers every row "
    "(e.g. WHERE col IS NULL); on a large table use online.set_not_null(...), which validates "
    "without blocking writes (docs/online.md).",
    "full-table-update": "Use online.backfill(table, values, where=<rows not yet done>): short "
    "keyset batches the application can write between (docs/online.md).",
    "create-index-not-concurrently": "Use online.create_index(...) in online.run_phases(...): "
    "CREATE INDEX CONCURRENTLY, outside the migration's transaction (docs/online.md).",
    "alter-column-type": "Check existing values fit the new type; on a large table add a new "
    "column, backfill it, then switch.",
    "narrowing-type": "Check existing values fit first (e.g. SELECT max(length(col)) ...), or "
    "keep the wider type.",
    "destructive-operation": "Check the data or constraint it removes is no longer needed, or "
    "archive it first.",
    "squawk-unavailable": "Install squawk-cli in the runbook's virtualenv "
    "(pip install squawk-cli).",
    "squawk-skipped": "Nothing to do: Soft-Bee's checks read this SQL; squawk lints the "
    "PostgreSQL rendering (render_plan(..., dialect='postgresql')) if you want it too.",
}
def has_errors(findings: pd.DataFrame) -> bool:
    """True when any finding has severity ``error``."""
    return bool((findings["severity"] == "error").any())


def finding(
    severity: str, source: str, rule: str, revision: str | None, obj: str | None, message: str,
    fix: str | None = None,
) -> dict[str, Any]:
    """One finding as a row of :data:`FINDING_COLUMNS` (the fix: the rule's own by default)."""
    fix = fix or FIXES[rule]
    return dict(zip(FINDING_COLUMNS, (severity, source, rule, revision, obj, message, fix)))


def findings_table(findings: list[dict[str, Any]]) -> pd.DataFrame:
    """The findings as a DataFrame, errors first, then warnings, then info (stable within)."""
    frame = pd.DataFrame(findings, columns=list(FINDING_COLUMNS)).astype(object)
    if frame.empty:
        return frame
    order = frame["severity"].map(SEVERITY_RANK).to_numpy().argsort(kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    return frame.where(frame.notna(), None)


def excerpt(text: str, limit: int = 70) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class RowCounts:
    """Row counts by table, case-insensitive; tables the migration creates count as empty."""

    def __init__(self, row_counts: Mapping[str, int] | None) -> None:
        self._counts = {str(k).lower(): int(v) for k, v in (row_counts or {}).items()}
        self._bare = {k.rsplit(".", 1)[-1]: v for k, v in self._counts.items()}
        self._new: set[str] = set()

    def created(self, table: str) -> None:
        self._new.add(table.lower())

    def populated(self, table: str) -> None:
        self._new.discard(table.lower())

    def get(self, table: str | None) -> int | None:
        if not table:
            return None
        key = table.lower()
        if key in self._new:
            return 0
        return self._counts.get(key, self._bare.get(key.rsplit(".", 1)[-1]))

    def fails_if(self, table: str, null: bool = False) -> tuple[str, str] | None:
        """Severity and why a change fails on a table with (NULL) rows; None if it is empty."""
        rows = self.get(table)
        if rows == 0:
            return None
        if rows is None:
            return "warning", f"fails if {table} has rows" + (" with a NULL" if null else "")
        if null:
            return "error", f"fails if any of the {rows:,} rows in {table} is NULL"
        return "error", f"fails on the {rows:,} existing rows of {table}"
