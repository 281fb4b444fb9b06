"""The read-only review's verdict on what a database records: each problem, and what fixes it.

``inspect_diff`` must work in exactly the states it is there to diagnose: a
recorded revision missing from the scripts, several recorded revisions, no
version table on a database that has tables, a history with several heads.
:func:`check_versions` names each as a :class:`Finding` with the runbook (or
command) that fixes it; :func:`review_plan` gives the plan to a target when one
can be made and None when a finding rules it out, so the rest of the review
(models vs database, lint) still runs. A bad ``target`` is still refused.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.engine.migrate import Plan, plan_to
from softbee.runbook.errors import RevisionError
from softbee.runbook.project import Project
from softbee.runbook.project.advice import runbook_command
from softbee.runbook.review.diff import raw_diffs
from softbee.runbook.review.state import (
    get_script,
    get_state,
    merge_hint,
    version_table_opts,
)

FINDING_COLUMNS = ["severity", "problem", "fix", "blocks_plan"]
_SYMBOLIC_TARGETS = ("head", "heads", "base")


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the database's recorded migration state, and what fixes it.

    ``severity`` is ``error`` when ``upgrade_downgrade`` would refuse or fail,
    ``info`` when the state is merely worth knowing (a new, empty database).
    ``blocks_plan``: no migration can start from this state, whatever the target.
    """

    severity: str
    problem: str
    fix: str
    blocks_plan: bool = False


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
    tables = [t for t in inspector.get_table_names(schema=schema) if t != version_table]
    models_match = not raw_diffs(project, connection)
    stamp = _stamp_advice(models_match)
    folder = f"{project.migrations_dir.name}/"
    findings: list[Finding] = []
    if state.unknown:
        findings.append(Finding(
            "error",
            f"records unknown revision {', '.join(state.unknown)}: it is not in {folder} "
            "(a revision deleted, or applied from another branch)",
            f"run recover_stamp with purge=True and {stamp}: "
            f"`` {_stamp_command(project, models_match, purge=True)} ``",
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
            f"`` {_stamp_command(project, models_match, purge=True)} ``",
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
            f"run recover_stamp with {stamp}: `` {_stamp_command(project, models_match)} ``",
            blocks_plan=True,
        ))
    elif not state.current and not has_version_table:
        findings.append(Finding(
            "info",
            f"has no {version_table} table and no other tables: a new, empty database",
            "run upgrade_downgrade to create the schema",
        ))
    return findings


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """The findings as a table: severity, problem, fix, and whether it rules out a plan."""
    return pd.DataFrame([vars(f) for f in findings], columns=FINDING_COLUMNS)


def findings_markdown(findings: list[Finding]) -> str:
    """The findings as a Markdown list, each problem with its fix in full (a table cuts them)."""
    if not findings:
        return "The recorded revision is in the scripts and the history has one head."
    return "\n".join(
        f"- **{f.severity}**: {html.escape(f.problem)}. **Fix:** {html.escape(f.fix)}."
        for f in findings
    )


def blocks_migration(findings: list[Finding]) -> bool:
    """True when a finding would make ``upgrade_downgrade`` refuse or fail."""
    return any(f.severity == "error" for f in findings)


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


def _stamp_command(project: Project, models_match: bool, purge: bool = False) -> str:
    """The recover_stamp dry run that the advice means, complete for this project."""
    if models_match:
        return runbook_command(project, "recover_stamp", purge=purge or None,
                               stamp_revision="head")
    return runbook_command(project, "recover_stamp", purge=purge or None,
                           stamp_revision="<the revision the schema matches>",
                           fix_sql="<SQL for any difference>")


def _stamp_advice(models_match: bool) -> str:
    if models_match:
        return "stamp_revision='head' (the schema matches the models)"
    return ("stamp_revision set to the revision the schema matches, plus fix_sql for any "
            "difference (the schema differs from the models: see the model diff)")
