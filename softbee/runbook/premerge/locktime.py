"""How long a revision holds its locks, estimated from production's sizes, and the rules on it.

The estimate is deliberately simple, so a reviewer can redo it by hand. Each statement of a
revision's SQL (its online phases left out: they run outside the transaction, in batches)
is one of:

* **rows**: ``UPDATE`` / ``DELETE`` on a table: rows / :attr:`LockModel.rows_per_s`
  (every row it touches stays locked until the migration commits);
* **index build**: ``CREATE INDEX`` without ``CONCURRENTLY``, ``ADD ... UNIQUE`` or
  ``PRIMARY KEY``: table bytes / :attr:`LockModel.index_bytes_per_s` (writes blocked; not
  for stats of MySQL/MariaDB, where InnoDB builds a ``CREATE INDEX`` online);
* **rewrite**: ``ALTER COLUMN ... TYPE``, ``INSERT INTO ... SELECT ... FROM t`` (a batch
  copy): table and index bytes / :attr:`LockModel.rewrite_bytes_per_s` (reads and writes
  blocked);
* **scan**: ``SET NOT NULL``, a ``FOREIGN KEY`` or ``CHECK`` added without ``NOT VALID``:
  table bytes / :attr:`LockModel.scan_bytes_per_s`;
* anything else (``CREATE TABLE``, ``ADD COLUMN``, ``DROP``...): catalog only, counted 0 s
  (it still waits for every running transaction on the table: not estimable from sizes).

A revision runs in one transaction, so a lock taken by its first statement is held until
the last one ends: the revision's lock time is the sum of its statements'. It is compared
with GitLab's thresholds: 3 minutes for a regular migration, 10 for a post-deploy one
(a revision whose file says ``# runbook: post-deploy``). Both, and the rates, are
:class:`LockModel` fields; docs/review.md gives the figures and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from softbee.runbook.online.phases import guarded_sql
from softbee.runbook.premerge.checks import Finding
from softbee.runbook.premerge.stats import Stats
from softbee.runbook.util.sqltext import Statement, one_line, split_sql

MB = 1024 * 1024
POST_DEPLOY = re.compile(r"#\s*runbook:\s*post-deploy\b", re.IGNORECASE)


@dataclass(frozen=True)
class LockModel:
    """The rates and thresholds of the estimate (defaults: docs/review.md)."""

    rows_per_s: float = 10_000  # rows an UPDATE/DELETE changes per second, indexes and WAL included
    index_bytes_per_s: float = 20 * MB  # table bytes an index build reads and sorts per second
    rewrite_bytes_per_s: float = 25 * MB  # table + index bytes a rewrite copies per second
    scan_bytes_per_s: float = 100 * MB  # table bytes a validating scan reads per second
    regular_s: float = 180.0  # GitLab: a regular migration should hold locks < 3 min
    post_deploy_s: float = 600.0  # GitLab: a post-deploy migration < 10 min
    large_rows: int = 100_000  # below both: a table this size is a warning, not silence
    large_bytes: int = 100 * MB

    def threshold(self, post_deploy: bool) -> float:
        """The lock time a revision may hold: post-deploy or regular."""
        return self.post_deploy_s if post_deploy else self.regular_s


@dataclass(frozen=True)
class StatementEstimate:
    """One statement's lock time and how it was worked out."""

    kind: str  # rows, index build, rewrite, scan
    table: str
    seconds: float
    basis: str  # "40,000,000 rows at 10,000 rows/s"
    statement: Statement


_NAME = r'(?:"(?:[^"]|"")+"|`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:"(?:[^"]|"")+"|`(?:[^`]|``)+`|[\w$]+))*'
_UPDATE = re.compile(rf"^UPDATE\s+(?:ONLY\s+)?(?P<t>{_NAME})", re.IGNORECASE)
_DELETE = re.compile(rf"^DELETE\s+FROM\s+(?:ONLY\s+)?(?P<t>{_NAME})", re.IGNORECASE)
_INDEX = re.compile(rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<c>CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
                    rf"(?:{_NAME}\s+)?ON\s+(?:ONLY\s+)?(?P<t>{_NAME})", re.IGNORECASE)
_COPY = re.compile(rf"^INSERT\s+INTO\s+{_NAME}.*?\bSELECT\b.*?\bFROM\s+(?P<t>{_NAME})", re.IGNORECASE)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<t>{_NAME})\s+(?P<a>.*)$",
                    re.IGNORECASE)
