"""Lint what will run: squawk plus Soft-Bee's own checks, on offline SQL or an autogenerate diff.

Both entry points return a DataFrame with :data:`FINDING_COLUMNS`, errors first, then warnings,
then info; within a severity, in the order the statements or diff rows come.

:func:`lint_sql` reads SQL as ``alembic upgrade --sql`` renders it: statements ending in ``;``,
each revision introduced by ``-- Running upgrade X -> Y``. PostgreSQL's SQL goes through squawk
and our checks; MySQL's (``dialect="mysql"``: ``MODIFY``, ``CHANGE``, backquotes) through our
checks only, since squawk parses PostgreSQL alone (an info finding says so). A finding's
``revision`` is ``Y`` (for ``-- Running downgrade X -> Y`` it is ``X``: the script whose code
runs), or None before the first such comment. Statements on ``alembic_version`` and
BEGIN/COMMIT are ignored.

:func:`lint_diff` reads an autogenerate diff table with columns ``operation``, ``table``,
``column``, ``detail``, ``destructive``. The ``detail`` formats it relies on:

* ``modify_nullable``: ``"<existing> -> <new>"`` with Python booleans, e.g. ``"True -> False"``;
  ``"NULL -> NOT NULL"`` and ``"nullable=True -> nullable=False"`` are read too.
* ``modify_type``: ``"<existing type> -> <new type>"`` as compiled SQL, e.g.
  ``"VARCHAR(200) -> VARCHAR(50)"`` or ``"INTEGER -> NUMERIC(10, 2)"``; SQLAlchemy reprs such as
  ``"String(length=200)"`` are read too. A type it cannot read gives a warning, never an error.
* ``add_column`` / ``remove_column``: the column's type first, e.g. ``"VARCHAR(200)"``. For
  ``add_column`` the words ``NOT NULL`` (or ``nullable=False``) mark the column required, and
  ``DEFAULT ...`` (or ``server_default=<anything but None>``) mark a server default.
* any other operation: free text, quoted in the message.

``row_counts`` maps table names (bare or schema-qualified, any case) to rows. A table created
earlier in the same SQL or diff counts as empty; a table not in ``row_counts`` is unknown, and a
check that depends on rows then warns "if the table has rows" instead of raising an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from softbee.runbook.online.phases import guarded_sql
from softbee.runbook.util.sqltext import Statement, one_line, split_sql
from softbee.runbook.util.sqltypes import compatible, narrowing, parse_type

FINDING_COLUMNS: tuple[str, ...] = (
    "severity",
    "source",
    "rule",
    "revision",
    "object",
    "message",
    "fix",
)
SQUAWK_TIMEOUT_SECONDS = 60

_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}

# One-line fixes for our rules, also used for the squawk rules in _SAME_AS when squawk has none.
_FIX = {
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
# Squawk rules one of our checks also reports, with row counts and a migration-level fix:
# squawk's finding is dropped when ours covers the same revision and object.
_SAME_AS = {
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


def has_errors(findings: pd.DataFrame) -> bool:
    """True when any finding has severity ``error``."""
    return bool((findings["severity"] == "error").any())


def lint_sql(
    sql: str,
    row_counts: Mapping[str, int] | None = None,
    large_table_rows: int = 100_000,
    dialect: str = "postgresql",
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Findings from squawk and Soft-Bee's checks on offline (``--sql``) SQL of ``dialect``.

    ``columns`` (table -> column -> ``"TYPE [NOT NULL]"``, as ``migrate.schema_of`` gives)
    are the live definitions a MySQL ``MODIFY``/``CHANGE`` restates: with them a restated
    type or ``NOT NULL`` is told apart from a changed one. The statements of online phases
    (``online.run_phases``) are left out: they are the online forms these checks point to,
    run outside the migration's transaction.
    """
    sql = guarded_sql(sql)
    statements = split_sql(sql)
    rows = _Rows(row_counts)
    checks = _SqlChecks(rows, large_table_rows, dialect, columns)
    for statement in statements:
        checks.visit(statement)
    own = checks.finish()
    if dialect != "postgresql":
        if not statements:
            return _frame(own)
        note = (f"squawk parses PostgreSQL only and this SQL is rendered for {dialect}: only "
                "Soft-Bee's operation checks ran")
        return _frame([*own, _finding("info", "squawk", "squawk-skipped", None, None, note)])
    covered = {(f["revision"], f["object"], f["rule"]) for f in own}
    squawk = [
        f
        for f in _squawk_findings(sql, statements, rows, large_table_rows)
        if (f["revision"], f["object"], _SAME_AS.get(f["rule"])) not in covered
    ]
    return _frame(own + squawk)


