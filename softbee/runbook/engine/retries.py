"""Lock retries for every statement of a migration: lose a lock to the application, wait, try again.

A migration's ``ALTER TABLE`` queued behind an application's long read holds every later
reader and writer of that table behind it, so the run's ``lock_timeout`` must be short; but
a short timeout alone fails the run at the first busy moment. GitLab's ``with_lock_retries``
answers both: a short timeout, then a pause, then a longer timeout, a bounded number of
times. This module does that for every statement a revision runs (not only the online
phases, which retry on their own in ``online/tries.py``):

- **PostgreSQL**: each statement of the migration's transaction runs inside a
  ``SAVEPOINT``, its first attempts under a short ``lock_timeout`` (50 ms, doubled up to the
  run's: the application queues no longer behind it when the lock is busy a moment); when it
  stops on ``lock_timeout`` (SQLSTATE 55P03) or a deadlock (40P01) the savepoint is rolled
  back (the transaction, and all the run did in it, stays), an autovacuum holding the table
  is cancelled as the server would (``util/autovacuum.py``), the run pauses, and the
  statement runs again under a longer ``SET LOCAL lock_timeout``.
- **MySQL/MariaDB**: every DDL statement commits on its own, and a lock wait timeout (1205)
  undoes only the statement (unless the server runs with ``innodb_rollback_on_timeout``, where
  nothing is retried): the statement simply runs again, under longer
  ``lock_wait_timeout``/``innodb_lock_wait_timeout`` (whole seconds).
- **SQLite**: no retries. Its locks are database-wide: the wait for another writer is the
  busy timeout (the run's ``lock_timeout_ms``), and waiting again in steps would only be a
  longer busy timeout.

Statements in autocommit (online phases, ``autocommit_block``) and reads (``SELECT``,
``SHOW``, ``SET``...) are left alone. Every retry is said on the run's progress and recorded
(:class:`RetryLog`, in the result's summary); a statement that runs out of its budget fails
as before, and its one line says how often it was tried and how long it waited in all
(:func:`exhausted_note`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from softbee.runbook.errors import ParameterError
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.project.sessions import session_timeouts_of
from softbee.runbook.util.autovacuum import cancel_autovacuum
from softbee.runbook.util.error_codes import DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE, error_code
from softbee.runbook.util.sqltext import one_line, table_names

if TYPE_CHECKING:
    from softbee.runbook.project import Project

MYSQL_LOCK_WAIT_TIMEOUT = 1205
_PG_LOST_LOCK = {LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED}
_READS = ("SELECT", "SHOW", "SET", "RESET", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN",
          "COMMIT", "START", "PRAGMA", "EXPLAIN")
_SAVEPOINT = "softbee_lock_retry"
MIN_ATTEMPT_MS = 10  # a retry with less budget left than this is not made


@dataclass(frozen=True)
class LockRetries:
    """How a statement that loses its lock is retried (``retries=0``: never).

    On PostgreSQL a statement first tries under ``first_lock_timeout_ms`` (50 ms; 0: none),
    then under twice that and so on, a pause of ``pause_s`` after each, until it reaches the
    run's ``lock_timeout_ms``: these short tries keep the application's queue behind it short
    and are not counted as retries. Then (elsewhere: from the first try) it runs under the
    run's ``lock_timeout_ms``; each retry first pauses (``pause_s``, doubled each time up to
    ``max_pause_s``), then runs under the previous timeout times ``growth`` (at most
    ``max_lock_timeout_ms``). ``budget_s`` bounds the time one statement may spend waiting for
    locks and pausing, in all: a retry that would go past it is cut short or not made.
    Defaults, with ``lock_timeout_ms=5000``: 50 ms, 100, ... 3.2 s (pauses of 0.25 s), then
    5 s + 0.25 + 10 s + 0.5 + 20 s, under a minute; with 300 ms, under 6 s.
    """

    retries: int = 3
    first_lock_timeout_ms: int = 50
    growth: float = 2.0
    pause_s: float = 0.25
    max_pause_s: float = 5.0
    max_lock_timeout_ms: int = 20_000
    budget_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ParameterError(f"lock retries must be a whole number, 0 or more, not {self.retries!r}")
        for name in ("growth", "pause_s", "max_pause_s", "budget_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ParameterError(f"lock retries' {name} must be a number, 0 or more, not {value!r}")
        if self.growth < 1:
            raise ParameterError(f"lock retries' growth must be 1 or more, not {self.growth!r}")
        first = self.first_lock_timeout_ms
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ParameterError("lock retries' first_lock_timeout_ms must be a whole number of "
                                 f"milliseconds, 0 or more, not {first!r}")

    def describe(self) -> str:
        """One phrase: the policy as the docs and a failure name it."""
        if not self.retries:
            return "no lock retries"
        first = (f"first lock_timeout {self.first_lock_timeout_ms} ms on PostgreSQL, "
                 if self.first_lock_timeout_ms else "")
        return (f"up to {self.retries} lock retries ({first}timeout x{self.growth:g} each, "
                f"pause from {self.pause_s:g}s, at most {self.budget_s:g}s waited per statement)")


NO_RETRIES = LockRetries(retries=0)


@dataclass
class RetryEvent:
    """One retry: which statement, the timeout it lost to, the pause, the next timeout."""

    statement: str
    attempt: int
    lost_after_ms: int | None
    pause_s: float
    next_timeout_ms: int
    blockers: str = ""
    autovacuum: str = ""  # an autovacuum in the way, cancelled (or not: the role may not)


@dataclass
class RetryLog:
    """Every retry of a run, and the statements that ran out of their budget."""

    events: list[RetryEvent] = field(default_factory=list)
    exhausted: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """The retries as plain dicts (a summary's, an archive's)."""
        return [asdict(event) for event in self.events]


@dataclass
class _Active:
    policy: LockRetries
    say: Callable[[str], None]
    project: Project | None
    log: RetryLog
    last_failure: tuple[Any, str] | None = None  # (the driver's error, the note for it)


_ACTIVE: ContextVar[_Active | None] = ContextVar("softbee_runbook_lock_retries", default=None)


@contextmanager
def lock_retries(
    policy: LockRetries | None, say: Callable[[str], None] | None = None,
    project: Project | None = None,
) -> Iterator[RetryLog]:
    """In the block, statements of this thread that lose a lock are retried by ``policy``."""
    log = RetryLog()
    policy = LockRetries() if policy is None else policy
    token = _ACTIVE.set(_Active(policy, say or (lambda _m: None), project, log))
    try:
        yield log
    finally:
        _ACTIVE.reset(token)


def exhausted_note(error: BaseException) -> str:
    """`` (tried 4 times, lock_timeout up to 2400 ms, 4.9 s waited in all)`` for a statement
    that ran out of its retries; empty for any other error."""
    active = _ACTIVE.get()
    orig = getattr(error, "orig", None) or error
    if active is None or active.last_failure is None or active.last_failure[0] is not orig:
        return ""
    return active.last_failure[1]


# -- the hook on every statement ----------------------------------------------------------------


def _is_change(statement: str) -> bool:
    """A statement of the revision's own that can wait for the application's locks.

    Alembic's version stamp is left out: no application touches ``alembic_version`` (the
    migration lock guards it), and written outside a savepoint its row's ``xmin`` is the
    migration's own transaction, which tests read to prove DDL and stamp commit together.
    """
    words = statement.lstrip().split(None, 1)
    return bool(words) and words[0].upper() not in _READS and "alembic_version" not in statement


@sa.event.listens_for(Engine, "do_execute")
def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    return _retrying(cursor, statement, context, lambda: cursor.execute(statement, parameters))


@sa.event.listens_for(Engine, "do_execute_no_params")
def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    return _retrying(cursor, statement, context, lambda: cursor.execute(statement))


def _retrying(cursor: Any, statement: str, context: Any, execute: Callable[[], Any]) -> bool:
    """Run the statement with retries when a policy is active and it applies; False: not handled."""
    active = _ACTIVE.get()
    if active is None or not active.policy.retries or not _is_change(statement):
        return False
    kind = dialect_named(context.dialect.name).lock_retry  # as the guarantees table says
    driver_connection = cursor.connection
    if kind == "none" or _autocommit(driver_connection):
        return False
    first_ms = session_timeouts_of(context.root_connection).lock_timeout_ms
    if not first_ms:  # no timeout: a statement never loses a lock, it waits
        return False
    if kind == "savepoint":
        _pg_attempts(cursor.connection, execute, statement, first_ms, active)
    else:
        _mysql_attempts(cursor.connection, execute, statement, first_ms, active)
    return True


def _autocommit(driver_connection: Any) -> bool:
    getter = getattr(driver_connection, "get_autocommit", None)  # PyMySQL, MySQLdb
    if callable(getter):
        return bool(getter())
    return bool(getattr(driver_connection, "autocommit", False))  # psycopg2, psycopg 3


class _Schedule:
    """The timeouts and pauses of one statement's attempts, within the budget.

    ``run_ms`` is the run's lock timeout; ``start_ms`` (PostgreSQL's short first try, below
    it) starts the short tries, doubled until they reach ``run_ms`` and not counted as retries.
    """

    def __init__(self, policy: LockRetries, run_ms: int, start_ms: int | None = None) -> None:
        self.policy, self.run_ms, self.pause_s = policy, run_ms, policy.pause_s
        self.timeout_ms = min(start_ms, run_ms) if start_ms else run_ms
        self.short_tries = 0
        timeout = self.timeout_ms
        while timeout < run_ms:
            self.short_tries, timeout = self.short_tries + 1, timeout * 2
        self.waited_s, self.attempt, self.retried, self.started = 0.0, 1, 0, time.monotonic()

    @property
    def most(self) -> int:
        """The most retries this statement may get: its short tries and the policy's."""
        return self.short_tries + self.policy.retries

    def lost(self) -> tuple[float, int] | None:
        """After a lost attempt: (pause, next timeout), or None when no retry is left."""
        self.waited_s = time.monotonic() - self.started
        left = self.policy.budget_s - self.waited_s
        short = self.timeout_ms < self.run_ms
        if (not short and self.retried >= self.policy.retries) or left <= 0:
            return None
        if short:  # a short try lost: the same short pause, the next one twice as long
            pause = min(self.policy.pause_s, left)
            grown = min(self.timeout_ms * 2, self.run_ms)
        else:
            pause = min(self.pause_s, left)
            grown = min(int(self.timeout_ms * self.policy.growth), self.policy.max_lock_timeout_ms)
            self.retried += 1
            self.pause_s = min(self.pause_s * 2, self.policy.max_pause_s)
        timeout = min(max(grown, self.timeout_ms), int((left - pause) * 1000))
        if timeout < MIN_ATTEMPT_MS:
            return None
        self.attempt += 1
        self.timeout_ms = timeout
        return pause, timeout

    def note(self) -> str:
        return (f" (tried {self.attempt} time(s), lock_timeout growing to {self.timeout_ms} ms, "
                f"{self.waited_s:.1f} s waited in all, budget {self.policy.budget_s:g} s)")


