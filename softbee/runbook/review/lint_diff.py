"""Lint an autogenerate diff table: the same rules as the SQL checks, read from its rows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from softbee.runbook.review.lint_findings import RowCounts, finding, findings_table
from softbee.runbook.util.sqltypes import compatible, narrowing, parse_type


def lint_diff(
    diff: pd.DataFrame,
    row_counts: Mapping[str, int] | None = None,
    large_table_rows: int = 100_000,
) -> pd.DataFrame:
    """Findings for an autogenerate diff table (operation, table, column, detail, destructive)."""
    rows = RowCounts(row_counts)
    records = [_diff_record(raw) for raw in diff.to_dict("records")]
    for record in records:
        if record.op == "add_table" and record.table:
            rows.created(record.table)
    findings: list[dict[str, Any]] = []
    for record in records:
        findings.extend(_diff_rules(record, rows, large_table_rows))
    findings.extend(_diff_renames(records))
    return findings_table(findings)


@dataclass(frozen=True)
class _DiffRow:
    op: str
    table: str | None
    column: str | None
    detail: str
    destructive: bool

    @property
    def obj(self) -> str | None:
        return f"{self.table}.{self.column}" if self.table and self.column else self.table


def _clean(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value).strip() or None


def _diff_record(raw: Mapping[str, Any]) -> _DiffRow:
    destructive = _clean(raw.get("destructive")) or "false"
    return _DiffRow(
        _clean(raw.get("operation")) or "",
        _clean(raw.get("table")),
        _clean(raw.get("column")),
        _clean(raw.get("detail")) or "",
        destructive.lower() in {"true", "1", "yes"},
    )


def _sides(detail: str) -> tuple[str, str] | None:
    old, arrow, new = detail.partition("->")
    return (old.strip(), new.strip()) if arrow else None


def _diff_rules(row: _DiffRow, rows: RowCounts, large: int) -> list[dict[str, Any]]:
    def found(severity: str, rule: str, message: str) -> list[dict[str, Any]]:
        return [finding(severity, "softbee", rule, None, row.obj, message)]

    table, detail = row.table or "", row.detail
    count = rows.get(table)
    if row.op == "remove_table":
        lost = f" and its {count:,} rows" if count else ""
        return found("error", "drop-table", f"removes table {table}{lost}: data loss")
    if row.op == "remove_column":
        return found("error", "drop-column", f"removes column {row.obj}: its values are lost")
    if row.op == "add_column":
        required = re.search(r"\bNOT\s+NULL\b|nullable\s*=\s*False", detail, re.IGNORECASE)
        default = re.search(r"\bDEFAULT\b|server_default\s*=\s*(?!None\b)\S|IDENTITY|SERIAL",
                            detail, re.IGNORECASE)
        fails = rows.fails_if(table)
        if required and not default and fails:
            return found(fails[0], "not-null-without-default",
                         f"adds NOT NULL column {row.obj} without a server default: {fails[1]}")
    elif row.op == "modify_nullable":
        sides = _sides(detail)
        target = sides[1] if sides else detail
        fails = rows.fails_if(table, null=True)
        if re.match(r"(False|NOT\s+NULL|nullable\s*=\s*False)\b", target, re.IGNORECASE) and fails:
            return found(fails[0], "set-not-null", f"makes {row.obj} NOT NULL: {fails[1]} "
                         "(a server default does not fill existing NULLs)")
    elif row.op == "modify_type":
        sides = _sides(detail)
        old, new = (parse_type(sides[0]), parse_type(sides[1])) if sides else (None, None)
        if old and new and (reason := narrowing(old, new)):
            return found("error", "narrowing-type",
                         f"changes {row.obj} {detail}: narrowing ({reason})")
        return found("warning", "alter-column-type", f"changes {row.obj} {detail or 'type'}: "
                     "may rewrite the table under an ACCESS EXCLUSIVE lock")
    elif row.op == "add_index":
        if count is not None and count >= large and "concurrently" not in detail.lower():
            return found("warning", "create-index-not-concurrently", f"adds an index on {table} "
                         f"({count:,} rows) without CONCURRENTLY: writes are blocked meanwhile")
    elif row.destructive:
        return found("warning", "destructive-operation",
                     f"{row.op} on {row.obj}: {detail or 'marked destructive'}")
    return []


def _diff_renames(records: list[_DiffRow]) -> list[dict[str, Any]]:
    """remove_column + add_column of a compatible type on one table: maybe a rename."""
    findings = []
    for gone in (r for r in records if r.op == "remove_column" and r.table and r.column):
        old = parse_type(gone.detail)
        partners = [
            r.column for r in records
            if r.op == "add_column" and r.table == gone.table and r.column
            and r.column != gone.column and compatible(old, parse_type(r.detail))
        ]
        if partners:
            findings.append(finding(
                "error", "softbee", "rename-as-drop-add", None, gone.obj,
                f"possible rename seen as drop+add: removes {gone.obj} and adds "
                f"{', '.join(partners)} of a compatible type; the values would be lost"))
    return findings
