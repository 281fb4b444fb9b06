"""Soft-Bee's own checks on offline SQL, statement by statement, and what a statement destroys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from softbee.runbook.review.lint_findings import RowCounts, excerpt, finding
from softbee.runbook.util.sqltext import Statement, one_line, split_sql
from softbee.runbook.util.sqltypes import narrowing, parse_type

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


def statement_object(st: Statement | None) -> tuple[str | None, str | None]:
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


class SqlChecks:
    """Soft-Bee's own checks, fed the statements in the order they run."""

    def __init__(
        self, rows: RowCounts, large_table_rows: int, dialect: str = "postgresql",
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
        text = f"{message} (in `{excerpt(st.text)}`)"
        self.findings.append(finding(severity, "softbee", rule, st.revision, obj, text))

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
                    findings.append(finding(
                        "error", "softbee", "rename-as-drop-add", revision, f"{table}.{column}",
                        f"drops {table}.{column} and adds {', '.join(added)} in the same revision:"
                        f" if this is a rename, the values are lost (in `{excerpt(st.text)}`)"))
        return findings




def destructive_statements(sql: str) -> list[dict[str, Any]]:
    """The statements of ``sql`` that drop a table or column, delete or truncate rows.

    Each as ``{"kind", "table", "column", "revision", "statement"}``: what a data-loss
    guard must predict on a database that cannot roll DDL back.
    """
    found: list[dict[str, Any]] = []

    def add(kind: str, st: Statement, table: str, column: str | None = None) -> None:
        found.append({"kind": kind, "table": table, "column": column, "revision": st.revision,
                      "statement": excerpt(st.text)})

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
