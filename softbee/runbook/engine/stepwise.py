"""Migrations where DDL cannot be rolled back (MySQL, MariaDB): one revision at a time, told truly.

There, every ``CREATE``, ``ALTER`` and ``DROP`` commits on its own, so the promises the
runbook keeps on PostgreSQL and SQLite (one transaction; the data-loss check after the
migration, rolled back on a loss) cannot hold. Instead:

- **The loss is predicted before anything runs** (:func:`predict_losses`): the revisions'
  SQL, rendered offline, is read for dropped tables and columns and deleted rows, and the
  live database is counted for what they hold. A revision that would lose data is refused
  unless ``allow_data_loss``; one whose SQL cannot be rendered offline is refused too.
- **Each revision is its own step**, committed with its ``alembic_version`` before the
  next one starts.
- **A failure is reported as what it left**: the statement that failed, what of the
  revision is already applied (the live schema against the schema before the revision),
  that ``alembic_version`` still records the previous revision, and the two
  ``recover_stamp`` calls that finish the job: undo the applied part, or complete it by
  hand and stamp (:class:`~softbee.runbook.errors.PartiallyApplied`). A revision whose
  first change failed left nothing: that is one line, naming the timeout and the session
  holding the lock when one stopped it.
- **A rehearsal runs on a scratch copy** of the database (``scratch.py``), never on the
  real tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.engine.apply import apply_plan
from softbee.runbook.engine.dataloss import find_losses, take_snapshot
from softbee.runbook.engine.predict import cannot_predict, predict_losses, step_sql
from softbee.runbook.engine.result import MigrationResult, Progress, StepObserver
from softbee.runbook.engine.retries import exhausted_note
from softbee.runbook.engine.roundtrip import check_equal, round_trip_phases, round_trip_verdict
from softbee.runbook.errors import (
    DataLossError,
    MigrationFailed,
    PartiallyApplied,
    RoundTripMismatch,
    RunbookError,
    first_line,
)
from softbee.runbook.project import Project
from softbee.runbook.project.advice import runbook_command
from softbee.runbook.project.dialects import TimeoutReached, dialect_named
from softbee.runbook.project.sessions import describe_blockers
from softbee.runbook.review.diff import schema_changes, schema_of
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import current_revisions, down_revisions
from softbee.runbook.util.options import RunOptions, Timeouts
from softbee.runbook.util.sqltext import one_line, split_sql
from softbee.urls import redact_text

if TYPE_CHECKING:
    from alembic.script import Script


@dataclass(frozen=True)
class StepRun:
    """How each step runs: progress, the observer told of each revision, the timeouts set."""

    say: Progress
    observer: StepObserver | None = None
    timeouts: Timeouts = Timeouts(None, None)
    on_copy: bool = False  # a rehearsal's scratch copy: a failure is the copy's, not the database's
    phase: str | None = None  # the round trip's phase the steps belong to, when one runs


def run_stepwise(
    project: Project,
    conn: Connection,
    plan: Plan,
    options: RunOptions,
    *,
    say: Progress,
    observer: StepObserver | None = None,
    on_copy: bool = False,
) -> MigrationResult:
    """Run ``plan`` one committed revision at a time, after predicting its data loss.

    ``observer`` is told when each revision of ``plan`` starts and ends, as on the
    one-transaction path (``capture`` records the statements that way). ``on_copy``: the
    database is a rehearsal's scratch copy, and a failure is told as the copy's.
    """
    round_trip, count_mode, allow_data_loss = (
        options.round_trip, options.count_mode, options.allow_data_loss)
    run = StepRun(say, observer, options.timeouts, on_copy=on_copy)
    phases = round_trip_phases(plan.direction) if round_trip and plan.scripts else (None,) * 3

    predicted = predict_losses(project, conn, plan)
    unpredictable = [loss for loss in predicted if loss["kind"] == "unpredictable"]
    if unpredictable and not allow_data_loss:
        raise cannot_predict(project, plan, unpredictable)
    if predicted and not allow_data_loss:
        listed = "; ".join(loss["detail"] for loss in predicted)
        raise DataLossError(
            f"{plan.direction} would lose data ({listed}): nothing was run ({project.dialect} "
            "cannot roll DDL back, so the loss is predicted before running); back the data up "
            "and pass allow_data_loss=True if this loss is intended",
            predicted,
        )
    before = take_snapshot(conn, count_mode)
    schema_before = schema_of(conn)
    conn.commit()
    steps = _steps(project, conn, plan, replace(run, phase=phases[0]))
    checks: list[dict[str, Any]] = []
    if round_trip and plan.scripts:  # nothing pending: nothing to round-trip, and it says so
        # Only the plan's own steps are observed, as on the one-transaction path.
        checks = _round_trip(project, conn, plan, before, schema_before, count_mode, steps,
                             replace(run, observer=None), phases)
    after = take_snapshot(conn, count_mode, baseline=before)
    schema_after = schema_of(conn)
    end = current_revisions(project, conn)
    conn.commit()
    failed = [check for check in checks if not check["ok"]]
    if failed and on_copy:
        listed = "; ".join(f"{c['check']}: {c['detail']}" for c in failed)
        raise RoundTripMismatch(
            f"round trip did not come back to the same state ({listed}) on the scratch copy: "
            "fix the revisions' downgrade()", checks)
    if failed:
        listed = "; ".join(f"{c['check']}: {c['detail']}" for c in failed)
        raise RoundTripMismatch(
            f"round trip did not come back to the same state ({listed}); NOT rolled back "
            f"({project.dialect} commits DDL as it runs): the database is at "
            f"{','.join(end) or 'base'}; fix the revisions' downgrade() and use recover_stamp",
            checks,
        )
    return MigrationResult(
        plan=plan, end=end[0] if end else None, steps=steps, before=before, after=after,
        schema_before=schema_before, schema_after=schema_after,
        losses=find_losses(before, after) or predicted, checks=checks, committed=True,
        round_trip=round_trip_verdict(project, plan, checks) if round_trip else "",
    )


def _round_trip(
    project: Project, conn: Connection, plan: Plan, before: Any,
    schema_before: dict[str, dict[str, str]], count_mode: str, steps: list[Any], run: StepRun,
    phases: tuple[str | None, ...],
) -> list[dict[str, Any]]:
    def rows_now() -> dict[str, int]:
        rows = take_snapshot(conn, count_mode, baseline=before).rows
        conn.commit()
        return rows

    mid_rows, schema_mid = rows_now(), schema_of(conn)
    back = Plan("downgrade" if plan.direction == "upgrade" else "upgrade",
                plan.target, plan.start, list(reversed(plan.scripts)))
    steps += _steps(project, conn, back, replace(run, phase=phases[1]))
    checks = [check_equal("schema back at start", schema_of(conn), schema_before),
              check_equal("row counts back at start", rows_now(), before.rows)]
    steps += _steps(project, conn, plan, replace(run, phase=phases[2]))
    checks += [check_equal("schema after re-apply equals first apply", schema_of(conn), schema_mid),
               check_equal("row counts after re-apply equal first apply", rows_now(), mid_rows)]
    return checks


def _steps(project: Project, conn: Connection, plan: Plan, run: StepRun) -> list[Any]:
    """Each revision of ``plan`` as its own committed step; a failure says what it left."""
    steps: list[Any] = []
    for script in plan.scripts:
        schema_before = schema_of(conn)
        recorded = current_revisions(project, conn)
        conn.commit()
        executed: list[str] = []

        def track(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            executed.append(statement)

        sa.event.listen(conn, "before_cursor_execute", track)
        try:
            steps += apply_plan(project, conn, Plan(plan.direction, None, plan.target, [script]),
                            run.say, run.observer)
            conn.commit()
        except RunbookError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            raise step_failed(project, conn, plan.direction, script, exc, schema_before,
                              recorded, executed, run) from exc
        finally:
            sa.event.remove(conn, "before_cursor_execute", track)
    return steps


def _changes(statements: list[str]) -> list[str]:
    """The statements that can change the database (not reads, not ``SET``, not Alembic's own)."""
    return [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "SHOW", "SET"))
            and "alembic_version" not in s]


