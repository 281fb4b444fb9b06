"""Runs a plan that holds online revisions (PostgreSQL): short guarded transactions, online work between.

A plan is run this way when one of its revisions calls ``online.run_phases`` (and it is
not a rehearsal or a round trip, which need one transaction to roll back). Then:

- **Each revision is its own transaction**, or several when it has online phases: the
  DDL before an online phase is checked and committed (:class:`~softbee.runbook.online.phases.Phasing`),
  the online phase runs in autocommit under the migration's advisory lock, and the rest
  of the revision, with its ``alembic_version``, is one more transaction.
- **The data-loss guard counts only the tables a revision's guarded SQL touches** (read
  from its offline SQL, online phases left out). When every guarded statement can only
  add (a new table, column, index or constraint, NOT NULL, rows inserted), counting holds
  no lock of the migration's: rows are counted before its transaction and after its
  commit. Otherwise the touched tables are counted inside the transaction, rows and
  values, and a loss rolls that transaction back.
- **A failure says where the database is**: the revision ``alembic_version`` records (the
  revisions before the failing one are committed) and the failing revision's recorded
  phases, and that a re-run resumes there.
"""

from __future__ import annotations

import ast
import re
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from softbee.runbook.engine.apply import migrate_one
from softbee.runbook.engine.autocommit import blocks_in, finish_revision, revision_running
from softbee.runbook.engine.dataloss import Snapshot, find_losses, take_snapshot
from softbee.runbook.engine.faults import (
    READ_FAILURES,
    root_cause,
    unreadable_outcome,
    where_recorded,
)
from softbee.runbook.engine.result import MigrationResult, Progress, Step, StepObserver
from softbee.runbook.errors import (
    DataLossError,
    GuardError,
    MigrationFailed,
    RunbookError,
    first_line,
)
from softbee.runbook.online.phases import PhaseTiming, Phasing, guarded_sql, in_progress, phased
from softbee.runbook.project import Project
from softbee.runbook.project.dialects import rollback_fully
from softbee.runbook.review.counts import row_counts, user_tables
from softbee.runbook.review.diff import schema_of
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import current_revisions
from softbee.runbook.util.options import RunOptions
from softbee.runbook.util.sqltext import split_sql
from softbee.urls import redact_text

if TYPE_CHECKING:
    from alembic.script import Script

_ADDITIVE = re.compile(
    r"^\s*(CREATE\s+(UNIQUE\s+)?INDEX|CREATE\s+TABLE|CREATE\s+SEQUENCE|CREATE\s+TYPE|COMMENT\s+ON"
    r"|INSERT\s+INTO|UPDATE\s+alembic_version|ALTER\s+TABLE\s+\S+\s+(ADD|VALIDATE\s+CONSTRAINT"
    r"|DROP\s+CONSTRAINT|ALTER\s+COLUMN\s+\S+\s+(SET\s+NOT\s+NULL|SET\s+DEFAULT|DROP\s+DEFAULT)))",
    re.IGNORECASE,
)
_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|START\s+TRANSACTION)\b", re.IGNORECASE)
_NOT_ADDITIVE = re.compile(r"\bDROP\s+COLUMN\b|\bTYPE\b|\bRENAME\b|\bUSING\b", re.IGNORECASE)
# The statements whose tables GuardPlan reads, and the table (or list of tables) they name.
_TOUCHED = re.compile(
    r"^\s*(?:ALTER\s+TABLE(?:\s+IF\s+EXISTS)?(?:\s+ONLY)?|UPDATE(?:\s+ONLY)?"
    r"|DELETE\s+FROM(?:\s+ONLY)?|INSERT\s+INTO|TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?"
    r"|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(?P<names>.*)", re.IGNORECASE | re.DOTALL)
_LISTS_TABLES = re.compile(r"^\s*(TRUNCATE|DROP\s+TABLE)\b", re.IGNORECASE)
_NAME = r'(?:"[^"]+"|\w+)'
_QUALIFIED = re.compile(rf"\s*(?:{_NAME}\s*\.\s*)?({_NAME})")
_RENAMED_TO = re.compile(rf"\bRENAME\s+TO\s+({_NAME})", re.IGNORECASE)


def touched_tables(statement: str) -> set[str] | None:
    """The tables a statement names, lower-cased, schema left out (None when it cannot tell).

    ``DROP TABLE`` and ``TRUNCATE`` may list several; ``ALTER TABLE a RENAME TO b`` touches
    both, so the guard can see that ``a``'s rows are in ``b``.
    """
    found = _TOUCHED.match(statement)
    if found is None:
        return None
    rest = found["names"]
    names: set[str] = set()
    while True:
        name = _QUALIFIED.match(rest)
        if name is None:
            return None
        names.add(name[1].strip('"').lower())
        rest = rest[name.end():]
        if not (_LISTS_TABLES.match(statement) and rest.lstrip().startswith(",")):
            break
        rest = rest.lstrip()[1:]
    names |= {n.strip('"').lower() for n in _RENAMED_TO.findall(statement)}
    return names


