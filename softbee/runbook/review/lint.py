"""Lint what will run: squawk plus Soft-Bee's own checks, on offline SQL or an autogenerate diff.

Both entry points return a DataFrame with :data:`FINDING_COLUMNS`, errors first, then warnings,
then info; within a severity, in the order the statements or diff rows come.

:func:`lint_sql` reads SQL as ``alembic upgrade --sql`` renders it: statements ending in ``;``,
each revision introduced by ``-- Running upgrade X -> Y``. PostgreSQL's SQL goes through squawk
and our checks; MySQL's (``dialect="mysql"``: ``MODIFY``, ``CHANGE``, backquotes) through our
checks only, since squawk parses PostgreSQL alone (an info finding says so). A finding's
``revision`` is ``Y`` (for ``-- Running downgrade X -> Y`` it is ``X``: the script whose code
runs), or None before the first such comment. Statements on ``alembic_version`` and
BEGIN/COMMIT are ignored.

:func:`lint_diff` reads an autogenerate diff table with columns ``operation``, ``table``,
``column``, ``detail``, ``destructive``. The ``detail`` formats it relies on:

* ``modify_nullable``: ``"<existing> -> <new>"`` with Python booleans, e.g. ``"True -> False"``;
  ``"NULL -> NOT NULL"`` and ``"nullable=True -> nullable=False"`` are read too.
* ``modify_type``: ``"<existing type> -> <new type>"`` as compiled SQL, e.g.
  ``"VARCHAR(200) -> VARCHAR(50)"`` or ``"INTEGER -> NUMERIC(10, 2)"``; SQLAlchemy reprs such as
  ``"String(length=200)"`` are read too. A type it cannot read gives a warning, never an error.
* ``add_column`` / ``remove_column``: the column's type first, e.g. ``"VARCHAR(200)"``. For
  ``add_column`` the words ``NOT NULL`` (or ``nullable=False``) mark the column required, and
  ``DEFAULT ...`` (or ``server_default=<anything but None>``) mark a server default.
* any other operation: free text, quoted in the message.

``row_counts`` maps table names (bare or schema-qualified, any case) to rows. A table created
earlier in the same SQL or diff counts as empty; a table not in ``row_counts`` is unknown, and a
check that depends on rows then warns "if the table has rows" instead of raising an error.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from softbee.runbook.online.phases import guarded_sql
from softbee.runbook.review.lint_diff import lint_diff as lint_diff  # the entry points: here
from softbee.runbook.review.lint_findings import FINDING_COLUMNS as FINDING_COLUMNS
from softbee.runbook.review.lint_findings import RowCounts, finding, findings_table
from softbee.runbook.review.lint_findings import has_errors as has_errors
from softbee.runbook.review.lint_squawk import SAME_AS, squawk_findings
from softbee.runbook.review.lint_squawk import (
    SQUAWK_TIMEOUT_SECONDS as SQUAWK_TIMEOUT_SECONDS,
)
from softbee.runbook.review.lint_squawk import find_squawk as find_squawk
from softbee.runbook.review.lint_statements import SqlChecks
from softbee.runbook.review.lint_statements import (
    destructive_statements as destructive_statements,
)
from softbee.runbook.util.sqltext import split_sql


def lint_sql(
    sql: str,
    row_counts: Mapping[str, int] | None = None,
    large_table_rows: int = 100_000,
    dialect: str = "postgresql",
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Findings from squawk and Soft-Bee's checks on offline (``--sql``) SQL of ``dialect``.

    ``columns`` (table -> column -> ``"TYPE [NOT NULL]"``, as ``migrate.schema_of`` gives)
    are the live definitions a MySQL ``MODIFY``/``CHANGE`` restates: with them a restated
    type or ``NOT NULL`` is told apart from a changed one. The statements of online phases
    (``online.run_phases``) are left out: they are the online forms these checks point to,
    run outside the migration's transaction.
    """
    sql = guarded_sql(sql)
    statements = split_sql(sql)
    rows = RowCounts(row_counts)
    checks = SqlChecks(rows, large_table_rows, dialect, columns)
    for statement in statements:
        checks.visit(statement)
    own = checks.finish()
    if dialect != "postgresql":
        if not statements:
            return findings_table(own)
        note = (f"squawk parses PostgreSQL only and this SQL is rendered for {dialect}: only "
                "Soft-Bee's operation checks ran")
        return findings_table([*own, finding("info", "squawk", "squawk-skipped", None, None, note)])
    covered = {(f["revision"], f["object"], f["rule"]) for f in own}
    squawk = [
        f
        for f in squawk_findings(sql, statements, rows, large_table_rows)
        if (f["revision"], f["object"], SAME_AS.get(f["rule"])) not in covered
    ]
    return findings_table(own + squawk)