def step_failed(
    project: Project, conn: Connection, direction: str, script: Script, exc: Exception,
    schema_before: dict[str, dict[str, str]], recorded: tuple[str, ...], executed: list[str],
    run: StepRun | None = None,
) -> MigrationFailed:
    """A revision that failed: :class:`PartiallyApplied` when part of it ran, else one line.

    A revision whose first change failed (a lock or statement timeout, a bad first statement)
    left nothing behind: it is a plain :class:`MigrationFailed` naming the timeout and the
    session that held the lock, with the database still at the recorded revision.
    """
    run = run or StepRun(say=lambda _message: None)
    applied = schema_changes(schema_before, schema_of(conn))
    conn.commit()
    changes = _changes(executed)
    ran_before = changes[:-1] if isinstance(exc, sa.exc.DBAPIError) and changes else changes
    timeout = dialect_named(project.dialect).timeout_reached(
        exc, run.timeouts.lock_timeout_ms, run.timeouts.statement_timeout_ms)
    if not applied.empty or ran_before:
        return partially_applied(project, conn, direction, script, exc, schema_before,
                                 recorded, executed, applied=applied, timeout=timeout, run=run)
    where = _where(script, run)
    statement = one_line(getattr(exc, "statement", "") or "")[:200]
    at = ",".join(recorded) or "base"
    nothing = (f"nothing of it ran, the scratch copy was at {at}" if run.on_copy
               else f"nothing of it ran, database still at {at}")
    if timeout is not None and timeout.kind == "lock":
        return MigrationFailed(
            f"{where}: {timeout.setting} reached{exhausted_note(exc)}: statement {statement!r} waited for a lock held "
            f"by {describe_blockers(project, statement)}; {nothing}: retry when that session "
            "ends, or raise lock_timeout_ms")
    if timeout is not None:
        return MigrationFailed(
            f"{where}: {timeout.setting} reached by {statement!r}; {nothing}: raise "
            "statement_timeout_ms or batch the work")
    orig = getattr(exc, "orig", None)
    reason = redact_text(first_line(orig if orig is not None else exc))
    return MigrationFailed(
        f"{where} failed" + (f" at {statement!r}" if statement else "")
        + f": {type(orig or exc).__name__}: {reason}; {nothing}: fix the script and "
        + ("rehearse again" if run.on_copy else "run again"))


