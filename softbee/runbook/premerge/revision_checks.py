"""The checks that need the project and a scratch database: each revision's SQL, lint and lock
time, the models against the branch's head, and a round trip of the new revisions.

Nothing here touches the database the review was given: every migration runs on a scratch
database of the same server (``expected.scratch_database``: a temporary SQLite file, or a
database created and dropped on the PostgreSQL or MariaDB server), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

from alembic import command

from softbee.runbook.errors import RoundTripMismatch, RunbookError
from softbee.runbook.premerge.checks import Finding
from softbee.runbook.premerge.ignores import InlineIgnore
from softbee.runbook.premerge.locktime import (
    LockModel,
    RevisionLocks,
    estimate_revision,
    lock_findings,
)
from softbee.runbook.premerge.stats import Stats
from softbee.runbook.project import Project
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import down_revisions

# Lint rules a lock-time rule replaces on the same revision and table (with a size-based severity).
SUPERSEDED = {"full-table-update": "large-table-update",
              "create-index-not-concurrently": "blocking-index-build",
              "require-concurrent-index-creation": "blocking-index-build"}
_ADDS = ("add_table", "add_column", "add_index", "add_constraint", "add_fk")
CAPTURED = "captured on a scratch database"


@dataclass
class ReviewedRevision:
    """A revision the branch adds or changes, and what the review learnt about it."""

    revision: str
    path: str
    status: str  # added, changed
    message: str
    down: tuple[str, ...]
    source: str
    ignores: list[InlineIgnore] = field(default_factory=list)
    post_deploy: bool = False
    sql: str | None = None
    sql_source: str = ""  # offline, captured on a scratch database, or why there is none
    destructive: list[dict[str, Any]] = field(default_factory=list)
    locks: RevisionLocks | None = None


def quiet() -> contextlib.AbstractContextManager[io.StringIO]:
    """Progress lines of migrations on scratch databases (online phases print theirs) kept off stdout:
    stdout is the review's report."""
    return contextlib.redirect_stdout(io.StringIO())


def upgrade_scratch(scratch: Project, target: str | None) -> None:
    """Migrate a scratch database to ``target`` with plain Alembic (as ``flask db upgrade``)."""
    if target is None:
        return
    with quiet(), scratch.connect() as conn:
        with scratch.bound(conn) as config:
            conn.commit()  # Alembic owns its transactions, autocommit blocks included
            command.upgrade(config, target)
        conn.commit()


def revision_sql(project: Project, rev: ReviewedRevision, dialect: str) -> list[Finding]:
    """Render ``rev`` offline; a revision that needs a live connection is captured on a scratch database."""
    from softbee.runbook.engine.capture import capture_plan
    from softbee.runbook.review.expected import scratch_database
    from softbee.runbook.review.offline import render_plan
    from softbee.runbook.review.plan import plan_migration

    script = project.script().get_revision(rev.revision)
    downs = down_revisions(script)
    if len(downs) > 1:
        rev.sql, rev.sql_source = "", "merge revision: it joins heads and has no SQL of its own"
        return []
    plan = Plan("upgrade", downs[0] if downs else None, rev.revision, [script])
    rendered = render_plan(project, plan, dialect=dialect).revisions[0]
    if rendered.sql is not None:
        rev.sql, rev.sql_source = rendered.sql, "offline"
        return []
    with scratch_database(project) as scratch:
        upgrade_scratch(scratch, plan.start)
        with quiet():
            captured = capture_plan(scratch, plan_migration(scratch, "upgrade", rev.revision))
    rev.sql, rev.sql_source = captured.sql([rev.revision]), CAPTURED
    return [Finding("sql", "needs-live-connection", "info",
                    f"cannot be rendered offline ({rendered.reason}): its SQL was captured from "
                    f"a rehearsal on a scratch {project.dialect} database",
                    "nothing to do; the SQL below is what it ran there", rev.revision)]


def revision_lint(rev: ReviewedRevision, stats: Stats | None, dialect: str) -> list[Finding]:
    """squawk and Soft-Bee's lint on the revision's SQL (rows from the stats), and its destructive statements."""
    return lint_revisions([rev], stats, dialect)[rev.revision]


def lint_revisions(revisions: list[ReviewedRevision], stats: Stats | None,
                   dialect: str) -> dict[str, list[Finding]]:
    """:func:`revision_lint` of several revisions in one pass (one squawk run), findings by revision.

    Each revision's SQL opens with its ``-- Running upgrade`` line, so lint files every finding
    under its revision; one that names none (squawk missing) goes to the first revision.
    """
    from softbee.runbook.review.lint import destructive_statements, lint_sql

    by_revision: dict[str, list[Finding]] = {r.revision: [] for r in revisions}
    if not revisions:
        return by_revision
    sql = "".join(_headed(r) for r in revisions)
    frame = lint_sql(sql, stats.row_counts() if stats else None, dialect=dialect)
    for rev in revisions:
        rev.destructive = destructive_statements(_headed(rev))
    for row in frame.to_dict("records"):
        revision = row["revision"] if row["revision"] in by_revision else revisions[0].revision
        table = str(row["object"]) if row["object"] else None  # table, or table.column
        by_revision[revision].append(Finding("lint", str(row["rule"]), str(row["severity"]),
                                             str(row["message"]), str(row["fix"] or ""), revision,
                                             table))
    return by_revision


