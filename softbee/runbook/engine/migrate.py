"""Upgrade, downgrade and round trips, with counts, timings and every guard rail around them."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.script import Script
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from softbee.runbook.engine import autocommit
from softbee.runbook.engine.faults import lost_connection, root_cause
from softbee.runbook.engine.guards import (
    Snapshot,
    find_losses,
    migration_lock,
    require_confirmation,
    session_timeouts,
    take_snapshot,
)
from softbee.runbook.engine.online_run import (
    calls_run_phases,
    is_online,
    refuse_replaying_half_done,
    run_online_plan,
)
from softbee.runbook.engine.retries import LockRetries, exhausted_note
from softbee.runbook.engine.run_policies import under_run_policies
from softbee.runbook.errors import (
    DataLossError,
    MigrationFailed,
    RehearsalFailed,
    RevisionError,
    RoundTripMismatch,
    RunbookError,
    first_line,
)
from softbee.runbook.online.throttle import Throttle
from softbee.runbook.project import Project
from softbee.runbook.project.dialects import dialect_for, dialect_named, rollback_fully
from softbee.runbook.project.sessions import (
    caller_explains_timeouts,
    describe_blockers,
    describe_file_holders,
)
from softbee.runbook.review.counts import compare_counts, counts_records
from softbee.runbook.review.diff import schema_changes, schema_of
from softbee.runbook.review.plan import (  # made by the review, run here; the old names stay
    DIRECTIONS as DIRECTIONS,
)
from softbee.runbook.review.plan import (
    Plan,
    plan_migration,
)
from softbee.runbook.review.plan import (
    default_target as default_target,
)
from softbee.runbook.review.plan import (
    plan_to as plan_to,
)
from softbee.runbook.review.state import (
    State,
    current_revisions,
    down_revisions,
)
from softbee.urls import redact_text

Progress = Callable[[str], None]


class StepObserver(Protocol):
    """Told when each revision of a run starts and ends (``capture.StatementRecorder`` is one)."""

    def step_started(self, connection: Connection, script: Script) -> None:
        """``script`` is about to run on ``connection``."""

    def step_finished(self, connection: Connection, script: Script) -> None:
        """``script`` has run (its statements are in the run's transaction)."""


@dataclass
class Step:
    """One revision applied, and how long it took."""

    direction: str
    revision: str
    message: str
    seconds: float


@dataclass
class MigrationResult:
    """What a run did (or, for a rehearsal, would have done)."""

    plan: Plan
    end: str | None
    steps: list[Step]
    before: Snapshot
    after: Snapshot
    schema_before: dict[str, dict[str, str]]
    schema_after: dict[str, dict[str, str]]
    losses: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    locks: list[dict[str, Any]] = field(default_factory=list)
    sequences_moved: list[dict[str, Any]] = field(default_factory=list)
    rehearsal: bool = False
    committed: bool = False
    phases: list[dict[str, Any]] = field(default_factory=list)
    round_trip: str = ""  # a round trip's result in one sentence (empty: none was asked for)
    lock_retries: list[dict[str, Any]] = field(default_factory=list)  # engine/retries.py

    def counts_frame(self) -> pd.DataFrame:
        """Rows per table before, after and the difference."""
        return compare_counts(self.before.rows, self.after.rows)

    def steps_frame(self) -> pd.DataFrame:
        """Each revision applied with its time in seconds."""
        return pd.DataFrame(
            [vars(step) for step in self.steps],
            columns=["direction", "revision", "message", "seconds"],
        )

    def schema_frame(self) -> pd.DataFrame:
        """Tables and columns added, removed or changed between before and after."""
        return schema_changes(self.schema_before, self.schema_after)

    def phases_frame(self) -> pd.DataFrame:
        """Each phase of the online revisions: where it ran, its time and rows (empty when none)."""
        return pd.DataFrame(self.phases, columns=["revision", "phase", "phases", "name", "runs",
                                                  "seconds", "rows", "skipped"])

    def losses_frame(self) -> pd.DataFrame:
        """What the data-loss guard found (empty when nothing was lost)."""
        return pd.DataFrame(self.losses, columns=["kind", "object", "lost", "detail"])

    def review(self) -> list[tuple[str, pd.DataFrame | None]]:
        """What to show after the run, as (title, table): schema, losses, checks, locks..."""
        schema = self.schema_frame()
        shown: list[tuple[str, pd.DataFrame | None]] = [
            ("**Schema changes:**", schema) if not schema.empty else ("No schema change.", None)
        ]
        if self.phases:
            shown.append(("**Phases of the online revisions** (each committed on its own; "
                          "a re-run skips the finished ones):", self.phases_frame()))
        if self.losses:
            title = ("**Data this would lose:**" if self.rehearsal
                     else "**Data lost (allowed by `allow_data_loss=True`)**")
            shown.append((title, self.losses_frame()))
        if self.round_trip:
            shown.append((f"**Round trip:** {self.round_trip}",
                           pd.DataFrame(self.checks) if self.checks else None))
        if self.locks:
            shown.append(("**Locks the migration took:**", pd.DataFrame(self.locks)))
        if self.sequences_moved:
            shown.append(("**Sequences the rehearsal advanced** (PostgreSQL never rolls back "
                          "`nextval`):", pd.DataFrame(self.sequences_moved)))
        return shown

    def headline(self, final: State) -> str:
        """One Markdown line: the outcome and the revision the database is at now."""
        head = " (head)" if final.at_head else ""
        return f"**{self.summary()['outcome']}** — the database is at `{final.label}`{head}"

    def check_round_trip(self) -> None:
        """Raise AssertionError when a round trip did not give back the same schema and counts."""
        if self.checks and not all(check["ok"] for check in self.checks):
            raise AssertionError(
                "round trip did not come back to the same schema and row counts: see the table above"
            )

    def summary(self) -> dict[str, Any]:
        """Facts for the run record: revisions before and after, row deltas, outcome."""
        if self.rehearsal and not self.plan.transactional_ddl:
            outcome = (f"rehearsal: would end at {self.end or 'base'}; it ran on a scratch copy, "
                       "dropped: the database is as it was")
        elif self.rehearsal:
            outcome = f"rehearsal: would end at {self.end or 'base'}; everything was rolled back"
        else:
            outcome = f"{self.plan.direction} {self.plan.start or 'base'} -> {self.end or 'base'}"
        if self.round_trip:
            outcome += f"; round trip {self.round_trip}"
        return {
            "revision_before": self.plan.start or "base",
            "revision_after": (self.plan.start if self.rehearsal else self.end) or "base",
            "row_counts": counts_records(self.counts_frame()),
            "data_loss": self.losses,
            "rehearsal": self.rehearsal,
            "outcome": outcome,
            **({"round_trip": self.round_trip} if self.round_trip else {}),
            **({"lock_retries": self.lock_retries} if self.lock_retries else {}),
        }


def round_trip_phases(direction: str) -> tuple[str, str, str]:
    """How a failure names the phase of a round trip it happened in: first pass, back, re-apply."""
    back = "downgrade" if direction == "upgrade" else "upgrade"
    return (f"round trip, phase 1 of 3 ({direction})",
            f"round trip, phase 2 of 3 ({back}, after the {direction})",
            f"round trip, phase 3 of 3 (re-{direction}, after the {back})")


def round_trip_verdict(project: Project, plan: Plan, checks: list[dict[str, Any]]) -> str:
    """A round trip's result in one sentence: passed, failed (which checks), or nothing to do."""
    if not plan.scripts:
        heads = project.script().get_heads()
        where = "head" if plan.target is not None and list(heads) == [plan.target] else (
            plan.target or "base")
        return (f"nothing to round-trip: already at {where} (no {plan.direction}, no "
                f"downgrade ran; no check made)")
    back = "downgrade" if plan.direction == "upgrade" else "upgrade"
    failed = [check["check"] for check in checks if not check["ok"]]
    if failed:
        return (f"FAILED: {plan.direction}, {back}, {plan.direction} again over "
                f"{len(plan.scripts)} revision(s); {len(failed)} of {len(checks)} checks differ "
                f"({', '.join(failed)})")
    return (f"passed: {plan.direction}, {back}, {plan.direction} again over "
            f"{len(plan.scripts)} revision(s); schema and row counts identical at each end "
            f"({len(checks)} checks)")


@under_run_policies
def run_migration(
    project: Project,
    direction: str = "upgrade",
    target: str | None = None,
    *,
    round_trip: bool = False,
    count_mode: str = "exact",
    allow_data_loss: bool = False,
    rehearse: bool = False,
    lock_wait_s: float = 0.0,
    lock_timeout_ms: int | None = 5000,
    statement_timeout_ms: int | None = None,
    confirm: str | None = None,
    production: bool | None = None,
    progress: Progress | None = None,
    observer: StepObserver | None = None,
    lock_retries: LockRetries | None = None,
    throttle: Throttle | None = None,
) -> MigrationResult:
    """Migrate under the lock, in one transaction, refusing data loss unless allowed.

    A statement that loses its lock to the application is retried by ``lock_retries``
    (default :class:`~softbee.runbook.engine.retries.LockRetries`; ``NO_RETRIES`` for none);
    online backfills yield to replicas, VACUUM and the operator by ``throttle`` (default
    :class:`~softbee.runbook.online.throttle.Throttle`).

    With ``rehearse=True`` everything runs for real and is then rolled back. ``observer`` is
    told when each revision starts and ends (``capture`` records the statements that way).
    Where DDL cannot be rolled back (MySQL, MariaDB) the run is ``stepwise.run_stepwise``:
    revision by revision, the loss predicted first, a rehearsal on a scratch copy.
    """
    say = progress or (lambda _message: None)
    # A rehearsal writes nothing in the end, but it takes the same locks on the same tables.
    require_confirmation(project, confirm, production)
    # Its timeouts are explained here (_explain), with what became of the database.
    with project.connect() as conn, caller_explains_timeouts(conn):
        first = Plan(direction, None, None, [])
        try:
            # Fail fast, before the lock; under the timeouts already: a session holding
            # alembic_version must not make even this first read wait forever.
            with session_timeouts(conn, lock_timeout_ms, statement_timeout_ms):
                first = plan_migration(project, direction, target, conn)
                conn.commit()
            with migration_lock(project, conn, lock_wait_s), session_timeouts(
                conn, lock_timeout_ms, statement_timeout_ms
            ):
                plan = plan_migration(project, direction, target, conn)  # it may have moved
                conn.commit()
                blocks = autocommit.announce(conn.dialect.name, plan.scripts, plan.direction,
                                             rehearse=rehearse, round_trip=round_trip)
                if blocks:
                    say(blocks)
                if not dialect_for(conn).transactional_ddl:
                    return _run_without_transactional_ddl(
                        project, conn, plan, round_trip, count_mode, allow_data_loss, rehearse,
                        lock_timeout_ms, statement_timeout_ms, say, observer)
                refuse_replaying_half_done(conn, rehearse, round_trip)
                if runs_online(conn, plan, rehearse, round_trip, say):
                    return run_online_plan(
                        project, conn, plan, count_mode, allow_data_loss, say,
                        lambda exc, at, steps, outcome, advice: _explain(
                            project, exc, at, steps, lock_timeout_ms, statement_timeout_ms,
                            outcome, advice), observer)
                return _run_locked(project, conn, plan, round_trip, count_mode, allow_data_loss,
                                   rehearse, lock_timeout_ms, statement_timeout_ms, say, observer)
        except sa.exc.DBAPIError as exc:
            # The runbook's own statements under the timeouts (the re-plan, the reset) can hit
            # them too: one actionable line, as for a migration statement, not a traceback.
            raise _explain(project, exc, first, [], lock_timeout_ms, statement_timeout_ms) from exc


def runs_online(conn: Connection, plan: Plan, rehearse: bool, round_trip: bool, say: Progress) -> bool:
    """True when the plan runs in phases: PostgreSQL, an online revision, no rollback needed at the end."""
    online = [s.revision for s in plan.scripts if is_online(s, plan.direction)]
    if not online or conn.dialect.name != "postgresql":
        return False
    online = [s.revision for s in plan.scripts if calls_run_phases(s, plan.direction)]
    if (rehearse or round_trip) and online:  # autocommit_block's own line: autocommit.announce
        say(f"{', '.join(online)}: online phases run in their plain form inside the "
            f"{'rehearsal' if rehearse else 'round trip'}'s one transaction, so it can roll back")
    return not (rehearse or round_trip)


def _run_without_transactional_ddl(
    project: Project,
    conn: Connection,
    plan: Plan,
    round_trip: bool,
    count_mode: str,
    allow_data_loss: bool,
    rehearse: bool,
    lock_timeout_ms: int | None,
    statement_timeout_ms: int | None,
    say: Progress,
    observer: StepObserver | None = None,
) -> MigrationResult:
    """MySQL/MariaDB: revision by revision, the loss predicted first; a rehearsal on a copy."""
    from softbee.runbook.engine.scratch import scratch_copy
    from softbee.runbook.engine.stepwise import outcome_after_failure, run_stepwise

    def run(target: Project, connection: Connection, allow_loss: bool) -> MigrationResult:
        try:
            return run_stepwise(target, connection, plan, round_trip=round_trip,
                                count_mode=count_mode, allow_data_loss=allow_loss, say=say,
                                observer=observer, lock_timeout_ms=lock_timeout_ms,
                                statement_timeout_ms=statement_timeout_ms, on_copy=rehearse)
        except RunbookError:
            raise
        except Exception as exc:
            rollback_fully(connection)
            if rehearse:
                raise _explain(target, exc, plan, [], lock_timeout_ms, statement_timeout_ms,
                               "on the scratch copy", "fix the revision and rehearse again"
                               ) from exc
            raise _explain(target, exc, plan, [], lock_timeout_ms, statement_timeout_ms,
                           outcome_after_failure(target, connection, plan)) from exc

    if not rehearse:
        return run(project, conn, allow_data_loss)
    with scratch_copy(project, conn) as copy, copy.connect() as scratch_conn, \
            caller_explains_timeouts(scratch_conn):
        say(f"rehearsal on a scratch copy of the database ({copy.url.database}): "
            f"{project.dialect} cannot roll DDL back")
        # The copy's session gets the run's timeouts too: a rehearsal waits no longer than a run.
        with session_timeouts(scratch_conn, lock_timeout_ms, statement_timeout_ms):
            try:
                result = run(copy, scratch_conn, True)  # a copy: show a loss, not refuse it
            except (MigrationFailed, RoundTripMismatch) as exc:
                raise RehearsalFailed(
                    f"rehearsal on a scratch copy of the database failed: {exc}; the copy is "
                    f"dropped, and the real database {project.database_name} was not touched: "
                    f"it is still at {plan.start or 'base'}", exc) from exc
    result.rehearsal, result.committed = True, False
    say("rehearsal finished: the scratch copy was dropped, the database is as it was")
    return result


def _run_locked(
    project: Project,
    conn: Connection,
    plan: Plan,
    round_trip: bool,
    count_mode: str,
    allow_data_loss: bool,
    rehearse: bool,
    lock_timeout_ms: int | None,
    statement_timeout_ms: int | None,
    say: Progress,
    observer: StepObserver | None = None,
) -> MigrationResult:
    transaction = conn.begin()
    steps: list[Step] = []
    try:
        before = take_snapshot(conn, count_mode)
        schema_before = schema_of(conn)
        sequences_before = sequence_values(conn) if rehearse else {}
        phases = round_trip_phases(plan.direction) if round_trip and plan.scripts else (None,) * 3
        steps += _apply(project, conn, plan, say, observer, phases[0])
        checks: list[dict[str, Any]] = []
        if round_trip and plan.scripts:  # nothing pending: nothing to round-trip, and it says so
            checks = _round_trip(project, conn, plan, before, schema_before, count_mode, steps,
                                 say, phases)
        if plan.scripts:
            after = take_snapshot(conn, count_mode, baseline=before)
            schema_after = schema_of(conn)
        else:  # nothing ran in this transaction: counting and reading the schema again
            after, schema_after = before, schema_before  # would only find the same
        losses = find_losses(before, after)
        locks = held_locks(conn) if rehearse else []
        end = current_revisions(project, conn)
        result = MigrationResult(
            plan=plan, end=end[0] if end else None, steps=steps, before=before, after=after,
            schema_before=schema_before, schema_after=schema_after, losses=losses,
            checks=checks, locks=locks, rehearsal=rehearse,
            round_trip=round_trip_verdict(project, plan, checks) if round_trip else "",
        )
        failed_checks = [check for check in checks if not check["ok"]]
        if rehearse:
            transaction.rollback()
            # nextval() is never rolled back: say which sequences the rehearsal advanced.
            result.sequences_moved = moved_sequences(sequences_before, sequence_values(conn))
            conn.commit()
            say("rehearsal finished: rolled back, the database is as it was"
                + (" (sequences excepted, see below)" if result.sequences_moved else ""))
        elif failed_checks:
            transaction.rollback()
            listed = "; ".join(f"{c['check']}: {c['detail']}" for c in failed_checks)
            raise RoundTripMismatch(
                f"round trip did not come back to the same state ({listed}): rolled back, "
                "nothing changed; fix the revisions' downgrade() and try again",
                checks,
            )
        elif losses and not allow_data_loss:
            transaction.rollback()
            listed = "; ".join(loss["detail"] for loss in losses)
            raise DataLossError(
                f"{plan.direction} would lose data ({listed}): rolled back, nothing changed; "
                "back the data up and pass allow_data_loss=True if this loss is intended",
                losses,
            )
        else:
            transaction.commit()
            result.committed = True
        return result
    except RunbookError:
        rollback_fully(conn)
        raise
    except Exception as exc:
        rollback_fully(conn)
        run = "rehearsal" if rehearse else "round trip" if round_trip else "run"
        raise _explain(project, exc, plan, steps, lock_timeout_ms, statement_timeout_ms,
                       run=run) from exc


def _apply(
    project: Project, conn: Connection, plan: Plan, say: Progress,
    observer: StepObserver | None = None, phase: str | None = None,
) -> list[Step]:
    """Run the plan's scripts one at a time on ``conn``, timing each.

    ``phase`` names the round trip's phase these steps are (a failure carries it).
    """
    try:
        return _apply_steps(project, conn, plan, say, observer)
    except Exception as exc:
        if phase is not None and getattr(exc, "_softbee_phase", None) is None:
            setattr(exc, "_softbee_phase", phase)
        raise


def _apply_steps(
    project: Project, conn: Connection, plan: Plan, say: Progress, observer: StepObserver | None
) -> list[Step]:
    steps: list[Step] = []
    total = len(plan.scripts)
    if not total:  # nothing to run: no need to route (and so probe) the project's env.py
        return steps
    with project.bound(conn) as config:
        for number, script in enumerate(plan.scripts, start=1):
            message = (script.doc or "").strip()
            say(f"[{number}/{total}] {plan.direction} {script.revision}: {message}")
            started = time.perf_counter()
            if observer is not None:
                observer.step_started(conn, script)
            migrate_one(config, plan, script)
            seconds = round(time.perf_counter() - started, 3)
            if observer is not None:
                observer.step_finished(conn, script)
            steps.append(Step(plan.direction, script.revision, message, seconds))
            say(f"      done in {seconds:.3f}s")
    return steps


def migrate_one(config: Any, plan: Plan, script: Script) -> None:
    """Run one script of ``plan`` with Alembic; a failure carries the script it happened in."""
    destination = script.revision
    if plan.direction == "downgrade":
        parents = down_revisions(script)
        # below a merge point, go straight to the target; elsewhere one step down
        destination = (plan.target or "base") if len(parents) > 1 else (
            parents[0] if parents else "base")
    try:
        if plan.direction == "upgrade":
            command.upgrade(config, destination)
        else:
            command.downgrade(config, destination)
    except Exception as exc:
        exc.add_note(f"softbee-runbook: while running {script.revision} "
                     f"({(script.doc or '').strip()})")
        exc._softbee_script = script
        raise


def _round_trip(
    project: Project,
    conn: Connection,
    plan: Plan,
    before: Snapshot,
    schema_before: dict[str, dict[str, str]],
    count_mode: str,
    steps: list[Step],
    say: Progress,
    phases: tuple[str | None, ...] = (None, None, None),
) -> list[dict[str, Any]]:
    """Go back to the start and forward again, checking schema and counts at each end."""
    def rows_now() -> dict[str, int]:
        return take_snapshot(conn, count_mode, baseline=before).rows

    mid_rows, schema_mid = rows_now(), schema_of(conn)
    back_direction = "downgrade" if plan.direction == "upgrade" else "upgrade"
    back = Plan(back_direction, plan.target, plan.start, list(reversed(plan.scripts)))
    steps += _apply(project, conn, back, say, phase=phases[1])
    checks = [
        _check("schema back at start", schema_of(conn), schema_before),
        _check("row counts back at start", rows_now(), before.rows),
    ]
    steps += _apply(project, conn, plan, say, phase=phases[2])
    checks += [
        _check("schema after re-apply equals first apply", schema_of(conn), schema_mid),
        _check("row counts after re-apply equal first apply", rows_now(), mid_rows),
    ]
    return checks


def _check(name: str, got: Any, expected: Any) -> dict[str, Any]:
    ok = got == expected
    detail = "identical" if ok else _describe_difference(got, expected)
    return {"check": name, "ok": ok, "detail": detail}


def _describe_difference(got: dict[str, Any], expected: dict[str, Any]) -> str:
    keys = sorted(set(got) | set(expected))
    differing = [k for k in keys if got.get(k) != expected.get(k)]
    return "differs in: " + ", ".join(differing[:10])


def sequence_values(connection: Connection) -> dict[str, int | None]:
    """Each sequence's last value (PostgreSQL; empty elsewhere)."""
    if connection.dialect.name != "postgresql":
        return {}
    rows = connection.execute(sa.text(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema()"))
    return {name: value for name, value in rows}


def moved_sequences(before: dict[str, int | None], after: dict[str, int | None]) -> list[dict[str, Any]]:
    """Sequences whose last value changed between two readings."""
    return [{"sequence": name, "before": before.get(name), "after": value}
            for name, value in sorted(after.items()) if before.get(name) != value]


def held_locks(connection: Connection) -> list[dict[str, Any]]:
    """Table locks this session holds right now (PostgreSQL; empty elsewhere)."""
    if connection.dialect.name != "postgresql":
        return []
    rows = connection.execute(
        sa.text(
            "SELECT c.relname AS relation, l.mode FROM pg_locks l "
            "JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE l.pid = pg_backend_pid() AND l.granted AND n.nspname = current_schema() "
            "ORDER BY c.relname, l.mode"
        )
    ).mappings()
    return [dict(row) for row in rows]


def _explain(
    project: Project,
    exc: Exception,
    plan: Plan,
    steps: list[Step],
    lock_timeout_ms: int | None,
    statement_timeout_ms: int | None,
    outcome: str | None = None,
    advice: str | None = None,
    run: str = "run",
) -> RunbookError:
    """Turn a failure inside a migration into one actionable line.

    ``outcome`` says what became of the database (default: rolled back, still at the start);
    ``advice`` what to do about a failed statement (default: fix the script, or recover);
    ``run`` names the kind of run (a rehearsal, a round trip) in the advice that depends on it.
    """
    script = getattr(exc, "_softbee_script", None)
    lost = lost_connection(exc)
    exc = root_cause(exc)  # a PendingRollbackError stands for the lost connection before it
    script = script or getattr(exc, "_softbee_script", None)
    where = f"revision {script.revision} ({(script.doc or '').strip()})" if script else plan.direction
    phase = getattr(exc, "_softbee_phase", None)
    where = f"{phase}: {where}" if phase else where
    outcome = outcome or f"rolled back, database still at {plan.start or 'base'}"
    if isinstance(exc, CommandError):
        return RevisionError(f"{where}: {exc}")
    if autocommit.in_a_block(exc) or any(
            frame.name == "autocommit_block" for frame in traceback.extract_tb(exc.__traceback__)):
        orig = getattr(exc, "orig", None)
        statement = " ".join(str(getattr(exc, "statement", "") or "").split())[:200]
        reason = redact_text(first_line(orig if orig is not None else exc))
        advice = (autocommit.refused_advice(project, plan.direction, script, run) if script else
                  "run it outside the runbook's transaction")
        return MigrationFailed(
            f"{where}: its autocommit_block ran {statement!r}, which cannot run inside the {run}'s "
            f"transaction ({type(orig or exc).__name__}: {reason}); {outcome}: {advice}")
    orig = getattr(exc, "orig", None)
    statement = " ".join(str(getattr(exc, "statement", "") or "").split())[:200]
    reason = redact_text(first_line(orig if orig is not None else exc))
    timeout = dialect_named(project.dialect).timeout_reached(exc, lock_timeout_ms,
                                                             statement_timeout_ms)
    if timeout is not None and timeout.kind == "lock" and project.dialect == "sqlite":
        return MigrationFailed(
            f"{where}: {timeout.setting} reached: the SQLite file is locked by "
            f"{describe_file_holders(project)}; {outcome}: retry when that process lets go of "
            "it, or raise lock_timeout_ms"
        )
    if timeout is not None and timeout.kind == "lock":
        return MigrationFailed(
            f"{where}: {timeout.setting} reached{exhausted_note(exc)}: statement {statement!r} waited for a lock held "
            f"by {describe_blockers(project, statement)}; {outcome}: retry when that session "
            "ends, or raise lock_timeout_ms"
        )
    if timeout is not None:
        return MigrationFailed(
            f"{where}: {timeout.setting} reached by {statement!r}; {outcome}: raise "
            "statement_timeout_ms or batch the work"
        )
    if lost:
        return MigrationFailed(
            f"{where}: the connection to the database was lost ({reason}); {outcome}: "
            + (advice or "run it again once the database is back"))
    advice = advice or "fix the script, or fix the database by hand and run recover_stamp"
    return MigrationFailed(f"{where} failed: {type(orig or exc).__name__}: {reason}; {outcome}: {advice}")
