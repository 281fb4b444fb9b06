"""Recover a failed or hand-changed database: diagnose, fix by hand in one transaction, stamp, verify."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from alembic import command
from sqlalchemy.engine import Connection

from softbee.runbook.engine.guards import migration_lock, require_confirmation, session_timeouts
from softbee.runbook.engine.scratch import scratch_copy
from softbee.runbook.errors import (
    RecoveryError,
    RevisionError,
    RunbookError,
    SessionTimeout,
    first_line,
)
from softbee.runbook.history.recorder import label, recording
from softbee.runbook.online.phases import in_progress
from softbee.runbook.project import Project
from softbee.runbook.project.dialects import dialect_for
from softbee.runbook.review.checks import Finding, cause_of, run_check
from softbee.runbook.review.diff import diff_frame, model_diff
from softbee.runbook.review.expected import (
    compare_schemas,
    differences_frame,
    drift_message,
    expected_schema,
    model_drift,
    reflect_schema,
)
from softbee.runbook.review.state import current_revisions, get_script, get_state, single_head
from softbee.runbook.util.options import Timeouts
from softbee.runbook.util.secrets import reveal
from softbee.runbook.util.sqltext import split_sql
from softbee.urls import redact_text


@dataclass
class Diagnosis:
    """What the version table says, whether the scripts know it, and how the schema differs."""

    recorded: tuple[str, ...]
    unknown: tuple[str, ...]
    heads: tuple[str, ...]
    diff: pd.DataFrame
    in_progress: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # checks that could not run, each with its cause

    def frame(self) -> pd.DataFrame:
        """The diagnosis as a two-column table."""
        rows = [
            ("alembic_version holds", ", ".join(self.recorded) or "nothing (base)"),
            ("recorded revision in scripts", "no: " + ", ".join(self.unknown) if self.unknown else "yes"),
            ("scripts' head(s)", ", ".join(self.heads)),
            ("at head", "yes" if set(self.recorded) == set(self.heads) else "no"),
            ("models differ from database", f"{len(self.diff)} difference(s)"
             if not self.problems else "not compared (below)"),
            *(("check that could not run", problem) for problem in self.problems),
            *(("online revision in progress (re-run upgrade_downgrade to resume)", line)
              for line in self.in_progress),
        ]
        return pd.DataFrame(rows, columns=["check", "finding"])


def diagnose(project: Project) -> Diagnosis:
    """Read the version table, look its revision up in the scripts and diff the live schema."""
    with project.connect() as conn:
        state = get_state(project, conn)
        diff, failed = run_check("the models cannot be compared", lambda: model_diff(project, conn),
                                 metadata=lambda: project.target_metadata(conn))
    return Diagnosis(recorded=state.current, unknown=state.unknown, heads=state.heads,
                     diff=diff if diff is not None else diff_frame([]), in_progress=state.in_progress,
                     problems=(failed.problem,) if failed else ())


def load_fix_sql(fix_sql: str | None) -> str:
    """The fix as SQL text: ``fix_sql`` itself, or the contents of the ``.sql`` file it names.

    A fix holding a URL with a password reached the notebook masked: the real text
    comes from the kernel's environment (:func:`~softbee.runbook.util.secrets.reveal`).
    """
    text = (reveal(fix_sql) or "").strip()
    if text.endswith(".sql") and "\n" not in text:
        path = Path(text)
        if not path.is_file():
            raise RecoveryError(f"fix_sql file {text!r} does not exist: give a path to a .sql file or SQL text")
        return path.read_text(encoding="utf-8")
    return text


def fix_frame(statements: list[str]) -> pd.DataFrame:
    """The statements of a fix as a table to review, with any SQL password masked."""
    return pd.DataFrame({"statement": [redact_text(statement) for statement in statements]})


def split_statements(sql: str) -> list[str]:
    """Split SQL text on semicolons outside quotes, dollar quotes and comments."""
    return [statement.text.strip() for statement in split_sql(sql)]


@dataclass
class Verification:
    """Whether the schema matches what the stamped revision expects."""

    revision: str | None
    ok: bool
    differences: pd.DataFrame
    method: str
    in_progress: tuple[str, ...] = ()  # online revisions a run left half-way (phases.py)
    error: str = ""  # why the schema could not be checked at all

    @property
    def message(self) -> str:
        """One sentence saying whether the recovery holds."""
        where = self.revision or "base"
        if self.error:
            return f"NOT verified against revision {where}: {self.error}"
        if self.ok:
            return f"verified: the schema matches revision {where} ({self.method})"
        half_way = "".join(f"; the difference is an online revision half-way ({line}): run "
                           "upgrade_downgrade again to resume it rather than stamping"
                           for line in self.in_progress)
        return (f"NOT verified: the schema differs from revision {where} in "
                f"{len(self.differences)} place(s) ({self.method}){half_way}")


@dataclass
class Recovery:
    """The outcome of :func:`recover`."""

    statements: list[str]
    stamped: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    verification: Verification
    dry_run: bool
    applied: bool
    notes: list[str] = field(default_factory=list)
    model_drift: list[str] = field(default_factory=list)  # models vs migrations: the project's own

    @property
    def succeeded(self) -> bool:
        """True when the fix and stamp verified (and, unless a dry run, were committed)."""
        return self.verification.ok and (self.applied or self.dry_run)

    def verdict(self) -> str:
        """One Markdown line: what the run did, and the next step only when it is safe to take."""
        check = self.verification.message
        if self.dry_run and self.verification.ok:
            return (f"**Dry run** — {check}. Nothing was committed; run again with "
                    "`dry_run=False` to apply it.")
        if self.dry_run:
            return (f"**Dry run** — {check}. Nothing was committed, and do not apply it: change "
                    "`fix_sql` or `stamp_revision` until a dry run verifies.")
        if self.succeeded:
            return (f"**Recovery succeeded** — {check}; the database records "
                    f"`{','.join(self.after) or 'base'}`.")
        return f"**Recovery not applied** — {check}; nothing was committed."

    def summary(self) -> dict[str, Any]:
        """Facts for the run record."""
        return {
            "revision_before": ",".join(self.before) or "base",
            "revision_after": ",".join(self.after) or "base",
            "dry_run": self.dry_run,
            "outcome": ("dry run: " if self.dry_run else "") + self.verification.message,
        }


def recover(
    project: Project,
    fix_sql: str | None = None,
    stamp_revision: str | None = None,
    *,
    purge: bool = False,
    dry_run: bool = True,
    lock_wait_s: float = 0.0,
    lock_timeout_ms: int | None = 5000,
    statement_timeout_ms: int | None = None,
    confirm: str | None = None,
    production: bool | None = None,
    history: bool = True,
) -> Recovery:
    """Apply ``fix_sql`` and stamp in one transaction, verify, and commit unless ``dry_run``.

    Unless a dry run or ``history=False``, the stamp is recorded in the history table, in
    its own transaction; a recovery that does not verify records one ``rolled back`` row.
    """
    # Even a dry run takes locks on the tables the fix touches.
    require_confirmation(project, confirm, production)
    statements = split_statements(load_fix_sql(fix_sql))
    refuse_transaction_control(statements)
    target = _resolve_stamp(project, stamp_revision)
    with project.connect() as conn, migration_lock(project, conn, lock_wait_s), session_timeouts(
        conn, Timeouts(lock_timeout_ms, statement_timeout_ms)
    ), ExitStack() as recorded:
        before = current_revisions(project, conn)
        metadata, unreadable = run_check("the models cannot be read",
                                         lambda: project.target_metadata(conn))
        if before and not purge:
            unknown = get_state(project, conn).unknown
            if unknown:
                raise RevisionError(
                    f"the database records {', '.join(unknown)}, which is not in the scripts: "
                    "pass purge=True to replace it"
                )
        conn.commit()
        recorder = recorded.enter_context(recording(
            project, conn, SimpleNamespace(direction="stamp", start=before, target=target),
            enabled=history and not dry_run))
        if not dialect_for(conn).transactional_ddl:
            recovery = _recover_without_transactional_ddl(
                project, conn, statements, stamp_revision, target, purge, dry_run, before,
                recorder)
            recovery.model_drift, drift = drift_notes(project, metadata, unreadable)
            recovery.notes += drift
            return recovery
        transaction = conn.begin()
        try:
            _run_statements(conn, statements)
            if stamp_revision is not None:
                _stamp(project, conn, target, purge)
            after = current_revisions(project, conn)
            verification = verify(project, conn, after[0] if after else None)
            if dry_run or not verification.ok:
                transaction.rollback()
            else:
                if recorder is not None:
                    recorder.stamped(conn, before, after, _stamped_script(project, stamp_revision))
                transaction.commit()
        except RunbookError:
            if transaction.is_active:
                transaction.rollback()
            raise
        if recorder is not None and not verification.ok:
            recorder.rolled_back(conn, label(before), label(target), verification.message)
    notes = []
    if not verification.ok and not dry_run:
        notes.append("nothing was committed because verification failed")
    model_differences, drift = drift_notes(project, metadata, unreadable)
    return Recovery(statements=statements, stamped=target if stamp_revision else None,
                    before=before, after=after, verification=verification, dry_run=dry_run,
                    applied=not dry_run and verification.ok, notes=notes + drift,
                    model_drift=model_differences)


def _recover_without_transactional_ddl(
    project: Project,
    conn: Connection,
    statements: list[str],
    stamp_revision: str | None,
    target: str | None,
    purge: bool,
    dry_run: bool,
    before: tuple[str, ...],
    recorder: Any = None,
) -> Recovery:
    """MySQL/MariaDB: the fix and stamp first on a scratch copy; the real database only if it verifies.

    DDL commits as it runs there, so a dry run cannot be a rollback: it is the copy, and a
    real run applies nothing that did not verify on the copy first.
    """
    with scratch_copy(project, conn) as copy, copy.connect() as scratch:
        _run_statements(scratch, statements, undone="the scratch copy is dropped, nothing changed")
        if stamp_revision is not None:
            _stamp(copy, scratch, target, purge)
        scratch.commit()
        rehearsed = current_revisions(copy, scratch)
        verification = verify(copy, scratch, rehearsed[0] if rehearsed else None)
        scratch.commit()
    notes = [f"rehearsed on a scratch copy: {project.dialect} cannot roll DDL back"]
    if dry_run or not verification.ok:
        if not verification.ok:
            notes.append("nothing was applied because verification failed on the copy")
            if recorder is not None:
                recorder.rolled_back(conn, label(before), label(target), verification.message)
        return Recovery(statements=statements, stamped=target if stamp_revision else None,
                        before=before, after=rehearsed, verification=verification,
                        dry_run=dry_run, applied=False, notes=notes)
    _run_statements(conn, statements, undone=(
        "NOT rolled back (DDL commits as it runs; the statements before it are applied): "
        "fix the database by hand"))
    if stamp_revision is not None:
        _stamp(project, conn, target, purge)
    if recorder is not None:
        recorder.stamped(conn, before, current_revisions(project, conn),
                         _stamped_script(project, stamp_revision))
    conn.commit()
    after = current_revisions(project, conn)
    verification = verify(project, conn, after[0] if after else None)
    conn.commit()
    if not verification.ok:
        notes.append("applied, but the database does not verify (it did on the copy): "
                     "someone changed it meanwhile; see the differences")
    return Recovery(statements=statements, stamped=target if stamp_revision else None,
                    before=before, after=after, verification=verification, dry_run=False,
                    applied=True, notes=notes)


# Statements that would end or replace the runbook's own transaction (and so commit a dry run).
TRANSACTION_CONTROL = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE"})


def refuse_transaction_control(statements: list[str]) -> None:
    """Refuse BEGIN/COMMIT/ROLLBACK in ``fix_sql``: the runbook owns the transaction."""
    for number, statement in enumerate(statements, start=1):
        word = statement.split(None, 1)[0].upper() if statement.split() else ""
        if word in TRANSACTION_CONTROL:
            raise RecoveryError(
                f"fix_sql statement {number} is {word}: remove BEGIN/COMMIT/ROLLBACK, the runbook "
                "runs the fix in its own transaction (rolled back on a dry run); nothing was run"
            )


def _resolve_stamp(project: Project, revision: str | None) -> str | None:
    """Validate the stamp target before anything runs (None for base)."""
    if revision is None or revision == "base":
        return None
    if revision in ("head", "heads"):
        return single_head(project)
    return get_script(project, revision).revision


def _run_statements(
    conn: Connection, statements: list[str], undone: str = "rolled back, nothing changed"
) -> None:
    for number, statement in enumerate(statements, start=1):
        try:
            conn.exec_driver_sql(statement)
        except SessionTimeout as exc:  # it waited too long: the SQL is not what is wrong
            raise RecoveryError(
                f"fix_sql statement {number} ({redact_text(statement[:80])!r}): {exc}; {undone}"
            ) from None
        except Exception as exc:
            orig = getattr(exc, "orig", None)
            reason = redact_text(first_line(orig if orig is not None else exc))
            raise RecoveryError(
                f"fix_sql statement {number} ({redact_text(statement[:80])!r}) failed: {reason}; "
                f"{undone}: correct the SQL and run again"
            ) from None


def _stamped_script(project: Project, stamp_revision: str | None) -> Any:
    """The revision a stamp records (its file's sha256 goes into the history), or None."""
    target = _resolve_stamp(project, stamp_revision) if stamp_revision else None
    return get_script(project, target) if target else None


def _stamp(project: Project, conn: Connection, revision: str | None, purge: bool) -> None:
    with project.bound(conn) as config:
        command.stamp(config, revision or "base", purge=purge)


def verify(project: Project, conn: Connection, revision: str | None) -> Verification:
    """Check the live schema against the schema ``revision``'s migrations produce (never the models)."""
    method = "a scratch database migrated to that revision vs the database"
    try:
        want = expected_schema(project, revision)
    except Exception as exc:  # noqa: BLE001 - cannot verify: said, never a crash half-way
        return Verification(revision, False, differences_frame([]), method,
                            error=f"the expected schema could not be built: {cause_of(exc)}")
    differences = compare_schemas(reflect_schema(conn), want)
    return Verification(revision, not differences, differences_frame(differences), method,
                        tuple(in_progress(conn)))


def drift_notes(
    project: Project, metadata: Any, unreadable: Finding | None = None
) -> tuple[list[str], list[str]]:
    """The models against the migrations at head: (the differences, notes to show); never raises."""
    if unreadable is not None:
        return [], [unreadable.problem]
    drift, failed = run_check("the models cannot be compared with the migrations",
                              lambda: model_drift(project, metadata), metadata=metadata)
    if failed is not None:
        return [], [failed.problem]
    lines = [str(difference) for difference in drift or []]
    return lines, ([drift_message(drift)] if drift else [])
