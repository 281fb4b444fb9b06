"""Backfills that yield to the database: pause on replica lag, on a VACUUM of the table, on request.

Before each batch of an online backfill (PostgreSQL, ``online.backfill``) the batch asks
:class:`Gate` whether it may go. It waits, saying why, while:

- **a replica lags** more than ``max_replica_lag_s``, only when the run gives one (the
  default, None, never looks at standbys): measured on the primary, the largest
  ``replay_lag`` in ``pg_stat_replication`` (how long ago the WAL a standby has just replayed
  was written here; it grows while a standby's replay is paused or slow) of the standbys
  that have not yet replayed all the WAL written here (``replay_lsn``). Replicas not
  connected are not seen; a user without ``pg_monitor`` sees no lag, and the run says so once.
- **a VACUUM runs on the table** (``yield_to_vacuum``, off by default; autovacuum or a
  manual one, from ``pg_stat_progress_vacuum``): the backfill's dead rows would only make it
  longer.
- **an operator asked for a pause**: the pause file exists (:func:`default_pause_file`,
  ``$SOFTBEE_RUNBOOK_PAUSE_FILE``, else ``softbee-runbook.pause`` in ``$RUNBOOK_ARCHIVE_DIR`` or
  the temporary folder). Create it from another shell (``touch``) or a JupyterLab cell
  (:func:`pause_backfills`); delete it (:func:`resume_backfills`) to go on.

Every pause is bounded: after ``max_pause_s`` in a row the backfill stops with one line
saying why; its rows so far are committed and recorded (the phase reads ``paused``), so a
re-run resumes. The batch size itself follows the measured batch time (``Batches`` in
``phases.py``, about ``batch_ms`` a batch).

The runbook sets the run's :class:`Throttle` with :func:`throttling`; a backfill outside one
(plain ``flask db upgrade``) uses the defaults.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import MigrationFailed, ParameterError

PAUSE_FILE_NAME = "softbee-runbook.pause"


def default_pause_file() -> Path:
    """Where an operator's pause flag is looked for (see the module's docstring)."""
    named = os.environ.get("SOFTBEE_RUNBOOK_PAUSE_FILE")
    if named:
        return Path(named)
    folder = os.environ.get("RUNBOOK_ARCHIVE_DIR") or tempfile.gettempdir()
    return Path(folder) / PAUSE_FILE_NAME


def pause_backfills(path: Path | None = None) -> Path:
    """Ask running backfills to pause before their next batch (creates the pause file)."""
    target = path or default_pause_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    return target


def resume_backfills(path: Path | None = None) -> Path:
    """Let paused backfills go on (deletes the pause file)."""
    target = path or default_pause_file()
    target.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class Throttle:
    """When a backfill waits before its next batch, and for how long at most."""

    max_replica_lag_s: float | None = None  # None (the default): replicas are not looked at
    yield_to_vacuum: bool = False
    pause_file: Path | None = None  # None: default_pause_file(), read when the backfill starts
    max_pause_s: float = 900.0  # the longest pause in a row before the backfill gives up
    poll_s: float = 1.0  # how often a paused backfill looks again
    check_every_s: float = 1.0  # how often a running backfill reads lag and VACUUM

    def __post_init__(self) -> None:
        for name in ("max_replica_lag_s", "max_pause_s", "poll_s", "check_every_s"):
            value = getattr(self, name)
            if value is None and name == "max_replica_lag_s":
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ParameterError(f"{name} must be a number of seconds, 0 or more, not {value!r}")


_THROTTLE: ContextVar[Throttle | None] = ContextVar("softbee_runbook_throttle", default=None)


@contextmanager
def throttling(throttle: Throttle | None) -> Iterator[Throttle]:
    """Backfills run in this block (this thread) yield by ``throttle`` (None: the defaults)."""
    chosen = throttle or Throttle()
    token = _THROTTLE.set(chosen)
    try:
        yield chosen
    finally:
        _THROTTLE.reset(token)


def current_throttle() -> Throttle:
    """The run's throttle, or the defaults outside a run."""
    return _THROTTLE.get() or Throttle()