def partially_applied(
    project: Project, conn: Connection, direction: str, script: Script, exc: Exception,
    schema_before: dict[str, dict[str, str]], recorded: tuple[str, ...], executed: list[str],
    applied: pd.DataFrame | None = None, timeout: TimeoutReached | None = None,
    run: StepRun | None = None,
) -> PartiallyApplied:
    """Describe a revision that failed half-way: what ran, what is applied, how to finish.

    On a rehearsal's scratch copy (``run.on_copy``) it says what the revision left on the
    copy, and no recovery: the copy is dropped.
    """
    run = run or StepRun(say=lambda _message: None)
    if applied is None:
        applied = schema_changes(schema_before, schema_of(conn))
        conn.commit()
    orig = getattr(exc, "orig", None)
    statement = one_line(getattr(exc, "statement", "") or "")[:200]
    reason = redact_text(first_line(orig if orig is not None else exc))
    if timeout is not None and timeout.kind == "lock":
        reason = (f"{timeout.setting} reached{exhausted_note(exc)} waiting for a lock held by "
                  f"{describe_blockers(project, statement)}")
    elif timeout is not None:
        reason = f"{timeout.setting} reached ({reason})"
    at = ",".join(recorded) or "base"
    undo = undo_sql(applied)
    remaining = remaining_sql(project, direction, script, executed)
    ran = _changes(executed)
    what = "; ".join(f"{r.change} {r.table}{' ' + r.item if r.item else ''}"
                     for r in applied.itertuples()) or (
        f"no schema change, but {len(ran) - 1} statement(s) before it ran and committed "
        f"(first: {one_line(ran[0])[:80]!r})" if len(ran) > 1 else "no schema change")
    failed = f"{_where(script, run)} failed at {statement!r}: {reason}."
    if run.on_copy:
        message = (f"{failed} On the scratch copy it had already applied: {what} (the copy is "
                   "dropped, nothing to recover): fix the revision and rehearse again")
    else:
        undo_call = runbook_command(project, "recover_stamp", fix_sql=sql_on_one_line(undo),
                                    dry_run=False)
        finish_call = runbook_command(
            project, "recover_stamp", fix_sql=sql_on_one_line(remaining) or "<the rest, by hand>",
            stamp_revision=destination(direction, script), dry_run=False)
        message = (
            f"{failed} {project.dialect} commits DDL as it runs, so this was NOT rolled back: "
            f"already applied: {what}; alembic_version still records {at}. Finish with "
            f"recover_stamp (dry run first): undo it with `` {undo_call} ``, or fix the failing "
            "statement and complete the revision by hand, then stamp it with "
            f"`` {finish_call} ``")
    return PartiallyApplied(message, revision=script.revision, recorded=at, statement=statement,
                            applied=applied.to_dict("records"), undo_sql=undo,
                            remaining_sql=remaining)