def _blockers(active: _Active, statement: str, waiting: int | None = None) -> str:
    """Who holds what ``statement`` waited for (besides the session ``waiting``), or ""."""
    if active.project is None:
        return ""
    try:
        from softbee.runbook.project.sessions import describe_blockers

        return describe_blockers(active.project, statement, waiting)
    except Exception:  # noqa: BLE001 - naming the holder is a courtesy, never a new failure
        return ""


def _report(active: _Active, statement: str, schedule: _Schedule, lost_ms: int | None,
            pause: float, timeout: int, error: BaseException, blockers: str = "",
            autovacuum: str = "") -> None:
    shown = one_line(statement)[:120]
    active.log.events.append(RetryEvent(shown, schedule.attempt - 1, lost_ms, round(pause, 3),
                                        timeout, blockers, autovacuum))
    held = f", held by {blockers}" if blockers else ""
    held += f"; {autovacuum}" if autovacuum else ""
    active.say(f"      lock for {shown!r} not granted within {lost_ms} ms{held} "
               f"({one_line(str(error))[:80]}): retry {schedule.attempt - 1}/"
               f"{schedule.most} in {pause:.2f}s with lock_timeout {timeout} ms")


def _give_up(active: _Active, statement: str, schedule: _Schedule, error: BaseException) -> None:
    note = schedule.note()
    active.last_failure = (error, note)
    active.log.exhausted.append({"statement": one_line(statement)[:200], "attempts": schedule.attempt,
                                 "waited_s": round(schedule.waited_s, 3)})


