"""Upgrade, downgrade and round trips, with counts, timings and every guard rail around them."""

from __future__ import annotations

import traceback
from contextlib import ExitStack
from typing import Any

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from softbee.runbook.engine import autocommit
from softbee.runbook.engine.apply import apply_plan
from softbee.runbook.engine.apply import migrate_one as migrate_one  # its old home: re-exported
from softbee.runbook.engine.dataloss import find_losses, take_snapshot
from softbee.runbook.engine.faults import lost_connection, outcome_after_loss, root_cause
from softbee.runbook.engine.guards import migration_lock, require_confirmation, session_timeouts
from softbee.runbook.engine.online_run import (
    calls_run_phases,
    is_online,
    refuse_replaying_half_done,
    run_online_plan,
)
from softbee.runbook.engine.result import (  # their old home: the names stay importable here
    MigrationResult as MigrationResult,
)
from softbee.runbook.engine.result import Progress as Progress
from softbee.runbook.engine.result import Step as Step
from softbee.runbook.engine.result import StepObserver as StepObserver
from softbee.runbook.engine.retries import LockRetries, exhausted_note
from softbee.runbook.engine.roundtrip import round_trip_checks
from softbee.runbook.engine.roundtrip import round_trip_phases as round_trip_phases
from softbee.runbook.engine.roundtrip import round_trip_verdict as round_trip_verdict
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
from softbee.runbook.history.recorder import recording
from softbee.runbook.online.throttle import Throttle
from softbee.runbook.project import Project
from softbee.runbook.project.dialects import dialect_for, dialect_named, rollback_fully
from softbee.runbook.project.sessions import (
    caller_explains_timeouts,
    describe_blockers,
    describe_file_holders,
)
from softbee.runbook.review.diff import schema_changes as schema_changes
from softbee.runbook.review.diff import schema_of
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
from softbee.runbook.review.state import current_revisions
from softbee.runbook.util.options import RunOptions
from softbee.urls import redact_text


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
    options: RunOptions | None = None,
    history: bool = True,
    lock_retries: LockRetries | None = None,
    throttle: Throttle | None = None,
) -> MigrationResult:
    """Migrate under the lock, in one transaction, refusing data loss unless allowed.

    A statement that loses its lock to the application is retried by ``lock_retries``
    (default :class:`~softbee.runbook.engine.retries.LockRetries`; ``NO_RETRIES`` for none);
    online backfills yield to VACUUM, the operator and (given ``max_replica_lag_s``) replicas
    by ``throttle`` (default :class:`~softbee.runbook.online.throttle.Throttle`).

    With ``rehearse=True`` everything runs for real and is then rolled back. ``observer`` is
    told when each revision starts and ends (``capture`` records the statements that way).
    Unless rehearsing or ``history=False``, each revision applied is recorded in the
    database's history table (:mod:`softbee.runbook.history`).
    Where DDL cannot be rolled back (MySQL, MariaDB) the run is ``stepwise.run_stepwise``:
    revision by revision, the loss predicted first, a rehearsal on a scratch copy.
    The keyword arguments from ``round_trip`` to ``production`` are a
    :class:`~softbee.runbook.util.options.RunOptions`; pass one as ``options`` instead.
    """
    options = RunOptions.given(
        options, round_trip=round_trip, count_mode=count_mode, allow_data_loss=allow_data_loss,
        rehearse=rehearse, lock_wait_s=lock_wait_s, lock_timeout_ms=lock_timeout_ms,
        statement_timeout_ms=statement_timeout_ms, confirm=confirm, production=production)
    say = progress or (lambda _message: None)
    # A rehearsal writes nothing in the end, but it takes the same locks on the same tables.
    require_confirmation(project, options.confirm, options.production)
    # Its timeouts are explained here (_explain), with what became of the database.
    with project.connect() as conn, caller_explains_timeouts(conn):
        first = Plan(direction, None, None, [])
        try:
            # Fail fast, before the lock; under the timeouts already: a session holding
            # alembic_version must not make even this first read wait forever.
            with session_timeouts(conn, options.timeouts):
                first = plan_migration(project, direction, target, conn)
                conn.commit()
            with migration_lock(project, conn, options.lock_wait_s), session_timeouts(
                conn, options.timeouts
            ), ExitStack() as recorded:
                plan = plan_migration(project, direction, target, conn)  # it may have moved
                conn.commit()
                observer = recorded.enter_context(recording(
                    project, conn, plan, enabled=history and not options.rehearse, observer=observer))
                blocks = autocommit.announce(conn.dialect.name, plan.scripts, plan.direction,
                                             rehearse=options.rehearse,
                                             round_trip=options.round_trip)
                if blocks:
                    say(blocks)
                if not dialect_for(conn).transactional_ddl:
                    return _run_without_transactional_ddl(project, conn, plan, options, say,
                                                          observer)
                refuse_replaying_half_done(conn, options.rehearse, options.round_trip)
                if runs_online(conn, plan, options.rehearse, options.round_trip, say):
                    return run_online_plan(
                        project, conn, plan, options, say,
                        lambda exc, at, steps, outcome, advice: _explain(
                            project, exc, at, steps, options, outcome, advice), observer)
                return _run_locked(project, conn, plan, options, say, observer)
        except sa.exc.DBAPIError as exc:
            # The runbook's own statements under the timeouts (the re-plan, the reset) can hit
            # them too: one actionable line, as for a migration statement, not a traceback.
            outcome = advice = None
            if lost_connection(exc):  # where it is, read from the database, never assumed
                outcome, advice = outcome_after_loss(project, conn, first.start, exc)
            raise _explain(project, exc, first, [], options, outcome, advice) from exc


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
    options: RunOptions,
    say: Progress,
    observer: StepObserver | None = None,
) -> MigrationResult:
    """MySQL/MariaDB: revision by revision, the loss predicted first; a rehearsal on a copy."""
    from softbee.runbook.engine.scratch import scratch_copy
    from softbee.runbook.engine.stepwise import outcome_after_failure, run_stepwise

    rehearse = options.rehearse

    def run(target: Project, connection: Connection, allow_loss: bool) -> MigrationResult:
        try:
            return run_stepwise(target, connection, plan,
                                options.but(allow_data_loss=allow_loss), say=say,
                                observer=observer, on_copy=rehearse)
        except RunbookError:
            raise
        except Exception as exc:
            rollback_fully(connection)
            if rehearse:
                raise _explain(target, exc, plan, [], options, "on the scratch copy",
                               "fix the revision and rehearse again") from exc
            raise _explain(target, exc, plan, [], options,
                           outcome_after_failure(target, connection, plan)) from exc

    if not rehearse:
        return run(project, conn, options.allow_data_loss)
    with scratch_copy(project, conn) as copy, copy.connect() as scratch_conn, \
            caller_explains_timeouts(scratch_conn):
        say(f"rehearsal on a scratch copy of the database ({copy.url.database}): "
            f"{project.dialect} cannot roll DDL back")
        # The copy's session gets the run's timeouts too: a rehearsal waits no longer than a run.
        with session_timeouts(scratch_conn, options.timeouts):
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
    options: RunOptions,
    say: Progress,
    observer: StepObserver | None = None,
) -> MigrationResult:
    round_trip, count_mode, rehearse = options.round_trip, options.count_mode, options.rehearse
    transaction = conn.begin()
    steps: list[Step] = []
    try:
        before = take_snapshot(conn, count_mode)
        schema_before = schema_of(conn)
        sequences_before = sequence_values(conn) if rehearse else {}
        phases = round_trip_phases(plan.direction) if round_trip and plan.scripts else (None,) * 3
        steps += apply_plan(project, conn, plan, say, observer, phases[0])
        checks: list[dict[str, Any]] = []
        if round_trip and plan.scripts:  # nothing pending: nothing to round-trip, and it says so
            checks = round_trip_checks(project, conn, plan, before, schema_before, count_mode,
                                       steps, say, phases)
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
        elif losses and not options.allow_data_loss:
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
        raise _explain(project, exc, plan, steps, options, run=run) from exc


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
    options: RunOptions,
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
    timeout = dialect_named(project.dialect).timeout_reached(
        exc, options.lock_timeout_ms, options.statement_timeout_ms)
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
        if isinstance(exc, (sa.exc.PendingRollbackError, sa.exc.ResourceClosedError)):
            # The driver's error was caught on the way (a check that may fail): SQLAlchemy's
            # "Can't reconnect until invalid transaction is rolled back" is all that is left.
            reason = "it had gone before the statement that found it"
        return MigrationFailed(
            f"{where}: the connection to the database was lost ({reason}); {outcome}: "
            + (advice or "run it again once the database is back"))
    advice = advice or "fix the script, or fix the database by hand and run recover_stamp"
    return MigrationFailed(f"{where} failed: {type(orig or exc).__name__}: {reason}; {outcome}: {advice}")
