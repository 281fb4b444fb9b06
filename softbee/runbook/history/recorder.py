"""Writing a run's history rows: one per revision step or stamp, in the step's own transaction.

:func:`recording` wraps the part of a writing run that moves the database. It creates the
table when the database has none (that is recorded too), hands the run a
:class:`HistoryRecorder` to use as its ``StepObserver`` (each finished revision inserts its
row on the migration's connection, so it commits or rolls back with the step: with the whole
run on PostgreSQL and SQLite, with each revision on MySQL/MariaDB and between an online
revision's phases), and, when the run fails, reads back what really committed and adds one
row in a transaction of its own saying where the run stopped: ``rolled back``,
``half-applied`` (MySQL/MariaDB), or ``phase k of n`` (an online revision). Rehearsals and dry
runs never call it. What was written is recorded among the run's facts (``history``), so the
archive can vouch for the database and the database for the archive
(:mod:`softbee.runbook.history.vouch`).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import Connection

from softbee.runbook.errors import PartiallyApplied, first_line
from softbee.runbook.history import table as tbl
from softbee.runbook.history.outside import recorded_state, version_now
from softbee.runbook.history.table import file_sha256, label
from softbee.runbook.project import Project
from softbee.runbook.project.dialects import rollback_fully
from softbee.runbook.util.history_name import RUN_ID_ENV, RUNBOOK_ENV
from softbee.urls import redact_text


class Observer(Protocol):
    """What a run tells of each revision (``engine.migrate.StepObserver``'s shape)."""

    def step_started(self, connection: Connection, script: Script) -> None:
        """``script`` is about to run."""

    def step_finished(self, connection: Connection, script: Script) -> None:
        """``script`` has run."""


def step_ends(direction: str, script: Script) -> tuple[str, str]:
    """The revision a step of ``script`` starts from and the one it ends at."""
    parents = label(script.down_revision)
    return (parents, script.revision) if direction == "upgrade" else (script.revision, parents)


def who() -> dict[str, Any]:
    """The row's who and what: run id, runbook, user@host, softbee's and Alembic's versions."""
    import alembic

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): say so rather than fail
        user = "unknown"
    try:
        softbee = metadata.version("softbee")
    except metadata.PackageNotFoundError:
        softbee = "unknown"
    return {"run_id": os.environ.get(RUN_ID_ENV) or None,
            "runbook": os.environ.get(RUNBOOK_ENV) or "interactive",
            "user_host": f"{user}@{socket.gethostname()}"[:255],
            "softbee_version": softbee, "alembic_version": alembic.__version__}


@dataclass
class HistoryRecorder:
    """Inserts one row per finished revision on the migration's own connection."""

    project: Project
    name: str
    direction: str
    database_id: str
    baseline: int  # the highest row id before this run: its rows are the ones above
    inner: Observer | None = None
    base_row: dict[str, Any] = field(default_factory=who)
    current: Script | None = None
    started: str = ""

    def step_started(self, connection: Connection, script: Script) -> None:
        """Note the revision and its start; tell the inner observer."""
        self.current, self.started = script, tbl.now()
        if self.inner is not None:
            self.inner.step_started(connection, script)

    def step_finished(self, connection: Connection, script: Script) -> None:
        """Insert the revision's ``applied`` row in the step's transaction."""
        if self.inner is not None:
            self.inner.step_finished(connection, script)
        before, after = step_ends(self.direction, script)
        self.write(connection, before, after, tbl.APPLIED, sha256=file_sha256(script.path),
                   started=self.started)
        self.current = None

    def write(self, connection: Connection, before: str, after: str, outcome: str, *,
              sha256: str | None = None, started: str | None = None, detail: str | None = None,
              direction: str | None = None) -> None:
        """Insert one row on ``connection`` (the caller's transaction commits it)."""
        tbl.insert_row(connection, self.name, {
            **self.base_row, "database_id": self.database_id,
            "direction": direction or self.direction, "revision_from": before,
            "revision_to": after, "started_at": started or tbl.now(), "finished_at": tbl.now(),
            "outcome": outcome, "sha256": sha256, "detail": detail})

    def written(self, connection: Connection) -> list[tbl.HistoryRow]:
        """This run's rows as committed (read back on ``connection``)."""
        connection.rollback()
        rows = [row for row in tbl.read_rows(connection, self.name) if row.id > self.baseline]
        connection.rollback()
        return rows

    def stopped(self, connection: Connection, exc: BaseException, start: str, target: str) -> None:
        """After a failure: one row, in a transaction of its own, saying where the run stopped.

        Where the finished revisions committed (MySQL/MariaDB, online revisions), the row is
        the failed revision's: ``half-applied``, ``phase k of n`` or ``rolled back``; where
        nothing committed (one transaction), it is the run's: ``rolled back``, start to target.
        """
        connection.rollback()
        reason = redact_text(first_line(exc))
        script = self.current
        kept = self.written(connection)
        phase = phase_reached(connection, script, self.direction) if script else None
        half = isinstance(exc, PartiallyApplied)
        if script is not None and (kept or half or phase):
            before, after = step_ends(self.direction, script)
            outcome = tbl.HALF_APPLIED if half else phase or tbl.ROLLED_BACK
            self.write(connection, before, after, outcome, sha256=file_sha256(script.path),
                       started=self.started, detail=reason)
            connection.commit()
        else:
            self.rolled_back(connection, start, target, reason)

    def rolled_back(self, connection: Connection, start: str, target: str, reason: str) -> None:
        """One ``rolled back`` row for the whole run, in a transaction of its own."""
        rollback_fully(connection)
        self.write(connection, start, target, tbl.ROLLED_BACK, detail=reason)
        connection.commit()

    def stamped(self, connection: Connection, before: Any, after: Any, script: Any) -> None:
        """A stamp's row, in the stamp's transaction (``script``: the stamped revision, or None)."""
        self.write(connection, label(before), label(after), tbl.STAMPED,
                   sha256=file_sha256(getattr(script, "path", None)), started=self.started)