def _pg_attempts(connection: Any, execute: Callable[[], Any], statement: str, first_ms: int,
                 active: _Active) -> None:
    schedule = _Schedule(active.policy, first_ms, active.policy.first_lock_timeout_ms)
    control = connection.cursor()
    try:
        while True:
            control.execute(f"SAVEPOINT {_SAVEPOINT}")
            if schedule.timeout_ms != first_ms:
                control.execute(f"SET LOCAL lock_timeout = {int(schedule.timeout_ms)}")
            try:
                execute()
            except Exception as exc:
                if error_code(exc) not in _PG_LOST_LOCK:
                    raise
                lost_ms = schedule.timeout_ms
                step = schedule.lost()
                if step is None:
                    _give_up(active, statement, schedule, exc)
                    raise
                control.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                control.execute("SELECT pg_backend_pid()")
                blockers = _blockers(active, statement, control.fetchone()[0])
                autovacuum = cancel_autovacuum(control, table_names(statement))
                _report(active, statement, schedule, lost_ms, step[0], step[1], exc, blockers,
                        autovacuum)
                time.sleep(step[0])
                continue
            control.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            if schedule.timeout_ms != first_ms:
                control.execute(f"SET LOCAL lock_timeout = {int(first_ms)}")
            return
    finally:
        control.close()


def _mysql_attempts(connection: Any, execute: Callable[[], Any], statement: str, first_ms: int,
                    active: _Active) -> None:
    schedule = _Schedule(active.policy, max(first_ms, 1000))  # whole seconds there
    control = connection.cursor()
    try:
        while True:
            try:
                execute()
            except Exception as exc:
                if error_code(exc) != MYSQL_LOCK_WAIT_TIMEOUT or _rolls_back_on_timeout(control):
                    raise
                lost_ms = schedule.timeout_ms
                step = schedule.lost()
                if step is None or step[1] < 1000:
                    _give_up(active, statement, schedule, exc)
                    raise
                _report(active, statement, schedule, lost_ms, step[0], step[1], exc,
                        _blockers(active, statement))
                time.sleep(step[0])
                _mysql_set(control, step[1])
                continue
            if schedule.attempt > 1:
                _mysql_set(control, first_ms)
            return
    finally:
        control.close()


def _mysql_set(cursor: Any, milliseconds: int) -> None:
    seconds = max(1, round(milliseconds / 1000))
    cursor.execute(f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")


def _rolls_back_on_timeout(cursor: Any) -> bool:
    """True when the server rolls back the whole transaction on a lock wait timeout."""
    cursor.execute("SELECT @@innodb_rollback_on_timeout")
    row = cursor.fetchone()
    return bool(row and int(row[0]))
