"""What a plan would lose, predicted before it runs, where DDL cannot be rolled back.

The revisions' SQL, rendered offline, is read for dropped tables and columns and deleted
rows (``review.lint.destructive_statements``), and the live database is counted for what
they hold; a revision whose SQL cannot be rendered offline is refused with the rehearsal
that shows what it does (:func:`cannot_predict`). Used by ``stepwise``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import CannotPredict, first_line
from softbee.runbook.project import Project
from softbee.runbook.project.advice import runbook_command
from softbee.runbook.review.counts import SKIPPED_TABLES, has_rows
from softbee.runbook.review.lint import destructive_statements
from softbee.runbook.review.offline import downgrade_sql, upgrade_sql
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import down_revisions
from softbee.runbook.util.sqltext import split_sql
from softbee.urls import redact_text

if TYPE_CHECKING:
    from alembic.script import Script


def step_sql(project: Project, direction: str, script: Script) -> str:
    """The SQL of one revision step, rendered offline for the project's database."""
    if direction == "upgrade":
        parents = down_revisions(script)
        return upgrade_sql(project, parents[0] if len(parents) == 1 else None, script.revision)
    parents = down_revisions(script)
    return downgrade_sql(project, script.revision, parents[0] if len(parents) == 1 else None)


def predict_losses(project: Project, connection: Connection, plan: Plan) -> list[dict[str, Any]]:
    """What the plan would lose, read from its offline SQL and counted on the live database.

    A revision whose SQL cannot be rendered offline (it needs a live connection) is listed
    as ``unpredictable`` only when the database holds rows it could lose: on a database with
    no rows there is nothing to lose, whatever it does.
    """
    losses: list[dict[str, Any]] = []
    tables = set(sa.inspect(connection).get_table_names())
    holding = sorted(t for t in tables if t not in SKIPPED_TABLES and has_rows(connection, t))
    created: set[str] = set()
    for script in plan.scripts:
        try:
            sql = step_sql(project, plan.direction, script)
        except Exception as exc:  # noqa: BLE001 - a revision that needs a live connection
            if holding:
                losses.append({"kind": "unpredictable", "object": script.revision, "lost": None,
                               "detail": f"{script.revision}'s SQL cannot be rendered offline "
                                         f"({type(exc).__name__}: {redact_text(first_line(exc))})"})
            continue
        created |= {st.code.split()[2].strip("`").lower() for st in split_sql(sql)
                    if st.code.upper().startswith("CREATE TABLE")}
        for found in destructive_statements(sql):
            table = found["table"]
            if table in SKIPPED_TABLES or table in created or table not in tables:
                continue  # Alembic's own table, or one this plan creates: nothing there yet
            lost = _count(connection, table, found["column"])
            if lost:
                what = f"{table}.{found['column']}" if found["column"] else table
                losses.append({"kind": found["kind"], "object": what, "lost": lost,
                               "detail": f"{what}: {lost} {'value' if found['column'] else 'row'}"
                                         f"(s), by {script.revision}'s {found['statement']}"})
    connection.commit()
    return losses


def _count(connection: Connection, table: str, column: str | None) -> int:
    quote = connection.dialect.identifier_preparer.quote
    counted = f"count({quote(column)})" if column else "count(*)"
    try:
        return int(connection.exec_driver_sql(f"SELECT {counted} FROM {quote(table)}").scalar_one())
    except sa.exc.DBAPIError:  # a column this plan adds first: nothing in it yet
        connection.rollback()
        return 0


def cannot_predict(
    project: Project, plan: Plan, unpredictable: list[dict[str, Any]]
) -> CannotPredict:
    """The refusal of revisions whose loss cannot be predicted, with the rehearsal that shows it."""
    revisions = [loss["object"] for loss in unpredictable]
    reasons = "; ".join(loss["detail"] for loss in unpredictable)
    rehearse = runbook_command(project, "upgrade_downgrade", direction=plan.direction,
                               target=_target_word(project, plan), rehearse=True)
    return CannotPredict(
        f"{plan.direction}: cannot predict what {', '.join(revisions)} would do to the rows "
        f"this database holds ({reasons}): nothing was run ({project.dialect} cannot roll DDL "
        f"back, so a loss must be predicted before running). Rehearse it on a scratch copy "
        f"with `` {rehearse} ``; when the rehearsal shows what you expect, run it with "
        "allow_data_loss=True (that also lets through any other loss of the same run)",
        revisions)


def _target_word(project: Project, plan: Plan) -> str:
    heads = project.script().get_heads()
    return "head" if plan.target is not None and list(heads) == [plan.target] else (
        plan.target or "base")
