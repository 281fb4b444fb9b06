"""Squawk on PostgreSQL's offline SQL: run it, bound it, and turn its violations into findings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from softbee.runbook.review.lint_findings import FIXES, RowCounts, excerpt, finding
from softbee.runbook.review.lint_statements import statement_object
from softbee.runbook.util.sqltext import Statement, one_line

SQUAWK_TIMEOUT_SECONDS = 60

# Squawk rules one of our checks also reports, with row counts and a migration-level fix:
# squawk's finding is dropped when ours covers the same revision and object.
SAME_AS = {
    "ban-drop-column": "drop-column",
    "ban-drop-table": "drop-table",
    "renaming-column": "rename-column",
    "renaming-table": "rename-table",
    "changing-column-type": "alter-column-type",
    "adding-required-field": "not-null-without-default",
}
_SQUAWK_FIX = {
    "ban-drop-database": "Never drop a database from a migration.",
    "prefer-robust-stmts": "Use IF [NOT] EXISTS so a half-applied migration can be re-run.",
    "syntax-error": "Check the statement runs on PostgreSQL; squawk's parser may not know it.",
}
_TIMEOUT_RULES = {"require-lock-timeout", "require-statement-timeout"}
# Squawk rules about how long a lock is held: brief on a table known to be small.
_LOCK_RULES = {
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "adding-not-nullable-field",
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
    "adding-serial-primary-key-field",
    "disallowed-unique-constraint",
}


def find_squawk() -> str | None:
    """The squawk binary next to the running Python, else on PATH; None if not installed."""
    local = Path(sys.executable).parent / ("squawk.exe" if os.name == "nt" else "squawk")
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("squawk")


def _run_squawk(sql: str) -> tuple[list[dict[str, Any]], str | None]:
    """Squawk's JSON violations, or the reason squawk could not give them."""
    binary = find_squawk()
    if binary is None:
        return [], "squawk is not installed, so only Soft-Bee's own checks ran"
    with tempfile.TemporaryDirectory(prefix="softbee-lint-") as tmp:
        path = Path(tmp) / "migration.sql"
        path.write_text(sql, encoding="utf-8")
        try:
            done = subprocess.run(
                [binary, "--reporter", "json", str(path)], capture_output=True, text=True,
                timeout=SQUAWK_TIMEOUT_SECONDS, cwd=tmp, check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return [], f"squawk could not run ({one_line(exc)}), so only our own checks ran"
    try:
        violations = json.loads(done.stdout) if done.stdout.strip() else []
    except ValueError:
        violations = None
    # squawk exits 1 when it has findings: only an error when it reports none.
    if done.returncode not in (0, 1) or not isinstance(violations, list) or (
        done.returncode == 1 and not violations
    ):
        reason = one_line(done.stderr)[:200] or "no output"
        return [], f"squawk failed (exit {done.returncode}: {reason}), so only our own checks ran"
    return violations, None


def squawk_findings(
    sql: str, statements: list[Statement], rows: RowCounts, large_table_rows: int
) -> list[dict[str, Any]]:
    """Squawk's violations of ``sql`` as findings (one info finding when squawk could not run)."""
    violations, problem = _run_squawk(sql)
    if problem:
        return [finding("info", "squawk", "squawk-unavailable", None, None, problem)]
    lines = sql.split("\n")
    findings = []
    for v in violations:
        st = _statement_at(statements, _offset(lines, v.get("line"), v.get("column")))
        table, obj = statement_object(st)
        if table == "alembic_version" or (st and st.code.upper() in {"BEGIN", "COMMIT"}):
            continue
        rule = str(v.get("rule_name") or "squawk")
        severity = "error" if str(v.get("level")).lower() == "error" else "warning"
        message = one_line(v.get("message") or rule)
        fix = _SQUAWK_FIX.get(rule) or v.get("help") or FIXES.get(SAME_AS.get(rule, ""))
        count = rows.get(table)
        if rule in _TIMEOUT_RULES:
            severity, fix = "info", "Nothing to do in the runbook; elsewhere SET the timeout first."
            message += " (the runbook sets lock_timeout and statement_timeout on its connection)"
        elif rule.startswith("prefer-"):
            severity = "info"  # schema design advice, not a risk of running the migration
        elif rule == "syntax-error":
            severity, fix = "warning", _SQUAWK_FIX[rule]
        elif rule == "adding-required-field" and count == 0:
            severity = "info"
            message += f" ({table} is empty, so nothing fails)"
        elif rule in _LOCK_RULES and count is not None and count < large_table_rows:
            severity = "info"
            message += f" ({table} has {count:,} rows, below {large_table_rows:,}: a brief lock)"
        if st is not None:
            message += f" (in `{excerpt(st.text)}`)"
        fix = one_line(fix or f"See https://squawkhq.com/docs/{rule}")
        revision = st.revision if st else None
        findings.append(finding(severity, "squawk", rule, revision, obj, message, fix))
    return findings


def _offset(lines: list[str], line: Any, column: Any) -> int | None:
    """Squawk's 0-based line and UTF-8 byte column as a character offset into the SQL."""
    if not isinstance(line, int) or not isinstance(column, int) or not 0 <= line < len(lines):
        return None
    prefix = lines[line].encode("utf-8")[:column].decode("utf-8", errors="ignore")
    return sum(len(text) + 1 for text in lines[:line]) + len(prefix)


def _statement_at(statements: list[Statement], offset: int | None) -> Statement | None:
    before = [st for st in statements if offset is not None and st.start <= offset]
    return before[-1] if before else None