def destructive_statements(sql: str) -> list[dict[str, Any]]:
    """The statements of ``sql`` that drop a table or column, delete or truncate rows.

    Each as ``{"kind", "table", "column", "revision", "statement"}``: what a data-loss
    guard must predict on a database that cannot roll DDL back.
    """
    found: list[dict[str, Any]] = []

    def add(kind: str, st: Statement, table: str, column: str | None = None) -> None:
        found.append({"kind": kind, "table": table, "column": column, "revision": st.revision,
                      "statement": _excerpt(st.text)})

    for st in split_sql(sql):
        if m := _DROP_TABLE.match(st.code):
            for name in re.findall(_NAME, m["table"]):
                add("table dropped", st, _ident(name))
        elif m := _ALTER_TABLE.match(st.code):
            for action in _split_actions(m["actions"]):
                found_action = _column_action(action)
                if found_action and found_action[0] is _DROP_COLUMN:
                    add("column dropped", st, _ident(m["table"]), _ident(found_action[1]["column"]))
        elif (m := _DML.match(st.code)) and m["verb"].upper().startswith("DELETE") or (m := _TRUNCATE.match(st.code)):
            add("rows deleted", st, _ident(m["table"]))
    return found


def lint_diff(
    diff: pd.DataFrame,
    row_counts: Mapping[str, int] | None = None,
    large_table_rows: int = 100_000,
) -> pd.DataFrame:
    """Findings for an autogenerate diff table (operation, table, column, detail, destructive)."""
    rows = _Rows(row_counts)
    records = [_diff_record(raw) for raw in diff.to_dict("records")]
    for record in records:
        if record.op == "add_table" and record.table:
            rows.created(record.table)
    findings: list[dict[str, Any]] = []
    for record in records:
        findings.extend(_diff_rules(record, rows, large_table_rows))
    findings.extend(_diff_renames(records))
    return _frame(findings)


# --- findings ------------------------------------------------------------------------------


def _finding(
    severity: str, source: str, rule: str, revision: str | None, obj: str | None, message: str,
    fix: str | None = None,
) -> dict[str, Any]:
    fix = fix or _FIX[rule]
    return dict(zip(FINDING_COLUMNS, (severity, source, rule, revision, obj, message, fix)))


