"""The read-only review's verdict on what a database records: each problem, and what fixes it.

``inspect_diff`` must work in exactly the states it is there to diagnose: a
recorded revision missing from the scripts, several recorded revisions, no
version table on a database that has tables, a history with several heads.
:func:`check_versions` names each as a :class:`Finding` with the runbook (or
command) that fixes it; :func:`review_plan` gives the plan to a target when one
can be made and None when a finding rules it out, so the rest of the review
(models vs database, lint) still runs. A bad ``target`` is still refused.

Each check of the review runs on its own (:func:`run_check`): one that raises becomes a
finding naming its cause, and the outcome (:func:`review_outcome`) counts what was not
checked (revisions not linted) instead of reporting zero problems.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import RevisionError
from softbee.runbook.project import Project
from softbee.runbook.project.advice import runbook_command
from softbee.runbook.review.checks import FINDING_COLUMNS as FINDING_COLUMNS  # re-exported
from softbee.runbook.review.checks import Finding as Finding
from softbee.runbook.review.checks import blocks_migration as blocks_migration
from softbee.runbook.review.checks import cause_of as cause_of
from softbee.runbook.review.checks import findings_frame as findings_frame
from softbee.runbook.review.checks import findings_markdown as findings_markdown
from softbee.runbook.review.checks import run_check as run_check
from softbee.runbook.review.checks import unnamed_enum_columns as unnamed_enum_columns
from softbee.runbook.review.diff import diff_frame, model_diff
from softbee.runbook.review.expected import (
    SKIPPED,
    SchemaDifference,
    compare_schemas,
    drift_message,
    expected_schema,
    model_drift,
    reflect_schema,
)
from softbee.runbook.review.plan import Plan, plan_to
from softbee.runbook.review.state import (
    get_script,
    get_state,
    merge_hint,
    version_table_opts,
)
from softbee.runbook.util.history_name import is_history_table

_SYMBOLIC_TARGETS = ("head", "heads", "base")


def check_versions(project: Project, connection: Connection | None = None) -> list[Finding]:
    """What is wrong with the version table against the scripts and the schema; [] when nothing."""
    if connection is None:
        with project.connect() as conn:
            return check_versions(project, conn)
    state = get_state(project, connection)
    opts = version_table_opts(project)
    version_table, schema = opts["version_table"] or "alembic_version", opts["version_table_schema"]
    inspector = sa.inspect(connection)
    has_version_table = inspector.has_table(version_table, schema=schema)
    tables = [t for t in inspector.get_table_names(schema=schema)
              if t != version_table and not is_history_table(t)]  # the runbooks' record: no schema
    stamp = _StampAdvice(project, connection, {version_table})
    folder = f"{project.migrations_dir.name}/"
    findings: list[Finding] = []
    if state.unknown:
        findings.append(Finding(
            "error",
            f"records unknown revision {', '.join(state.unknown)}: it is not in {folder} "
            "(a revision deleted, or applied from another branch)",
            f"run recover_stamp with purge=True and {stamp}: "
            f"`` {stamp.command(purge=True)} ``",
            blocks_plan=True,
        ))
    branched = len(state.current) > 1 and set(state.current) == set(state.heads)
    if branched:
        findings.append(Finding(
            "error",
            f"records {len(state.current)} heads ({', '.join(state.current)}): the history "
            "branches and both branches are applied",
            f"{merge_hint(state.heads)}, then run upgrade_downgrade",
            blocks_plan=True,
        ))
    elif len(state.current) > 1:
        findings.append(Finding(
            "error",
            f"records {len(state.current)} revisions ({', '.join(state.current)}) where one "
            "is expected",
            f"run recover_stamp with purge=True and {stamp}: "
            f"`` {stamp.command(purge=True)} ``",
            blocks_plan=True,
        ))
    for line in state.in_progress:
        findings.append(Finding(
            "warning",
            f"an online revision is half-way: {line}; alembic_version still records the "
            "revision before it",
            "run upgrade_downgrade again: it skips the finished phases and resumes there "
            "(a stamp would hide the unfinished work)",
        ))
    if len(state.heads) > 1 and not branched:
        findings.append(Finding(
            "error",
            f"the scripts in {folder} have {len(state.heads)} heads ({', '.join(state.heads)}): "
            "`head` is ambiguous",
            merge_hint(state.heads),
        ))
    if not state.current and tables:
        where = (f"has no {version_table} table" if not has_version_table
                 else f"has an empty {version_table} table")
        findings.append(Finding(
            "error",
            f"{where} but {len(tables)} other table(s): the schema was made without migrations "
            "(e.g. db.create_all()) or the version table was dropped; an upgrade from base "
            "would create tables that exist",
            f"run recover_stamp with {stamp}: `` {stamp.command()} ``",
            blocks_plan=True,
        ))
    elif not state.current and not has_version_table:
        findings.append(Finding(
            "info",
            f"has no {version_table} table and no other tables: a new, empty database",
            "run upgrade_downgrade to create the schema",
        ))
    return findings


def review_plan(project: Project, target: str, findings: list[Finding]) -> Plan | None:
    """The plan to ``target``, or None when ``findings`` rule one out; a bad target still raises."""
    if not blocks_migration(findings):
        return plan_to(project, target)
    text = str(target).strip()
    relative = text[:1] in "+-" and text[1:].isdigit()
    if text and text not in _SYMBOLIC_TARGETS and not relative:
        get_script(project, text)  # an unknown or ambiguous id is the caller's mistake
    if any(f.blocks_plan for f in findings):
        return None
    try:  # several heads in the scripts: `head` is ambiguous, an explicit id is not
        return plan_to(project, target)
    except RevisionError:
        return None


class _StampAdvice:
    """The stamp to advise, worked out (a scratch database at head, cached) only when a finding needs it."""

    def __init__(self, project: Project, connection: Connection, skip: set[str]) -> None:
        self._project, self._connection, self._skip = project, connection, skip
        self._text: str | None = None
        self._matches: bool | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._advice()
        return self._text

    def command(self, purge: bool = False) -> str:
        """The recover_stamp dry run the advice means, complete for this project."""
        if self._matches_head():
            return runbook_command(self._project, "recover_stamp", purge=purge or None,
                                   stamp_revision="head")
        return runbook_command(self._project, "recover_stamp", purge=purge or None,
                               stamp_revision="<the revision the schema matches>",
                               fix_sql="<SQL for any difference>")

    def _matches_head(self) -> bool:
        if self._matches is None:
            self._advice()
        return bool(self._matches)

    def _advice(self) -> str:
        def matches_head() -> bool:
            live = reflect_schema(self._connection, skip=SKIPPED | self._skip)
            return not compare_schemas(live, expected_schema(self._project, "head"))

        matches, failed = run_check("", matches_head)
        self._matches = bool(matches)
        if matches:
            return "stamp_revision='head' (the schema matches what the migrations produce at head)"
        if failed is not None:
            return ("stamp_revision set to the revision the schema matches, plus fix_sql for any "
                    f"difference (it could not be compared with head{failed.problem})")
        return ("stamp_revision set to the revision the schema matches, plus fix_sql for any "
                "difference (the schema differs from what the migrations produce at head)")


@dataclass
class ModelReview:
    """The models against the database and against the migrations, with the checks that could not run."""

    diff: pd.DataFrame
    drift: list[SchemaDifference]
    problems: list[Finding]

    def shown(self) -> list[Any]:
        """What the review displays: the model diff, the drift sentence, each check that could not run."""
        from IPython.display import Markdown

        compared = not any(p.problem.startswith(MODELS_NOT_COMPARED + ":") for p in self.problems)
        items: list[Any] = [self.diff if not self.diff.empty else Markdown(
            "The models match the database." if compared else "The models were not compared.")]
        if self.drift:
            items.append(Markdown(f"**Project finding:** {html.escape(drift_message(self.drift))}."))
        if self.problems:
            items.append(Markdown(findings_markdown(self.problems)))
        return items


MODELS_NOT_COMPARED = "the models cannot be compared"


def review_models(project: Project) -> ModelReview:
    """Models vs database and models vs migrations (head), each on its own: one that raises is a finding."""
    problems: list[Finding] = []
    with project.connect() as conn:
        diff, failed = run_check(MODELS_NOT_COMPARED, lambda: model_diff(project, conn),
                                 metadata=lambda: project.target_metadata(conn))
        metadata, unreadable = run_check(MODELS_NOT_COMPARED, lambda: project.target_metadata(conn))
    problems += [f for f in (failed, unreadable) if f is not None][:1]
    drift: list[SchemaDifference] | None = []
    if metadata is not None:
        drift, drifted = run_check(f"{MODELS_NOT_COMPARED} with the migrations",
                                   lambda: model_drift(project, metadata), metadata=metadata)
        if drifted is not None and not (failed and _same_cause(failed, drifted)):
            problems.append(drifted)
    return ModelReview(diff if diff is not None else diff_frame([]), drift or [], problems)


def _same_cause(one: Finding, other: Finding) -> bool:
    return one.problem.split(": ", 1)[-1] == other.problem.split(": ", 1)[-1]


def not_linted(rendered: Any, captured: bool = False) -> list[tuple[str, str]]:
    """(revision, reason) of each pending revision whose SQL lint did not read."""
    if rendered is None or captured:
        return []
    return [(r.revision, r.reason) for r in rendered.revisions if r.sql is None]


def lint_part(lint: pd.DataFrame | None, skipped: list[tuple[str, str]], pending: int = 0) -> str:
    """The outcome's lint clause: never "0 lint error(s)" for SQL that was not read."""
    if lint is None:
        return "SQL not linted (the check could not run: see its finding)"
    errors = int((lint["severity"] == "error").sum()) if not lint.empty else 0
    if not skipped:
        return f"{errors} lint error(s)"
    reasons = sorted({reason for _, reason in skipped})
    why = reasons[0] + (f" and {len(reasons) - 1} other reason(s)" if len(reasons) > 1 else "")
    rendered = pending - len(skipped)
    linted = f"{errors} lint error(s) in the {rendered} revision(s) rendered, " if rendered > 0 else ""
    return (f"{linted}{len(skipped)} revision(s) not linted: "
            f"{', '.join(revision for revision, _ in skipped)} need a live connection ({why}); "
            "run with capture=True to lint what they really run")