def phase_reached(connection: Connection, script: Script, direction: str) -> str | None:
    """``phase k of n`` when an online revision stopped between its phases (else None)."""
    from softbee.runbook.online.phases import recorded_phases

    done = [r for r in recorded_phases(connection)
            if r.revision == script.revision and r.direction == direction]
    connection.rollback()
    if not done:
        return None
    last = max(done, key=lambda r: r.phase)
    return f"phase {last.phase} of {last.phases}"


def start(project: Project, connection: Connection, direction: str,
          inner: Observer | None = None, revision_now: str = "base") -> HistoryRecorder:
    """Make sure the table exists (creating it is recorded), and a recorder for this run."""
    name = project.history_table
    if not tbl.has_history(connection, name):
        connection.rollback()
        tbl.create_history(connection, name, {
            **who(), "started_at": tbl.now(), "finished_at": tbl.now(),
            "revision_from": revision_now, "revision_to": revision_now})
    identity = tbl.database_id(connection, name) or ""
    table = tbl.history_table(name)
    baseline = connection.execute(sa.select(sa.func.max(table.c.id))).scalar_one() or 0
    recorder = HistoryRecorder(project, name, direction, identity, int(baseline), inner)
    last = tbl.read_rows(connection, name, limit=1)
    now = version_now(connection)
    if last and recorded_state(last[-1]) != now:  # moved outside the runbooks: said once
        recorder.write(connection, recorded_state(last[-1]), now, tbl.FOUND_OUTSIDE,
                       direction="outside", detail="alembic_version moved with no run recorded")
    connection.commit()
    return recorder


Facts = Callable[..., None]


@contextmanager
def recording(
    project: Project, connection: Connection, plan: Any, *, enabled: bool,
    observer: Observer | None = None, facts: Facts | None = None,
) -> Iterator[Observer | None]:
    """Around a writing run of ``plan``: yield the observer to run with (a recorder, or ``observer``).

    ``facts`` records what was written for the archive (default: ``archive.summary.record``
    when in a notebook). Disabled (a rehearsal, ``history=False``): nothing is written.
    """
    if not enabled:
        (facts or notebook_facts)(history={"enabled": False})
        yield observer
        return
    start_at, target = label(plan.start), label(plan.target)
    recorder = start(project, connection, plan.direction, observer, start_at)
    try:
        yield recorder
    except BaseException as exc:
        try:
            recorder.stopped(connection, exc, start_at, target)
            _record(recorder, connection, facts, start_at)
        except Exception as failed:  # noqa: BLE001 - the run's own error is the one to see
            rollback_fully(connection)  # a refused COMMIT (SQLite: locked) leaves it open
            exc.add_note(f"softbee-runbook: its history row could not be written: "
                         f"{redact_text(first_line(failed))}")
        raise
    _record(recorder, connection, facts, start_at)


#: A bind's own history fact is ``history_bind_<bind>`` (a multi-database run, one per bind).
BIND_HISTORY_PREFIX = "history_bind_"


def _record(recorder: HistoryRecorder, connection: Connection, facts: Facts | None,
            start_at: str) -> None:
    facts = facts or notebook_facts
    rows = recorder.written(connection)
    found = history_facts(recorder.name, recorder.database_id, rows)
    bind = recorder.project.bind
    if bind is None:
        facts(history=found)
        return
    # A run's facts merge key by key, a later bind's ``history`` replacing an earlier one's:
    # each bind also keeps its own, with where it started (the record's revision_before is
    # the default bind's), so ``archive verify`` checks every bind's database.
    facts(history=found, **{f"{BIND_HISTORY_PREFIX}{bind}": {
        **found, "bind": bind, "revision_before": start_at}})


def notebook_facts(**facts: Any) -> None:
    """Record ``facts`` for the archive when running in a notebook (elsewhere: nothing)."""
    from IPython.core.interactiveshell import InteractiveShell

    if InteractiveShell.initialized():
        from softbee.runbook.archive.summary import record

        record(**facts)


def history_facts(name: str, identity: str, rows: list[tbl.HistoryRow]) -> dict[str, Any]:
    """What a run wrote, as its archived record keeps it: how many rows, and their digest.

    A digest rather than the rows keeps every archived record small (the index is read
    whole by ``archive verify``); ``archive verify --database`` recomputes it from the rows.
    """
    kept = [row for row in rows if row.outcome != tbl.CREATED]
    return {"enabled": True, "table": name, "database_id": identity, "rows": len(kept),
            "sha256": rows_digest(kept)}


def rows_digest(rows: list[tbl.HistoryRow]) -> str:
    """sha256 over each row's direction, revisions and outcome, in order."""
    import hashlib
    import json

    text = json.dumps([row_fact(row) for row in rows], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def row_fact(row: tbl.HistoryRow) -> dict[str, Any]:
    """The part of a row the archive keeps and compares."""
    return {"direction": row.direction, "from": row.revision_from, "to": row.revision_to,
            "outcome": row.outcome}