def _frame(findings: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(findings, columns=list(FINDING_COLUMNS)).astype(object)
    if frame.empty:
        return frame
    order = frame["severity"].map(_SEVERITY_RANK).to_numpy().argsort(kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    return frame.where(frame.notna(), None)


def _excerpt(text: str, limit: int = 70) -> str:
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class _Rows:
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


# --- statements ----------------------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|`(?:[^`]|``)+`|[A-Za-z_][\w$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_CREATE_TABLE = re.compile(
    r"^CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_DROP_TABLE = re.compile(
    rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>{_NAME}(?:\s*,\s*{_NAME})*)", re.IGNORECASE
)
_ALTER_TABLE = re.compile(
    rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_NAME})\s*\*?\s+(?P<actions>.+)$",
    re.IGNORECASE,
)
_CREATE_INDEX = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:{_NAME}\s+)?ON\s+(?:ONLY\s+)?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_DML = re.compile(
    rf"^(?P<verb>UPDATE(?:\s+ONLY)?|INSERT\s+INTO|COPY|DELETE\s+FROM)\s+(?P<table>{_NAME})", re.IGNORECASE
)
# ALTER TABLE actions (after splitting on top-level commas)
_ADD_COLUMN = re.compile(
    rf"^ADD\s+(?P<kw>COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?P<column>{_IDENT})\s*(?P<rest>.*)$", re.IGNORECASE
)
_DROP_COLUMN = re.compile(
    rf"^DROP\s+(?P<kw>COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?P<column>{_IDENT})", re.IGNORECASE
)
_RENAME_COLUMN = re.compile(
    rf"^RENAME\s+(?P<kw>COLUMN\s+)?(?P<column>{_IDENT})\s+TO\s+(?P<new>{_IDENT})", re.IGNORECASE
)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+(?P<new>{_IDENT})", re.IGNORECASE)
_ALTER_COLUMN = re.compile(
    rf"^ALTER\s+(?P<kw>COLUMN\s+)?(?P<column>{_IDENT})\s*(?P<rest>.*)$", re.IGNORECASE
)
_SET_NOT_NULL = re.compile(r"^SET\s+NOT\s+NULL\b", re.IGNORECASE)
_SET_TYPE = re.compile(
    r"^(?:SET\s+DATA\s+)?TYPE\s+(?P<type>.+?)(?:\s+(?:USING|COLLATE)\b.*)?$", re.IGNORECASE
)
# MySQL restates the whole column: MODIFY col <definition>, CHANGE old new <definition>
_MODIFY_COLUMN = re.compile(
    rf"^MODIFY\s+(?P<kw>COLUMN\s+)?(?P<column>{_IDENT})\s+(?P<rest>.+)$", re.IGNORECASE
)
_CHANGE_COLUMN = re.compile(
    rf"^CHANGE\s+(?P<kw>COLUMN\s+)?(?P<column>{_IDENT})\s+(?P<new>{_IDENT})\s+(?P<rest>.+)$", re.IGNORECASE
)
_TRUNCATE = re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?(?P<table>{_NAME})", re.IGNORECASE)
# Words after ADD/DROP that name no column (MySQL: DROP INDEX ix, DROP KEY k, ADD FULLTEXT...)
_NOT_COLUMNS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "INDEX", "KEY",
                "FULLTEXT", "SPATIAL"}
_COLUMN_ACTIONS = (_ADD_COLUMN, _DROP_COLUMN, _RENAME_COLUMN, _ALTER_COLUMN, _MODIFY_COLUMN,
                   _CHANGE_COLUMN)
_AFTER_TYPE = re.compile(
    r"\s+(?:NOT\s+NULL|NULL|DEFAULT|AUTO_INCREMENT|COMMENT|COLLATE|CHARACTER\s+SET|PRIMARY|"
    r"UNIQUE|REFERENCES|GENERATED|CHECK)\b", re.IGNORECASE)
_NOT_NULL = re.compile(r"\bNOT\s+NULL\b", re.IGNORECASE)


def _type_of(definition: str) -> str:
    """The type a column definition starts with: ``VARCHAR(200) NOT NULL`` -> ``VARCHAR(200)``."""
    return _AFTER_TYPE.split(definition, maxsplit=1)[0].strip()


def _ident(name: str) -> str:
    """``"Users"`` -> ``Users``; ``Public.Users`` -> ``public.users`` (PostgreSQL folding); MySQL's ```t``` -> ``t``."""
    parts = re.findall(r'"(?:[^"]|"")+"|`(?:[^`]|``)+`|[^.`"\s]+', name)
    return ".".join(p[1:-1].replace(p[0] * 2, p[0]) if p[0] in '"`' else p.lower() for p in parts)


def _split_actions(actions: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in actions:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current.strip()] if p]


