"""How a revision's phases run, and where their progress is recorded.

``online.py`` says *what* each phase does; this module says *how* a list of them runs:

- :class:`PlainRunner` runs every phase in its plain form inside the migration's
  transaction (SQLite, MySQL/MariaDB, offline SQL, a rehearsal, an ``env.py`` whose
  transaction cannot be left). Offline it marks each phase with a comment, which
  ``inspect_diff`` reads back (:func:`phases_in_sql`).
- :class:`OnlineRunner` (PostgreSQL) runs the short DDL phases in the migration's
  transaction and each online phase outside it, in autocommit, each statement tried for its
  lock briefly first and longer after, bounded (``tries.py``).
  A finished phase is recorded in :data:`PHASE_TABLE`, in the same transaction as its DDL
  or right after its online work, so a re-run skips it; the records of a revision are
  deleted in the transaction that moves ``alembic_version``. Under plain
  ``flask db upgrade`` it leaves the transaction with Alembic's ``autocommit_block``;
  under the runbook, the runbook checks and commits (:func:`phased`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from softbee.runbook.online.record import END_MARKER, MARKER, clear, done_phases, ensure_table, mark
from softbee.runbook.online.record import (  # the record's names stay importable from here
    PHASE_TABLE as PHASE_TABLE,
)
from softbee.runbook.online.record import PhaseRecord as PhaseRecord
from softbee.runbook.online.record import guarded_sql as guarded_sql
from softbee.runbook.online.record import in_progress as in_progress
from softbee.runbook.online.record import phase_table as phase_table
from softbee.runbook.online.record import phases_in_sql as phases_in_sql
from softbee.runbook.online.record import recorded_phases as recorded_phases
from softbee.runbook.online.throttle import Gate, current_throttle
from softbee.runbook.online.tries import execute_with_tries

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext


# -- running phases ------------------------------------------------------------------------


@dataclass
class PhaseTiming:
    """A phase run (or skipped) by this run, for the runbook's report."""

    revision: str
    phase: int
    phases: int
    name: str
    runs: str
    seconds: float
    rows: int | None = None
    skipped: bool = False


class PhaseRunner:
    """Runs a revision's phases in their plain form, inside the migration's transaction."""

    def __init__(self, context: MigrationContext, revision: str, direction: str,
                 say: Callable[[str], None] = print) -> None:
        self.context, self.revision, self.direction, self.say = context, revision, direction, say
        self.timings: list[PhaseTiming] = []
        self.current: PhaseRecord | None = None

    def run(self, phases: list[Phase]) -> None:
        """Each phase, in order."""
        for number, phase in enumerate(phases, start=1):
            if self.context.as_sql:
                where = "online on PostgreSQL" if phase.online else "in the transaction"
                self.context.impl.static_output(f"{MARKER} {number}/{len(phases)} ({where}): {phase.name}")
            phase.plain()
        if self.context.as_sql:
            self.context.impl.static_output(END_MARKER)

    def execute(self, connection: Connection, statement: Any,
                before_retry: Callable[[], None] | None = None) -> int:
        """Run one statement, trying again when it loses a lock to the application (``tries.py``).

        ``before_retry`` undoes what a failed attempt may have left (an INVALID index).
        """
        return execute_with_tries(connection, statement, self.say, before_retry)


class OnlineRunner(PhaseRunner):
    """PostgreSQL: DDL phases in the transaction, online phases outside it, each one recorded."""

    def run(self, phases: list[Phase]) -> None:
        connection = self.context.connection
        assert connection is not None
        ensure_table(connection)
        done = done_phases(connection, self.revision, self.direction)
        total = len(phases)
        for number, phase in enumerate(phases, start=1):
            where = "online" if phase.online else "in the transaction"
            label = f"{self.revision} phase {number}/{total} ({where}): {phase.name}"
            record = PhaseRecord(self.revision, self.direction, number, total, phase.name[:200],
                                 "running", None, None)
            if number in done:
                self.say(f"      {label}: done by an earlier run, skipped")
                self.timings.append(PhaseTiming(self.revision, number, total, phase.name, where,
                                                0.0, skipped=True))
                continue
            self.say(f"      {label}")
            started = time.perf_counter()
            self.current = record
            if phase.online:
                with self.outside_transaction() as autocommit:
                    mark(autocommit, record)
                    phase.run_online(autocommit, self)
                    record.state = "done"
                    mark(autocommit, record)
            else:
                phase.plain()
                record.state = "done"
                mark(self.context.connection, record)  # with its DDL: both or neither
            seconds = round(time.perf_counter() - started, 3)
            self.timings.append(PhaseTiming(self.revision, number, total, phase.name, where,
                                            seconds, record.rows_done))
            self.say(f"      done in {seconds:.3f}s")
        clear(self.context.connection, self.revision, self.direction)  # with alembic_version

    def progress(self, connection: Connection, rows_done: int, rows_total: int) -> None:
        """Record how far the current phase is."""
        assert self.current is not None
        self.current.rows_done, self.current.rows_total = rows_done, rows_total
        mark(connection, self.current)

    @contextmanager
    def outside_transaction(self) -> Iterator[Connection]:
        """Leave the migration's transaction (committing it) for an autocommit connection."""
        with self.context.autocommit_block():
            connection = self.context.connection
            assert connection is not None
            with bounded_lock_timeout(connection):
                yield connection


