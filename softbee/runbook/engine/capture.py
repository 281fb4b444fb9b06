"""The statements a migration really runs: a rehearsal with every cursor execution recorded.

Alembic's offline mode cannot render a revision that needs a live connection (it reads
``bind.engine.url``, reads rows to compute an update, reflects). :func:`capture_plan` runs
the pending revisions as a rehearsal (``run_migration(rehearse=True)``: under the migration
lock and the timeouts, in one transaction, rolled back) and records, per revision, every
statement SQLAlchemy sent on the runbook's connection (``before_cursor_execute``), its time
and, on PostgreSQL, the table locks the revision took.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import Connection

from softbee.runbook.engine.migrate import MigrationResult, Plan, held_locks, run_migration
from softbee.runbook.engine.retries import NO_RETRIES
from softbee.runbook.project import Project
from softbee.runbook.util.options import RunOptions
from softbee.urls import redact_text

# Alembic reading its own version table before each step (MySQL: DESCRIBE, to see it exists):
# bookkeeping, not the revision's SQL.
_VERSION_READ = re.compile(r"\s*(PRAGMA|SELECT|DESCRIBE|SHOW)\b[^;]*alembic_version",
                           re.IGNORECASE)


@dataclass
class CapturedStatement:
    """One statement as the driver received it, with its parameters and time."""

    revision: str
    statement: str
    parameters: Any
    seconds: float = 0.0
    rows_of_parameters: int = 1

    @property
    def sql(self) -> str:
        """The statement with its parameters written in as literals (for reading and lint)."""
        return inline_parameters(self.statement, self.parameters)


@dataclass
class CapturedRevision:
    """What one revision ran: its statements, and the locks it added (PostgreSQL)."""

    revision: str
    message: str
    direction: str
    below: str
    statements: list[CapturedStatement] = field(default_factory=list)
    locks: list[dict[str, Any]] = field(default_factory=list)


class StatementRecorder:
    """A :class:`~softbee.runbook.engine.migrate.StepObserver` that records each revision's statements."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.revisions: list[CapturedRevision] = []
        self._current: CapturedRevision | None = None
        self._started: float | None = None
        self._locks_before: list[dict[str, Any]] = []
        self._listening: Connection | None = None

    def step_started(self, connection: Connection, script: Script) -> None:
        """Listen on ``connection`` (once) and file what follows under ``script``."""
        if self._listening is None:
            sa.event.listen(connection, "before_cursor_execute", self._before)
            sa.event.listen(connection, "after_cursor_execute", self._after)
            self._listening = connection
        self._locks_before = held_locks(connection)
        parents = script.down_revision
        below = ",".join(parents) if isinstance(parents, (tuple, list)) else (parents or "base")
        self._current = CapturedRevision(
            script.revision, (script.doc or "").strip(), self.direction, below)

    def step_finished(self, connection: Connection, script: Script) -> None:
        """Close the revision's record, with the locks it took."""
        current, self._current = self._current, None
        if current is None:
            return
        seen = {(lock["relation"], lock["mode"]) for lock in self._locks_before}
        current.locks = [lock for lock in held_locks(connection)
                         if (lock["relation"], lock["mode"]) not in seen]
        self.revisions.append(current)

    def close(self) -> None:
        """Stop listening."""
        if self._listening is not None:
            sa.event.remove(self._listening, "before_cursor_execute", self._before)
            sa.event.remove(self._listening, "after_cursor_execute", self._after)
            self._listening = None

    def _before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
                _context: Any, executemany: bool) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
               _context: Any, executemany: bool) -> None:
        if self._current is None:
            return
        seconds = time.perf_counter() - (self._started or time.perf_counter())
        rows = len(parameters) if executemany else 1
        first = parameters[0] if executemany and parameters else parameters
        if _VERSION_READ.match(inline_parameters(statement, first)):
            return
        self._current.statements.append(
            CapturedStatement(self._current.revision, statement.strip(), first,
                              round(seconds, 4), rows))


@dataclass
class Capture:
    """A rehearsal's statements per revision, and the rehearsal's own result."""

    revisions: list[CapturedRevision]
    result: MigrationResult

    def statements_frame(self) -> pd.DataFrame:
        """Every statement run, by revision, in order, with its time in seconds."""
        return pd.DataFrame(
            [{"revision": s.revision, "step": n, "sql": s.sql, "seconds": s.seconds}
             for r in self.revisions for n, s in enumerate(r.statements, start=1)],
            columns=["revision", "step", "sql", "seconds"],
        )

    def locks_frame(self) -> pd.DataFrame:
        """Table locks each revision took (PostgreSQL; empty elsewhere)."""
        return pd.DataFrame(
            [{"revision": r.revision, **lock} for r in self.revisions for lock in r.locks],
            columns=["revision", "relation", "mode"],
        )

    def sql(self, revisions: Iterable[str] | None = None) -> str:
        """The captured statements as one SQL text, each revision under its ``-- Running`` line."""
        wanted = set(revisions) if revisions is not None else None
        parts: list[str] = []
        for r in self.revisions:
            if wanted is not None and r.revision not in wanted:
                continue
            arrow = f"{r.below} -> {r.revision}" if r.direction == "upgrade" else f"{r.revision} -> {r.below}"
            parts.append(f"-- captured from a rehearsal\n-- Running {r.direction} {arrow}\n")
            parts.extend(f"{s.sql};\n" for s in r.statements)
        return "".join(parts)


def capture_plan(
    project: Project,
    plan: Plan,
    *,
    lock_wait_s: float = 0.0,
    lock_timeout_ms: int | None = 5000,
    statement_timeout_ms: int | None = None,
    options: RunOptions | None = None,
) -> Capture:
    """Rehearse ``plan`` (locked, timed out, rolled back) and return the statements each revision ran.

    ``options`` (a :class:`~softbee.runbook.util.options.RunOptions`) may stand for the
    keyword arguments; the run is a rehearsal whatever it says.
    """
    options = RunOptions.given(options, lock_wait_s=lock_wait_s, lock_timeout_ms=lock_timeout_ms,
                               statement_timeout_ms=statement_timeout_ms)
    recorder = StatementRecorder(plan.direction)
    try:
        result = run_migration(
            project, plan.direction, plan.target or "base",
            options=options.but(rehearse=True), observer=recorder,
            lock_retries=NO_RETRIES,  # a review waits no longer than lock_timeout: it names the holder
        )
    finally:
        recorder.close()
    return Capture(recorder.revisions, result)


def inline_parameters(statement: str, parameters: Any) -> str:
    """``statement`` with its bound parameters (pyformat, named or qmark) written in as SQL literals."""
    if isinstance(parameters, dict) and parameters:
        text = re.sub(r"%\((\w+)\)s", lambda m: _literal(parameters.get(m[1])), statement)
        text = re.sub(r"(?<![:\w]):(\w+)", lambda m: _literal(parameters[m[1]])
                      if m[1] in parameters else m[0], text)
        return redact_text(text.replace("%%", "%"))
    if isinstance(parameters, (tuple, list)) and parameters:
        values = iter(parameters)
        text = re.sub(r"\?|%s", lambda m: _literal(next(values, None)), statement)
        return redact_text(text.replace("%%", "%"))
    return redact_text(statement)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