def _column_action(action: str) -> tuple[re.Pattern[str], re.Match[str]] | None:
    """The column action (add, drop, rename, alter) an ALTER TABLE clause is, if any."""
    for pattern in _COLUMN_ACTIONS:
        if (m := pattern.match(action)) and (m["kw"] or m["column"].upper() not in _NOT_COLUMNS):
            return pattern, m
    return None


def _statement_object(st: Statement | None) -> tuple[str | None, str | None]:
    """The table a statement works on, and the table or table.column to report."""
    if st is None:
        return None, None
    for pattern in (_CREATE_TABLE, _DROP_TABLE, _CREATE_INDEX, _DML):
        if m := pattern.match(st.code):
            table = _ident(re.findall(_NAME, m["table"])[0])
            return table, table
    if m := _ALTER_TABLE.match(st.code):
        table = _ident(m["table"])
        found = _column_action(_split_actions(m["actions"])[0])
        return table, f"{table}.{_ident(found[1]['column'])}" if found else table
    return None, None


class _SqlChecks:
    """Soft-Bee's own checks, fed the statements in the order they run."""

    def __init__(
        self, rows: _Rows, large_table_rows: int, dialect: str = "postgresql",
        columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.rows = rows
        self.large = large_table_rows
        # InnoDB builds an index without blocking writes: CONCURRENTLY is PostgreSQL's concern.
        self.blocking_index_builds = dialect != "mysql"
        # Each column's definition as the statements so far leave it (MySQL's MODIFY compares).
        self.defined: dict[tuple[str, str], str] = {
            (str(table).lower(), str(column).lower()): definition
            for table, cols in (columns or {}).items() for column, definition in cols.items()
            if not str(column).startswith("index ")
        }
        self.findings: list[dict[str, Any]] = []
        self.added_with_default: dict[tuple[str, str], bool] = {}
        self.backfilled: set[tuple[str | None, str]] = set()
        self.dropped: dict[tuple[str | None, str], list[tuple[str, Statement]]] = {}
        self.added: dict[tuple[str | None, str], list[str]] = {}

    def add(self, severity: str, rule: str, st: Statement, obj: str, message: str) -> None:
        text = f"{message} (in `{_excerpt(st.text)}`)"
        self.findings.append(_finding(severity, "softbee", rule, st.revision, obj, text))

    def visit(self, st: Statement) -> None:
        if m := _CREATE_TABLE.match(st.code):
            self.rows.created(_ident(m["table"]))
        elif m := _DROP_TABLE.match(st.code):
            for name in re.findall(_NAME, m["table"]):
                table, rows = _ident(name), self.rows.get(_ident(name))
                lost = f" and its {rows:,} rows" if rows else ""
                self.add("error", "drop-table", st, table,
                         f"drops table {table}{lost}: data loss, and running code using it breaks")
        elif m := _ALTER_TABLE.match(st.code):
            for action in _split_actions(m["actions"]):
                if found := _column_action(action):
                    self._column(st, _ident(m["table"]), *found)
                elif r := _RENAME_TABLE.match(action):
                    table = _ident(m["table"])
                    self.add("warning", "rename-table", st, table, f"renames table {table} to "
                             f"{_ident(r['new'])}: running code using the old name breaks")
        elif m := _CREATE_INDEX.match(st.code):
            table, rows = _ident(m["table"]), self.rows.get(_ident(m["table"]))
            if (self.blocking_index_builds and not m["concurrently"] and rows is not None
                    and rows >= self.large):
                self.add("warning", "create-index-not-concurrently", st, table,
                         f"builds an index without CONCURRENTLY on {table} ({rows:,} rows): "
                         "writes to it are blocked until it is built")
        elif m := _DML.match(st.code):
            table, verb = _ident(m["table"]), m["verb"].upper()
            if verb.startswith("UPDATE"):
                self.backfilled.add((st.revision, table))
                rows = self.rows.get(table)
                if rows is not None and rows >= self.large:
                    self.add("warning", "full-table-update", st, table,
                             f"updates {table} ({rows:,} rows) in one statement: every row it "
                             "touches stays locked until the migration commits")
            elif not verb.startswith("DELETE"):
                self.rows.populated(table)

    def _column(self, st: Statement, table: str, kind: re.Pattern[str], m: re.Match[str]) -> None:
        column, key = _ident(m["column"]), (st.revision, table)
        obj = f"{table}.{column}"
        if kind in (_MODIFY_COLUMN, _CHANGE_COLUMN):
            self._redefine(st, table, column, m)
        elif kind is _ADD_COLUMN:
            default = re.search(r"\b(?:DEFAULT|GENERATED|(?:SMALL|BIG)?SERIAL)\b", m["rest"], re.IGNORECASE)
            self.added_with_default[(table, column)] = bool(default)
            self.defined[(table.lower(), column.lower())] = m["rest"]
            self.added.setdefault(key, []).append(column)
            fails = self.rows.fails_if(table)
            if re.search(r"\bNOT\s+NULL\b", m["rest"], re.IGNORECASE) and not default and fails:
                self.add(fails[0], "not-null-without-default", st, obj,
                         f"adds NOT NULL column {obj} without a DEFAULT: {fails[1]}")
        elif kind is _DROP_COLUMN:
            self.dropped.setdefault(key, []).append((column, st))
            rows = self.rows.get(table)
            lost = f" ({rows:,} rows)" if rows else ""
            self.add("error", "drop-column", st, obj, f"drops column {obj}: its values{lost} are "
                     "lost, and running code reading it breaks")
        elif kind is _RENAME_COLUMN:
            self.add("warning", "rename-column", st, obj, f"renames {obj} to {_ident(m['new'])}: "
                     "running code using the old name breaks")
        elif _SET_NOT_NULL.match(m["rest"]):
            self._not_null(st, table, column)
        elif t := _SET_TYPE.match(m["rest"]):
            self.add("warning", "alter-column-type", st, obj, f"changes {obj} to {t['type']}: may "
                     "rewrite the table under an ACCESS EXCLUSIVE lock, and fails or truncates "
                     "if it narrows")

    def _not_null(self, st: Statement, table: str, column: str, known: bool = True) -> None:
        """A column made NOT NULL: fails on NULLs unless backfilled or defaulted when added."""
        obj, fails = f"{table}.{column}", self.rows.fails_if(table, null=True)
        if self.added_with_default.get((table, column)) or not fails:
            return
        rows = self.rows.get(table)
        if (st.revision, table) in self.backfilled and rows is not None and rows >= self.large:
            self.add("warning", "set-not-null-after-backfill", st, obj, f"sets {obj} NOT NULL "
                     f"on {table} ({rows:,} rows): scans every row under an ACCESS EXCLUSIVE "
                     "lock, and fails if any NULL is left")
            return
        if (st.revision, table) in self.backfilled:
            self.add("info", "set-not-null-after-backfill", st, obj, f"sets {obj} NOT NULL "
                     f"after an UPDATE of {table} in this revision: fails if any NULL is left")
            return
        severity = fails[0] if known else "warning"  # unknown: it may have been NOT NULL already
        unknown = "" if known else " (if it allowed NULL before: its definition is not known here)"
        self.add(severity, "set-not-null", st, obj,
                 f"sets {obj} NOT NULL with no backfill in this revision: {fails[1]}{unknown}")

    def _redefine(self, st: Statement, table: str, column: str, m: re.Match[str]) -> None:
        """MySQL's MODIFY/CHANGE: a rename, a new type or a new NOT NULL, against the old one."""
        obj, definition = f"{table}.{column}", m["rest"]
        new_name = _ident(m["new"]) if "new" in m.groupdict() and m["new"] else column
        if new_name != column:
            self.add("warning", "rename-column", st, obj, f"renames {obj} to {new_name}: "
                     "running code using the old name breaks")
        old = self.defined.pop((table.lower(), column.lower()), None)
        self.defined[(table.lower(), new_name.lower())] = definition
        if self.rows.get(table) == 0:
            return  # an empty table: nothing to convert, nothing NULL
        old_type, new_type = _type_of(old or ""), _type_of(definition)
        if old is None:
            if not _NOT_NULL.search(definition):
                self.add("warning", "alter-column-type", st, obj, f"redefines {obj} as "
                         f"{new_type}: its current type is not known here; check its values fit")
        elif parse_type(old_type) != parse_type(new_type) or (
            parse_type(new_type) is None
            and one_line(old_type).upper() != one_line(new_type).upper()
        ):
            before, after = parse_type(old_type), parse_type(new_type)
            if before and after and (reason := narrowing(before, after)):
                self.add("error", "narrowing-type", st, obj, f"changes {obj} {old_type} -> "
                         f"{new_type}: narrowing ({reason})")
            else:
                self.add("warning", "alter-column-type", st, obj, f"changes {obj} {old_type} -> "
                         f"{new_type}: MySQL may copy the table to convert it, blocking writes "
                         "meanwhile")
        if _NOT_NULL.search(definition) and not (old and _NOT_NULL.search(old)):
            self._not_null(st, table, new_name, known=old is not None)

    def finish(self) -> list[dict[str, Any]]:
        """Our findings, plus drop+add pairs per table and revision (seen only at the end)."""
        findings = list(self.findings)
        for (revision, table), drops in self.dropped.items():
            for column, st in drops:
                added = [c for c in self.added.get((revision, table), []) if c != column]
                if added:
                    findings.append(_finding(
                        "error", "softbee", "rename-as-drop-add", revision, f"{table}.{column}",
                        f"drops {table}.{column} and adds {', '.join(added)} in the same revision:"
                        f" if this is a rename, the values are lost (in `{_excerpt(st.text)}`)"))
        return findings


# --- squawk --------------------------------------------------------------------------------


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


def _squawk_findings(
    sql: str, statements: list[Statement], rows: _Rows, large_table_rows: int
) -> list[dict[str, Any]]:
    violations, problem = _run_squawk(sql)
    if problem:
        return [_finding("info", "squawk", "squawk-unavailable", None, None, problem)]
    lines = sql.split("\n")
    findings = []
    for v in violations:
        st = _statement_at(statements, _offset(lines, v.get("line"), v.get("column")))
        table, obj = _statement_object(st)
        if table == "alembic_version" or (st and st.code.upper() in {"BEGIN", "COMMIT"}):
            continue
        rule = str(v.get("rule_name") or "squawk")
        severity = "error" if str(v.get("level")).lower() == "error" else "warning"
        message = one_line(v.get("message") or rule)
        fix = _SQUAWK_FIX.get(rule) or v.get("help") or _FIX.get(_SAME_AS.get(rule, ""))
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
            message += f" (in `{_excerpt(st.text)}`)"
        fix = one_line(fix or f"See https://squawkhq.com/docs/{rule}")
        revision = st.revision if st else None
        findings.append(_finding(severity, "squawk", rule, revision, obj, message, fix))
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


# --- autogenerate diff ---------------------------------------------------------------------


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


def _diff_rules(row: _DiffRow, rows: _Rows, large: int) -> list[dict[str, Any]]:
    def found(severity: str, rule: str, message: str) -> list[dict[str, Any]]:
        return [_finding(severity, "softbee", rule, None, row.obj, message)]

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
            findings.append(_finding(
                "error", "softbee", "rename-as-drop-add", None, gone.obj,
                f"possible rename seen as drop+add: removes {gone.obj} and adds "
                f"{', '.join(partners)} of a compatible type; the values would be lost"))
    return findings