def _where(script: Script, run: StepRun) -> str:
    """``revision X (message)``, after the round trip's phase when it ran in one."""
    where = f"revision {script.revision} ({(script.doc or '').strip()})"
    return f"{run.phase}: {where}" if run.phase else where


def destination(direction: str, script: Script) -> str:
    """The revision a step of ``script`` ends at: itself going up, its parent going down."""
    if direction == "upgrade":
        return script.revision
    parents = down_revisions(script)
    return parents[0] if len(parents) == 1 else "base" if not parents else ",".join(parents)


def sql_on_one_line(sql: str) -> str:
    """``sql`` as one line for a command (its ``--`` comment lines left out)."""
    return one_line(" ".join(line for line in sql.splitlines()
                             if not line.strip().startswith("--")))


def outcome_after_failure(project: Project, conn: Connection, plan: Plan) -> str:
    """Where a run that failed between its steps left the database, for its one-line error."""
    start = plan.start or "base"
    try:
        now = ",".join(current_revisions(project, conn)) or "base"
        conn.commit()
    except sa.exc.DBAPIError:
        return (f"NOT rolled back ({project.dialect} commits DDL as it runs): read "
                "alembic_version for where it is")
    if now == start:
        return f"database still at {start}"
    return f"NOT rolled back ({project.dialect} commits DDL as it runs): the database is at {now}"


def undo_sql(applied: pd.DataFrame) -> str:
    """SQL that takes back what a half-applied revision added (indexes, columns, tables)."""
    statements: list[str] = []
    order = {"index": 0, "column": 1, "table": 2}
    rows = sorted(applied.itertuples(), key=lambda r: order[_kind(r.change, r.item)])
    for row in rows:
        kind = _kind(row.change, row.item)
        if row.change == "added" and kind == "index":
            statements.append(f"DROP INDEX `{row.item.split(' ', 1)[1]}` ON `{row.table}`")
        elif row.change == "added":
            statements.append(f"ALTER TABLE `{row.table}` DROP COLUMN `{row.item}`")
        elif row.change == "table added":
            statements.append(f"DROP TABLE `{row.table}`")
        else:
            statements.append(f"/* {row.change} {row.table} {row.item}: restore by hand "
                              "(from a backup: its data is gone) */")
    return ";\n".join(statements)


def _kind(change: str, item: str) -> str:
    if change.startswith("table"):
        return "table"
    return "index" if item.startswith("index ") else "column"


def remaining_sql(project: Project, direction: str, script: Script, executed: list[str]) -> str:
    """The revision's statements from the one that failed on, as offline SQL renders them."""
    try:
        statements = [st.text.strip() for st in split_sql(step_sql(project, direction, script))
                      if "alembic_version" not in st.code]
    except Exception:  # noqa: BLE001 - a revision that needs a live connection
        return ""
    return ";\n".join(statements[max(0, len(_changes(executed)) - 1):])

