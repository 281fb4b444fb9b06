"""What changed outside the runbooks: the version moved with no run recorded, an applied file edited.

Every runbook's set-up compares ``alembic_version`` with the last row of the history table.
A bare ``flask db upgrade``/``downgrade``/``stamp`` (or any other tool) moves the first and
not the second; that is said in one line::

    recorded 7a6c1e3b8d07 by run 3f2a… on 2026-12-01; now at 8b7d2f4c9e08 with no run recorded

and a revision file whose sha256 is not the one recorded when it was applied (an edited,
already-applied migration: Flyway's ``validate``) is named too. Reading never writes: a
database without the table has nothing recorded, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from softbee.runbook.errors import first_line
from softbee.runbook.history import table as tbl
from softbee.runbook.history.table import file_sha256, label
from softbee.runbook.project import Project
from softbee.urls import redact_text

#: Outcomes after which the database is at the row's ``revision_to`` (else its ``revision_from``).
MOVED_TO = frozenset({tbl.APPLIED, tbl.STAMPED, tbl.CREATED, tbl.FOUND_OUTSIDE})


def recorded_state(row: tbl.HistoryRow) -> str:
    """The revision the database was left at by ``row``'s step."""
    return (row.revision_to if row.outcome in MOVED_TO else row.revision_from) or "base"


def by_whom(row: tbl.HistoryRow) -> str:
    """``run 3f2a…`` or, for a run with no archived id, ``an unarchived run (user@host)``."""
    return f"run {row.run_id[:4]}…" if row.run_id else f"an unarchived run ({row.user_host})"


def version_now(connection: Connection) -> str:
    """What ``alembic_version`` says now (``base`` when empty or absent)."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return "base"
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    return label(list(rows))


def moved_outside_on(
    connection: Connection, name: str, script: ScriptDirectory | None = None
) -> list[str]:
    """One line per change made outside the runbooks on ``connection``'s database (empty: none).

    ``script`` (the project's revision files) lets edited, already-applied files be named.
    """
    rows = tbl.read_rows(connection, name)
    if not rows:
        return []
    last, now = rows[-1], version_now(connection)
    lines = []
    if recorded_state(last) != now:
        lines.append(f"recorded {recorded_state(last)} by {by_whom(last)} on {last.day()}; "
                     f"now at {now} with no run recorded")
    if script is not None:
        lines += edited_files(rows, script, now)
    return lines


def edited_files(rows: list[tbl.HistoryRow], script: ScriptDirectory, now: str) -> list[str]:
    """Applied revisions whose file's sha256 differs from the one recorded when applied."""
    recorded: dict[str, tbl.HistoryRow] = {}
    for row in rows:
        if row.sha256 and row.outcome in (tbl.APPLIED, tbl.STAMPED) and row.revision_to and (
                row.direction in ("upgrade", "stamp")):
            recorded[row.revision_to] = row
    lines = []
    for revision in applied_revisions(script, now):
        row = recorded.get(revision.revision)
        if row is None:
            continue
        sha = file_sha256(revision.path)
        if sha is not None and sha != row.sha256:
            lines.append(f"revision {revision.revision}'s file {Path(revision.path).name} was "
                         f"edited after {by_whom(row)} applied it on {row.day()} (sha256 "
                         f"{row.sha256[:12]}… then, {sha[:12]}… now)")
    return lines


def applied_revisions(script: ScriptDirectory, now: str) -> list[Any]:
    """The revisions at or below ``now`` (its heads, comma-separated), oldest first."""
    if now == "base":
        return []
    found: dict[str, Any] = {}
    for head in now.split(","):
        try:
            for revision in script.walk_revisions(base="base", head=head):
                found.setdefault(revision.revision, revision)
        except Exception:  # noqa: BLE001 - a recorded revision with no file: state's finding
            continue
    return list(reversed(list(found.values())))


def moved_outside(project: Project, connection: Connection | None = None) -> list[str]:
    """The set-up's lines: moves outside the runbooks and edited applied files (never raises)."""
    if connection is None:
        with project.connect() as conn:
            return moved_outside(project, conn)
    try:
        lines = moved_outside_on(connection, project.history_table, project.script())
    except Exception as exc:  # noqa: BLE001 - degrade, never die: the set-up goes on
        lines = [f"history not checked ({type(exc).__name__}: {redact_text(first_line(exc))})"]
    connection.rollback()
    return lines


def history_setup(project: Project) -> tuple[list[str], str]:
    """The set-up's lines (for the record) and its one Markdown line about the history."""
    lines = moved_outside(project)
    if lines:
        return lines, "**Changed outside the runbooks:** " + "; ".join(lines)
    return lines, "History: no change outside the runbooks since the last recorded run."


def binds_history_setup(projects: list[Project]) -> tuple[dict[str, Any], str]:
    """:func:`history_setup` for each bind: the facts to record and one Markdown text, a section per bind.

    A one-database project (``[project]``) gives exactly what :func:`history_setup` gives.
    """
    from softbee.runbook.project.binds import bind_facts, bind_heading

    found = [history_setup(project) for project in projects]
    facts = {"moved_outside": found[0][0],
             **bind_facts(projects, [{"moved_outside": lines} for lines, _ in found])}
    text = "\n\n".join(f"{bind_heading(project)}\n\n{said}" if project.bind else said
                       for project, (_, said) in zip(projects, found))
    return facts, text