def review_outcome(
    plan: Plan | None,
    models: ModelReview,
    lint: pd.DataFrame | None,
    skipped: list[tuple[str, str]],
    state_findings: list[Finding],
    problems: list[Finding],
) -> str:
    """inspect_diff's one-line outcome: what was checked, what was found, and what could not be checked."""
    pending = f"{len(plan.scripts)} pending revision(s)" if plan else "no plan"
    compared = not any(p.problem.startswith(MODELS_NOT_COMPARED + ":") for p in models.problems)
    diff = f"{len(models.diff)} model difference(s)" if compared else "models not compared"
    outcome = (f"read-only: {pending}, {diff}, "
               f"{lint_part(lint, skipped, len(plan.scripts) if plan else 0)}, "
               f"{len(state_findings)} finding(s) on the recorded state")
    if models.drift:
        outcome += f"; the models differ from the migrations in {len(models.drift)} place(s)"
    if problems:
        outcome += f"; {len(problems)} check(s) could not run: " + "; ".join(p.problem for p in problems)
    return outcome


def lint_review(project: Project, plan: Plan | None, sql: str, dialect: str, diff: pd.DataFrame,
                rows: dict[str, int] | None = None) -> pd.DataFrame:
    """Lint the plan's SQL (against live row counts and columns), or without a plan the model diff.

    ``rows``: the row counts the runbook already has (counted again only when not given).
    """
    from softbee.runbook.review.counts import row_counts
    from softbee.runbook.review.diff import schema_of
    from softbee.runbook.review.lint import lint_diff, lint_sql

    with project.connect() as conn:
        rows, columns = (row_counts(conn) if rows is None else rows), schema_of(conn)
    return lint_sql(sql, rows, dialect=dialect, columns=columns) if plan else lint_diff(diff, rows)