@dataclass
class Gate:
    """One backfill's gate: waits before a batch while a reason to pause holds (bounded)."""

    throttle: Throttle
    table: str
    say: Callable[[str], None]
    on_pause: Callable[[bool], None] = lambda _paused: None  # told when it pauses and resumes
    paused_s: float = 0.0  # paused in all, for the report
    pauses: int = 0
    _last_check: float = field(default=-math.inf, init=False)
    _told: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.pause_file = self.throttle.pause_file or default_pause_file()

    def before_batch(self, connection: Connection) -> None:
        """Return when the next batch may run; raise MigrationFailed after ``max_pause_s``."""
        reasons = self.reasons(connection)
        if not reasons:
            return
        started, shown = time.monotonic(), ""
        self.pauses += 1
        self.on_pause(True)
        try:
            while reasons:
                now = time.monotonic()
                waited = now - started
                text = "; ".join(reasons)
                if text != shown:
                    self.say(f"      PAUSED: {text} (paused {waited:.0f}s; gives up after "
                             f"{self.throttle.max_pause_s:g}s)")
                    shown = text
                if waited >= self.throttle.max_pause_s:
                    raise MigrationFailed(
                        f"backfill of {self.table} paused {waited:.0f}s in a row ({text}), more "
                        f"than max_pause_s={self.throttle.max_pause_s:g}: stopped; its batches so "
                        "far are committed and recorded")
                time.sleep(min(self.throttle.poll_s, max(self.throttle.max_pause_s - waited, 0)))
                reasons = self.reasons(connection, fresh=True)
        finally:
            self.paused_s += time.monotonic() - started
        self.say(f"      resumed after {time.monotonic() - started:.1f}s paused")
        self.on_pause(False)

    def reasons(self, connection: Connection, fresh: bool = False) -> list[str]:
        """Why the backfill should wait now (empty: it may go)."""
        found = []
        if self.pause_file.exists():
            found.append(f"paused by the operator ({self.pause_file} exists: delete it, or call "
                         "online.resume_backfills(), to go on)")
        now = time.monotonic()
        if not fresh and not found and now - self._last_check < self.throttle.check_every_s:
            return found
        self._last_check = now
        if self.throttle.max_replica_lag_s is not None:
            found += self._replica_lag(connection, self.throttle.max_replica_lag_s)
        if self.throttle.yield_to_vacuum:
            found += self._vacuum(connection)
        return found

    def _replica_lag(self, connection: Connection, most: float) -> list[str]:
        # replay_lag stays at its last value once a standby has caught up: only a standby that
        # has not replayed all the WAL written here is behind.
        rows = connection.execute(sa.text(
            "SELECT application_name, state, extract(epoch FROM replay_lag) AS lag, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS behind "
            "FROM pg_stat_replication")).all()
        if rows and all(row.state is None for row in rows):
            self._once("lag", "      replica lag is not readable by this user (grant it "
                              "pg_monitor): the backfill does not wait for replicas")
            return []
        lagging = [(row.application_name or "a standby", float(row.lag)) for row in rows
                   if row.lag is not None and float(row.lag) > most
                   and (row.behind is None or row.behind > 0)]
        return [f"replica {name} replays {lag:.1f}s behind (max_replica_lag_s={most:g})"
                for name, lag in lagging]

    def _vacuum(self, connection: Connection) -> list[str]:
        rows = connection.execute(sa.text(
            "SELECT a.backend_type, p.phase FROM pg_stat_progress_vacuum p "
            "JOIN pg_stat_activity a ON a.pid = p.pid "
            "WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND p.relid = CAST(:t AS regclass)"), {"t": self.table}).all()
        return [f"{'autovacuum' if row.backend_type == 'autovacuum worker' else 'VACUUM'} is "
                f"working on {self.table} ({row.phase})" for row in rows]

    def _once(self, key: str, message: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self.say(message)