DEFAULT_LOCK_TIMEOUT_MS = 2000


@contextmanager
def bounded_lock_timeout(connection: Connection) -> Iterator[None]:
    """Online statements never wait forever: the session's lock_timeout, or 2 s when it has none.

    Plain ``flask db upgrade`` sets none, nor does a runbook run with ``lock_timeout_ms=0``;
    an online phase's retries need its statements to give up (an ``ADD CONSTRAINT`` queued
    behind an idle transaction would otherwise hold every writer behind it too).
    """
    previous = connection.exec_driver_sql("SHOW lock_timeout").scalar_one()
    if previous not in ("0", "0ms"):
        yield
        return
    connection.exec_driver_sql(f"SET lock_timeout = {DEFAULT_LOCK_TIMEOUT_MS}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"SET lock_timeout = '{previous}'")


@dataclass
class Phasing:
    """The runbook's hold on a phased run: its connection, its check-and-commit, what ran.

    ``checkpoint`` checks the guarded work so far and commits it, before an online phase;
    ``resume`` opens the next guarded transaction after it (taking that segment's baseline).
    """

    connection: Connection
    checkpoint: Callable[[], None]
    resume: Callable[[], None]
    say: Callable[[str], None]
    timings: list[PhaseTiming] = field(default_factory=list)


_phasing: ContextVar[Phasing | None] = ContextVar("softbee_runbook_phasing", default=None)


@contextmanager
def phased(phasing: Phasing) -> Iterator[Phasing]:
    """While this block runs, online phases leave the runbook's transaction through ``phasing``."""
    token = _phasing.set(phasing)
    try:
        yield phasing
    finally:
        _phasing.reset(token)


class RunbookRunner(OnlineRunner):
    """Under the runbook: the transaction so far is checked and committed by the runbook."""

    def __init__(self, context: MigrationContext, revision: str, direction: str,
                 phasing: Phasing) -> None:
        super().__init__(context, revision, direction, phasing.say)
        self.phasing = phasing
        self.timings = phasing.timings

    @contextmanager
    def outside_transaction(self) -> Iterator[Connection]:
        connection = self.phasing.connection
        self.phasing.checkpoint()  # the data-loss check of the work so far, then COMMIT
        level = connection.get_isolation_level()
        connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit = connection.begin()  # SQLAlchemy's own bookkeeping; no BEGIN is sent
        if connection.dialect.server_version_info >= (14,):
            # Killed mid-statement (a VALIDATE, an index build), the run's session notices
            # within a second and stops, instead of finishing work nobody waits for.
            connection.exec_driver_sql("SET client_connection_check_interval = 1000")
        try:
            with bounded_lock_timeout(connection):
                yield connection
        finally:
            autocommit.commit()
            connection.execution_options(isolation_level=level)
        # Only once the phase is done: a failed one is reported, not counted again.
        self.phasing.resume()  # the rest of the revision and its alembic_version: one transaction


def runner_for(context: MigrationContext, revision: str, direction: str) -> PhaseRunner:
    """The runner that fits: online on a live PostgreSQL connection that may leave its transaction."""
    if context.as_sql or context.dialect.name != "postgresql":
        return PhaseRunner(context, revision, direction)
    phasing = _phasing.get()
    if phasing is not None and context.connection is phasing.connection:
        return RunbookRunner(context, revision, direction, phasing)
    if getattr(context, "_in_external_transaction", True) or getattr(context, "_transaction", None) is None:
        # Someone else's transaction (the runbook's single-transaction run, a rehearsal, an
        # env.py that began its own): it cannot be left half-way, so the plain forms run in it.
        return PhaseRunner(context, revision, direction)
    return OnlineRunner(context, revision, direction)


# -- batches -------------------------------------------------------------------------------


class Batches:
    """Keyset batches sized to a time budget, with progress printed, recorded and drawn.

    A batch holds its rows' locks until it commits, so its time is the application's stall:
    after a slow batch the next is cut to the budget at once (down to a tenth), after a fast
    one it grows by a quarter at most, so a spike is not repeated and growth does not overshoot.
    The rate and ETA leave out the time paused at the gate (replica lag, VACUUM, operator).
    """

    FIRST_SIZE = 1000
    MAX_SIZE = 100_000
    GROW_AT_MOST = 1.25
    SHRINK_AT_MOST = 0.1

    def __init__(self, runner: PhaseRunner, *, total: int, batch_ms: int, pause_ms: int,
                 table: str = "") -> None:
        self.runner, self.total, self.budget_s = runner, total, batch_ms / 1000
        self.pause_s = pause_ms / 1000
        self.size, self.done, self.started = self.FIRST_SIZE, 0, time.perf_counter()
        self._shown = 0.0
        self.longest_s = 0.0  # the longest batch: the longest its row locks were held
        self._bar = _Bar(total)
        self._connection: Connection | None = None
        # Replica lag, a VACUUM of the table, an operator's pause file (throttle.py).
        self.gate = Gate(current_throttle(), table, runner.say, self._paused) if table else None

    def _paused(self, paused: bool) -> None:
        """Record the phase as paused (or running again), so status shows it."""
        if isinstance(self.runner, OnlineRunner) and self.runner.current and self._connection:
            self.runner.current.state = "paused" if paused else "running"
            self.runner.progress(self._connection, self.done, self.total)

    def run(self, connection: Connection, statement: Any) -> None:
        """One batch: wait at the gate, run it, adapt the next batch's size, show progress."""
        if self.gate is not None:
            self._connection = connection
            self.gate.before_batch(connection)
        began = time.perf_counter()
        self.done += self.runner.execute(connection, statement)
        took = max(time.perf_counter() - began, 1e-4)
        self.longest_s = max(self.longest_s, took)
        factor = min(self.GROW_AT_MOST, max(self.SHRINK_AT_MOST, self.budget_s / took))
        self.size = int(min(self.MAX_SIZE, max(100, self.size * factor)))
        self._show(connection)
        if self.pause_s:
            time.sleep(self.pause_s)

    def finish(self, connection: Connection) -> None:
        """The last progress line and record."""
        self._show(connection, final=True)

    def rate(self, now: float) -> float:
        """Rows a second so far, the time paused at the gate left out (0.0 before any)."""
        working = now - self.started - (self.gate.paused_s if self.gate is not None else 0.0)
        return self.done / working if working > 0 else 0.0

    def _show(self, connection: Connection | None, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._shown < 1.0:
            return
        self._shown = now
        rate = self.rate(now)
        left = max(self.total - self.done, 0)
        eta = f", ETA {left / rate:.0f}s" if rate and not final else ""
        if final and self.done:
            eta = f", longest batch {self.longest_s * 1000:.0f} ms"
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        if connection is not None and isinstance(self.runner, OnlineRunner):
            self.runner.progress(connection, self.done, self.total)  # recorded before it is said
        self.runner.say(f"      {self.done:,} / {self.total:,} rows{share}, {rate:,.0f} rows/s{eta}")
        self._bar.update(self.done)


class _Bar:
    """A progress bar in JupyterLab (an updated HTML ``<progress>``); nothing elsewhere."""

    def __init__(self, total: int) -> None:
        self.total, self.handle = total, None
        try:
            from IPython import get_ipython
            from IPython.display import HTML, display
        except ImportError:
            return
        if get_ipython() is None or not total:
            return
        self._html = HTML
        self.handle = display(HTML(self._render(0)), display_id=True)

    def _render(self, done: int) -> str:
        return (f'<progress value="{done}" max="{self.total}" style="width:30em"></progress> '
                f"{done:,} / {self.total:,} rows")

    def update(self, done: int) -> None:
        if self.handle is not None:
            self.handle.update(self._html(self._render(done)))


@dataclass
class Phase:
    """One step of a revision: a name, and whether it runs outside the migration's transaction."""

    name: str
    online: bool = field(default=False, init=False)

    def plain(self) -> None:
        """The plain form, inside the migration's transaction (SQLite, MySQL, offline SQL)."""
        raise NotImplementedError

    def run_online(self, connection: Connection, runner: PhaseRunner) -> None:
        """The online form on PostgreSQL, on a connection in autocommit (no transaction of ours)."""
        self.plain()