@dataclass
class SqlReview:
    """The pending SQL as the review shows and lints it, and the checks that could not run."""

    sql: str
    rendered: Any  # offline.RenderedPlan, None without a plan or when rendering raised
    captured: bool
    shown: list[Any]
    problems: list[Finding]


def review_sql(project: Project, plan: Plan | None, dialect: str,
               capture: Callable[[Project, Plan], Any] | None = None) -> SqlReview:
    """Render the plan revision by revision and, given ``capture`` (the engine's
    ``capture_plan``: a rehearsal), rehearse it too; each on its own.

    The rehearsal is handed in rather than imported: reading what will run sits below the
    engine that runs it (docs/design.md, the library's layers).
    """
    from IPython.display import Markdown

    from softbee.runbook.review.offline import render_plan

    if not plan:
        return SqlReview("", None, False, [Markdown("No SQL: there is no plan (step 2).")], [])
    rendered, failed = run_check("the SQL could not be rendered",
                                 lambda: render_plan(project, plan, dialect=dialect))
    if rendered is None:
        return SqlReview("", None, False, [Markdown(findings_markdown([failed]))], [failed])
    sql = rendered.sql
    shown: list[Any] = [Markdown(f"Rendered for **{dialect}** (the database is {project.dialect})."),
                        rendered.frame(), *rendered.phases_shown(),
                        Markdown(f"```sql\n{sql or '-- nothing rendered offline'}\n```")]
    if capture is None or not plan.scripts:
        return SqlReview(sql, rendered, False, shown, [])
    captured, failed = run_check("the pending revisions could not be rehearsed",
                                 lambda: capture(project, plan))
    if captured is None:
        return SqlReview(sql, rendered, False, [*shown, Markdown(findings_markdown([failed]))], [failed])
    shown += [captured.statements_frame(), captured.locks_frame()]
    return SqlReview(sql + captured.sql(rendered.needs_live), rendered, True, shown, [])