_REWRITE = re.compile(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", re.IGNORECASE)
_SCAN = re.compile(r"\bSET\s+NOT\s+NULL\b|\bFOREIGN\s+KEY\b|\bCHECK\s*\(", re.IGNORECASE)
_BUILD = re.compile(r"\bADD\s+(?:CONSTRAINT\s+\S+\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b(?!.*\bUSING\s+INDEX\b)",
                    re.IGNORECASE)
_NOT_VALID = re.compile(r"\bNOT\s+VALID\b", re.IGNORECASE)


def _table(name: str) -> str:
    parts = re.findall(r'"(?:[^"]|"")+"|`(?:[^`]|``)+`|[^.\s"`]+', name)
    return ".".join(p[1:-1] if p[0] in '"`' else p.lower() for p in parts)


def estimate_statement(st: Statement, stats: Stats, model: LockModel) -> StatementEstimate | None:
    """The lock time of one statement from the sizes in ``stats``; None when it holds none worth counting."""
    code = st.code
    if m := _UPDATE.match(code) or _DELETE.match(code):
        table = _table(m["t"])
        found = stats.table(table)
        if found is None or not found.rows:
            return None
        scope = "up to " if re.search(r"\bWHERE\b", code, re.IGNORECASE) else ""
        return StatementEstimate("rows", table, found.rows / model.rows_per_s,
                                 f"{scope}{found.rows:,} rows at {model.rows_per_s:,.0f} rows/s", st)
    if (m := _INDEX.match(code)) and not m["c"]:
        if stats.dialect in ("mysql", "mariadb"):
            return None  # InnoDB builds a secondary index online: writes go on
        return _by_bytes("index build", _table(m["t"]), stats, model.index_bytes_per_s, st, False)
    if m := _COPY.match(code):
        return _by_bytes("rewrite", _table(m["t"]), stats, model.rewrite_bytes_per_s, st, True)
    if m := _ALTER.match(code):
        table, actions = _table(m["t"]), m["a"]
        if _REWRITE.search(actions):
            return _by_bytes("rewrite", table, stats, model.rewrite_bytes_per_s, st, True)
        if _BUILD.search(actions):
            return _by_bytes("index build", table, stats, model.index_bytes_per_s, st, False)
        if _SCAN.search(actions) and not _NOT_VALID.search(actions):
            return _by_bytes("scan", table, stats, model.scan_bytes_per_s, st, False)
    return None


def _by_bytes(kind: str, table: str, stats: Stats, rate: float, st: Statement,
              with_indexes: bool) -> StatementEstimate | None:
    found = stats.table(table)
    if found is None:
        return None
    size = found.total_bytes if with_indexes else found.table_bytes
    if not size:
        return None
    what = "table and index bytes" if with_indexes else "table bytes"
    return StatementEstimate(kind, table, size / rate,
                             f"{human_bytes(size)} of {what} at {human_bytes(rate)}/s", st)


@dataclass(frozen=True)
class RevisionLocks:
    """A revision's estimated lock time, the statements it comes from, and its threshold."""

    seconds: float
    threshold_s: float
    post_deploy: bool
    statements: tuple[StatementEstimate, ...]


def estimate_revision(sql: str, stats: Stats, model: LockModel, post_deploy: bool = False) -> RevisionLocks:
    """The lock time of a revision's SQL (its online phases left out) and each statement's part."""
    parts = [e for st in split_sql(guarded_sql(sql))
             if (e := estimate_statement(st, stats, model)) is not None]
    return RevisionLocks(sum(e.seconds for e in parts), model.threshold(post_deploy), post_deploy,
                         tuple(parts))


_RULES = {
    "rows": ("large-table-update",
             "use online.backfill(table, values, where=<rows not yet done>): short keyset batches "
             "outside the migration's transaction, the application writing in between "
             "(docs/review.md)"),
    "index build": ("blocking-index-build",
                    "use online.create_index(...) in online.run_phases(...): CREATE INDEX "
                    "CONCURRENTLY, outside the transaction, writes go on"),
    "rewrite": ("table-rewrite",
                "expand and contract: add a new column, fill it with online.backfill, switch the "
                "code, then drop the old one"),
    "scan": ("blocking-scan",
             "validate without blocking: online.set_not_null(...) for NOT NULL, or add the "
             "constraint NOT VALID and VALIDATE CONSTRAINT it in a later step"),
}


def lock_findings(revision: str, locks: RevisionLocks, stats: Stats, model: LockModel) -> list[Finding]:
    """Each slow statement (error over the threshold, warning on a large table) and the revision's total."""
    findings: list[Finding] = []
    for e in locks.statements:
        rule, fix = _RULES[e.kind]
        if e.kind == "rows" and e.statement.code.upper().startswith("DELETE"):
            rule, fix = "large-table-delete", ("delete in batches outside the migration (a "
                                               "background job), then drop what is left")
        found = stats.table(e.table)
        large = found is not None and ((found.rows or 0) >= model.large_rows
                                       or (found.table_bytes or 0) >= model.large_bytes)
        if e.seconds > locks.threshold_s:
            severity = "error"
        elif large:
            severity = "warning"
        else:
            continue
        verb = one_line(e.statement.code).split(" ")[0].upper()
        what = ("CREATE INDEX without CONCURRENTLY" if e.kind == "index build" and verb == "CREATE"
                else f"{verb} {e.table}")
        size = (f"{found.rows:,} rows" if e.kind == "rows" and found and found.rows
                else human_bytes(found.total_bytes if e.kind == "rewrite" else found.table_bytes)
                if found else "size unknown")
        on = f" on {e.table}" if what.startswith("CREATE INDEX") else ""
        findings.append(Finding(
            "lock time", rule, severity,
            f"{what}{on}: {size}: about {human_seconds(e.seconds)} of locks ({e.basis}; "
            f"in `{_excerpt(e.statement.text)}`)", fix, revision, e.table))
    if locks.seconds > locks.threshold_s:
        kind = "post-deploy" if locks.post_deploy else "regular"
        findings.append(Finding(
            "lock time", "lock-time-over-threshold", "error",
            f"estimated lock time {human_seconds(locks.seconds)} is over the "
            f"{human_seconds(locks.threshold_s)} a {kind} migration may hold its locks",
            "move the slow statements into online phases (online.run_phases); a revision that "
            "runs after the deploy can say `# runbook: post-deploy` (10 min threshold)", revision))
    return findings


def is_post_deploy(source: str) -> bool:
    """True when a revision file marks itself post-deploy (``# runbook: post-deploy``)."""
    return bool(POST_DEPLOY.search(source))


def human_seconds(seconds: float) -> str:
    """``45 s``, ``7 min``, ``1 h 7 min``."""
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def human_bytes(size: float | None) -> str:
    """``12 GB``, ``350 MB``, ``20 KB`` (powers of 1024)."""
    if size is None:
        return "size unknown"
    for unit, scale in (("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", MB), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{size:.0f} bytes"


def _excerpt(text: str, limit: int = 70) -> str:
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