def is_online(script: Script, direction: str = "upgrade") -> bool:
    """True when the revision's ``upgrade()`` (or ``downgrade()``) calls ``run_phases`` or uses ``autocommit_block``."""
    return calls_run_phases(script, direction) or blocks_in(script, direction) > 0


def calls_run_phases(script: Script, direction: str = "upgrade") -> bool:
    """True when the revision's ``upgrade()`` (or ``downgrade()``) calls ``run_phases``."""
    try:
        with open(script.path, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == direction:
            return any(isinstance(call, ast.Call) and _called_name(call.func) == "run_phases"
                       for call in ast.walk(node))
    return False


def refuse_replaying_half_done(conn: Connection, rehearse: bool, round_trip: bool) -> None:
    """A rehearsal or round trip cannot start inside a half-done revision: refuse, naming it."""
    if not (rehearse or round_trip):
        return
    half_done = in_progress(conn)
    conn.commit()
    if half_done:
        run = "rehearsal" if rehearse else "round trip"
        raise GuardError(
            f"{'; '.join(half_done)}: a {run} replays whole revisions in one transaction and "
            f"cannot start in the middle of one; finish it first with upgrade_downgrade (without "
            f"{'rehearse' if rehearse else 'round_trip'}: it resumes there), then run the {run}")


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


class GuardPlan:
    """What the data-loss guard must count for one revision, and whether it may count outside."""

    def __init__(self, sql: str | None, existing: list[str]) -> None:
        if sql is None:  # its SQL cannot be rendered offline: count everything, inside
            self.tables, self.additive = list(existing), False
            return
        statements = [st.code for st in split_sql(guarded_sql(sql))
                      if st.code.strip() and not _TRANSACTION_CONTROL.match(st.code)]
        additive = [bool(_ADDITIVE.match(st)) and not _NOT_ADDITIVE.search(st) for st in statements]
        touched: set[str] = set()
        for statement, adds in zip(statements, additive, strict=True):
            named = touched_tables(statement)
            if named is None and not adds:  # a statement that may lose data, its table unknown
                self.tables, self.additive = list(existing), False
                return
            touched |= named or set()
        self.tables = sorted(t for t in existing if t.lower() in touched)
        # A table a rename creates is counted after, beside the one it came from.
        renamed = {n.strip('"').lower() for st in statements for n in _RENAMED_TO.findall(st)}
        self.tables += sorted(renamed - {t.lower() for t in existing})
        self.additive = all(additive)


def run_online_plan(
    project: Project,
    conn: Connection,
    plan: Plan,
    options: RunOptions,
    say: Progress,
    explain: Any,
    observer: StepObserver | None = None,
) -> MigrationResult:
    """Run ``plan`` revision by revision, committing each, the online phases between (see module)."""
    from softbee.runbook.engine.predict import step_sql

    count_mode = options.count_mode
    rows_before = row_counts(conn, count_mode)  # for the report: no lock of the migration's
    schema_before = schema_of(conn)
    conn.commit()
    steps: list[Step] = []
    timings: list[PhaseTiming] = []
    losses: list[dict[str, Any]] = []
    for number, script in enumerate(plan.scripts, start=1):
        try:
            sql: str | None = step_sql(project, plan.direction, script)
        except Exception:  # noqa: BLE001 - it needs a live connection: guard it the careful way
            sql = None
        say(f"[{number}/{len(plan.scripts)}] {plan.direction} {script.revision}: "
            f"{(script.doc or '').strip()}")
        try:  # from here a failure says what the revisions before this one committed
            guard = GuardPlan(sql, user_tables(conn))
            conn.commit()
            steps.append(_run_revision(project, conn, plan, script, guard, options, say,
                                       timings, losses, observer))
        except RunbookError as exc:
            rollback_fully(conn)
            exc.args = (_where_now(project, conn, str(exc)), *exc.args[1:])
            raise
        except Exception as exc:
            rollback_fully(conn)
            outcome, advice = _outcome(project, conn, script.revision, bool(steps))
            error = explain(exc, plan, steps, outcome, advice)
            if outcome not in str(error):  # a kind of error whose line has no outcome of its own
                error = type(error)(f"{error}; {outcome}")
            raise error from exc
    try:
        rows_after = row_counts(conn, count_mode)
        schema_after = schema_of(conn)
        end = current_revisions(project, conn)
        conn.commit()
    except Exception as exc:
        rollback_fully(conn)
        raise MigrationFailed(
            f"every revision of the plan is committed (the database is at {plan.target or 'base'}), "
            f"but reading it afterwards for the report failed: {redact_text(first_line(exc))}; "
            "the migration needs nothing more, only this report is incomplete") from exc
    result = MigrationResult(
        plan=plan, end=end[0] if end else None, steps=steps,
        before=Snapshot(rows=rows_before, values={}), after=Snapshot(rows=rows_after, values={}),
        schema_before=schema_before, schema_after=schema_after, losses=losses, committed=True,
    )
    result.phases = [vars(timing) for timing in timings]
    return result


def _run_revision(
    project: Project,
    conn: Connection,
    plan: Plan,
    script: Script,
    guard: GuardPlan,
    options: RunOptions,
    say: Progress,
    timings: list[PhaseTiming],
    losses: list[dict[str, Any]],
    observer: StepObserver | None,
) -> Step:
    count_mode, allow_data_loss = options.count_mode, options.allow_data_loss
    segment: dict[str, Snapshot] = {}

    def count(baseline: Snapshot | None = None) -> Snapshot:
        existing = set(user_tables(conn)) if guard.tables else set()
        tables = [t for t in guard.tables if t in existing]  # a dropped table shows as missing
        if not tables:
            return Snapshot(rows={}, values={})
        if guard.additive:  # rows only: an additive statement cannot drop or null a value
            rows = row_counts(conn, count_mode, tables)
            return Snapshot(rows=rows, values={t: {} for t in rows})
        # In the segment's transaction: estimates add the rows it inserted and deleted.
        return take_snapshot(conn, count_mode, baseline=baseline, tables=tables)

    def begin_segment() -> None:
        if guard.additive:
            segment["before"] = count()
            conn.commit()  # counted before the migration's locks
        conn.begin()
        if not guard.additive:
            segment["before"] = count()  # inside: the rollback below must cover what it checks

    def checkpoint() -> None:
        before = segment["before"]
        if guard.additive:
            conn.commit()
            after = count()
            conn.commit()
        else:
            after = count(baseline=before)
        found = find_losses(before, after)
        if found and guard.additive:
            losses.extend(found)  # cannot happen by construction; never hidden if it does
            raise DataLossError(
                f"{script.revision} lost data ({'; '.join(f['detail'] for f in found)}) although "
                "its SQL only adds: it is COMMITTED, not rolled back; restore from the backup",
                found)
        if found and not allow_data_loss:
            conn.rollback()
            raise DataLossError(
                f"{script.revision} would lose data ({'; '.join(f['detail'] for f in found)}): "
                "its transaction was rolled back; back the data up and pass allow_data_loss=True "
                "if this loss is intended", found)
        losses.extend(found)
        if not guard.additive:
            conn.commit()

    # Each guarded segment (the DDL before an online phase, the rest after it) is compared
    # with its own baseline, taken when it begins: the online phase between them runs while
    # the application writes, and its rows come and go without the migration's doing.
    started = time.perf_counter()
    begin_segment()
    phasing = Phasing(conn, checkpoint, begin_segment, say, timings)
    if observer is not None:
        observer.step_started(conn, script)
    with project.bound(conn) as config, phased(phasing), \
            revision_running(conn, script, plan.direction) as native:
        migrate_one(config, plan, script)
        finish_revision(native)  # its phase records go with its alembic_version
    if observer is not None:
        observer.step_finished(conn, script)
    checkpoint()
    seconds = round(time.perf_counter() - started, 3)
    say(f"      done in {seconds:.3f}s")
    return Step(plan.direction, script.revision, (script.doc or "").strip(), seconds)


def _outcome(project: Project, conn: Connection, revision: str,
             earlier_committed: bool) -> tuple[str, str | None]:
    """What became of the database when ``revision`` failed, and what to do (None: the usual)."""
    try:
        recorded, phases = where_recorded(project, conn)  # on a fresh session when conn is gone
    except READ_FAILURES as exc:
        return unreadable_outcome(exc, revision, earlier_committed)
    at = ", ".join(recorded) or "base"
    if phases:
        return (f"{revision} is NOT rolled back as a whole: its open transaction was, what its "
                f"phases committed stays; the database is at revision {at}, {'; '.join(phases)}; "
                "a re-run resumes there",
                "fix the cause and run upgrade_downgrade again")
    if earlier_committed:
        return (f"{revision} was rolled back, the revisions before it are committed: the database "
                f"is at revision {at}", None)
    return f"rolled back, database still at {at}", None


def _where_now(project: Project, conn: Connection, message: str) -> str:
    """``message`` with where the database really is now: its revision and recorded phases."""
    try:
        recorded, phases = where_recorded(project, conn)
    except READ_FAILURES as exc:
        reason = redact_text(first_line(root_cause(exc)))
        return (f"{message} — where the database is now could not be read ({reason}): run "
                "upgrade_downgrade again once the database is back, it resumes from what is "
                "recorded")
    at = ", ".join(recorded) or "base"
    now = f"the database is at revision {at} (committed)"
    if phases:
        now += "; " + "; ".join(phases)
    return f"{message} — {now}: fix the cause and run upgrade_downgrade again to resume from there"