def superseded(findings: list[Finding]) -> set[int]:
    """``id()`` of each lint finding a lock-time finding says better (same revision, table, kind)."""
    said = {(f.revision, f.table, f.rule) for f in findings if f.check == "lock time"}
    return {id(f) for f in findings if f.check == "lint" and f.rule in SUPERSEDED
            and (f.revision, f.table, SUPERSEDED[f.rule]) in said}


def _headed(rev: ReviewedRevision) -> str:
    """The revision's SQL under a ``-- Running upgrade`` line naming it (captured SQL has one already)."""
    sql = rev.sql or ""
    if re.search(rf"--\s*Running\s+upgrade\s+.*->\s*{re.escape(rev.revision)}\b", sql):
        return sql if sql.endswith("\n") else sql + "\n"
    below = rev.down[0] if rev.down else "base"
    return f"-- Running upgrade {below} -> {rev.revision}\n\n{sql}\n"


def revision_locks(rev: ReviewedRevision, stats: Stats, model: LockModel) -> list[Finding]:
    """The revision's estimated lock time against its threshold, and each slow statement."""
    rev.locks = estimate_revision(rev.sql or "", stats, model, rev.post_deploy)
    return lock_findings(rev.revision, rev.locks, stats, model)


def models_check(project: Project, revisions: list[ReviewedRevision]) -> list[Finding]:
    """Models against a scratch database migrated to the branch's head(s), as ``alembic check`` does."""
    from softbee.runbook.review.diff import model_diff
    from softbee.runbook.review.expected import scratch_database

    with scratch_database(project) as scratch:
        upgrade_scratch(scratch, "heads")
        with scratch.connect() as conn:
            diff = model_diff(scratch, conn)
    findings = []
    for row in diff.to_dict("records"):
        op, table, column = row["operation"], row["table"], row["column"]
        what = f"{op} {table or ''}{'.' + column if column else ''}".strip()
        detail = f" ({row['detail']})" if row["detail"] else ""
        if op in _ADDS:
            findings.append(Finding(
                "models", "model-change-without-revision", "error",
                f"the models have {what}{detail}, and no revision makes it: migrated to the "
                "branch's head, the database does not have it",
                'generate the revision and commit it with the model: `flask db migrate -m "<what '
                'it does>"` (or the generate_revision runbook), then review it', None))
        else:
            findings.append(Finding(
                "models", "schema-differs-from-models", "error",
                f"migrated to the branch's head, the schema and the models differ: autogenerate "
                f"would {what}{detail}",
                "make the revision and the models agree (edit the revision's upgrade(), or the "
                "model), so `flask db migrate` finds nothing", _revision_touching(table, revisions)))
    return findings


def _revision_touching(table: str | None, revisions: list[ReviewedRevision]) -> str | None:
    """The last reviewed revision whose SQL names ``table`` (who left the difference), if any."""
    if not table:
        return None
    pattern = re.compile(rf"\b{re.escape(table)}\b", re.IGNORECASE)
    touching = [r.revision for r in revisions if r.sql and pattern.search(r.sql)]
    return touching[-1] if touching else None


def round_trip_check(project: Project, revisions: list[ReviewedRevision]) -> tuple[list[Finding], str]:
    """Upgrade, downgrade and upgrade again the reviewed revisions on a scratch database; schema compared."""
    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.review.expected import scratch_database

    script = project.script()
    heads = list(script.get_heads())
    if len(heads) != 1:
        return [], f"not run: the history has {len(heads)} heads (see the history check)"
    reviewed = {r.revision for r in revisions}
    walk = [s for s in script.walk_revisions() if s.revision in reviewed]  # head first
    lowest = down_revisions(walk[-1]) if walk else ()
    start = lowest[0] if len(lowest) == 1 else None
    with scratch_database(project) as scratch:
        upgrade_scratch(scratch, start)
        try:
            with quiet():
                result = run_migration(scratch, "upgrade", heads[0], round_trip=True,
                                       allow_data_loss=True, history=False)  # a scratch copy
        except RoundTripMismatch as exc:
            failed = "; ".join(f"{c['check']}: {c['detail']}" for c in exc.checks if not c["ok"])
            return [Finding("round trip", "round-trip-mismatch", "error",
                            f"upgrade, downgrade, upgrade from {start or 'base'} to {heads[0]} "
                            f"did not come back to the same schema ({failed})",
                            "make each downgrade() undo exactly what its upgrade() does",
                            _named(str(exc), reviewed))], ""
        except RunbookError as exc:
            return [Finding("round trip", "round-trip-failed", "error",
                            f"the round trip from {start or 'base'} to {heads[0]} failed: {exc}",
                            "make each downgrade() undo its upgrade() (a revision that cannot be "
                            "undone says so, with an inline ignore and the reason)",
                            _named(str(exc), reviewed))], ""
    return [], result.round_trip


def _named(text: str, reviewed: set[str]) -> str | None:
    """The first reviewed revision a message names (the one that failed), if any."""
    hits = sorted((text.find(r), r) for r in reviewed if r in text)
    return hits[0][1] if hits else None
