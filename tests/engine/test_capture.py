"""Revisions that need a live connection: listed by the offline rendering, captured by a rehearsal.

The oldest_stack example's ``f2000000003c`` reads rows to compute its update and
``f2000000004d`` reads ``bind.engine.url``: Alembic's offline mode cannot render either.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.capture import capture_plan, inline_parameters
from softbee.runbook.engine.guards import migration_lock
from softbee.runbook.engine.migrate import plan_to, run_migration
from softbee.runbook.errors import LockHeld
from softbee.runbook.review.lint import lint_sql
from softbee.runbook.review.offline import NEEDS_LIVE, render_plan
from tests.helpers import BEEYARD_REVISIONS, LIVE_ONLY, add_hives, dump, revision_of, snapshot
from tests.notebooks import run_runbook, shown, step_outputs, table_rows

YARD_SET = BEEYARD_REVISIONS[1]


def yards(url: str) -> dict[str, str | None]:
    """Each hive's yard, by name."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT name, yard FROM hives")).all())
    engine.dispose()
    return rows


def test_revisions_that_need_a_live_connection_are_listed_and_the_others_rendered(
    database_url: str, beeyard
) -> None:
    """From base: the first two revisions render, the two data migrations are listed with why; nothing runs."""
    project = beeyard(database_url)
    rendered = render_plan(project, plan_to(project, "head"), dialect="postgresql")

    frame = rendered.frame().set_index("revision")
    assert list(frame.index) == list(BEEYARD_REVISIONS)
    assert rendered.needs_live == list(LIVE_ONLY)
    assert (frame.loc[list(BEEYARD_REVISIONS[:2]), "offline"] == "rendered").all()
    assert (frame.loc[list(LIVE_ONLY), "offline"] == NEEDS_LIVE).all()
    assert "fetchall" in frame.loc[LIVE_ONLY[0], "reason"]
    assert "has no attribute 'url'" in frame.loc[LIVE_ONLY[1], "reason"]
    assert "CREATE TABLE hives" in rendered.sql and "ADD COLUMN yard" in rendered.sql
    assert revision_of(database_url) is None
    assert "hives" not in sa.inspect(sa.create_engine(database_url)).get_table_names()


def test_capture_shows_each_revisions_statements_and_leaves_the_database_as_it_was(
    database_url: str, beeyard
) -> None:
    """The rehearsal records the UPDATEs computed from the rows and the index; then it is rolled back."""
    project = beeyard(database_url)
    run_migration(project, "upgrade", YARD_SET)
    add_hives(database_url)
    unchanged = dump(database_url)

    captured = capture_plan(project, plan_to(project, "head"))

    assert [r.revision for r in captured.revisions] == list(LIVE_ONLY)
    fill, index = captured.revisions
    ran = [s.sql for s in fill.statements]
    assert "UPDATE hives SET yard = 'north' WHERE id = 1" in ran
    assert "UPDATE hives SET yard = 'home' WHERE id = 3" in ran
    assert any(s.startswith("CREATE INDEX ix_hives_yard ON hives") for s in (x.sql for x in index.statements))
    if database_url.startswith("postgresql"):
        assert {"relation": "hives", "mode": "ShareLock"} in index.locks
        assert not captured.locks_frame().empty
    assert captured.result.rehearsal and not captured.result.committed
    assert dump(database_url) == unchanged
    assert revision_of(database_url) == YARD_SET
    assert set(yards(database_url).values()) == {None}


def test_capture_waits_for_no_one_it_is_refused_while_another_run_holds_the_lock(
    sqlite_url: str, beeyard
) -> None:
    """The rehearsal takes the migration lock like a real run: held elsewhere, it is refused."""
    project = beeyard(sqlite_url)
    run_migration(project, "upgrade", YARD_SET)
    before = snapshot(sqlite_url)
    with project.connect() as other, migration_lock(project, other), pytest.raises(LockHeld):
        capture_plan(project, plan_to(project, "head"))
    assert snapshot(sqlite_url) == before


def test_lint_reads_the_captured_statements(sqlite_url: str, beeyard) -> None:
    """An index built without CONCURRENTLY by a live-only revision is found on a large table."""
    project = beeyard(sqlite_url)
    run_migration(project, "upgrade", YARD_SET)
    captured = capture_plan(project, plan_to(project, "head"))
    findings = lint_sql(captured.sql(LIVE_ONLY), {"hives": 1_000_000})
    flagged = findings[findings["message"].str.contains("CONCURRENTLY")]
    assert set(flagged["revision"]) == {LIVE_ONLY[1]}


def test_parameters_are_written_in_as_literals() -> None:
    """pyformat, named and qmark parameters become SQL literals; quotes are doubled."""
    assert inline_parameters("UPDATE t SET a = %(a)s WHERE id = %(id)s", {"a": "o'k", "id": 3}) == (
        "UPDATE t SET a = 'o''k' WHERE id = 3")
    assert inline_parameters("UPDATE t SET a = ? WHERE b IS ?", ("x", None)) == (
        "UPDATE t SET a = 'x' WHERE b IS NULL")
    assert inline_parameters("SELECT :n", {"n": True}) == "SELECT TRUE"


@pytest.mark.notebook
def test_inspect_diff_lists_live_only_revisions_and_with_capture_shows_their_sql(
    database_url: str, beeyard, tmp_path
) -> None:
    """The runbook completes: offline it lists the two revisions; with capture=True it shows their UPDATEs."""
    project = {"app": 'beeyard:create_app("beeyard.config.Runbook")', "migrations_dir": "migrations",
               "database_url": database_url}
    project_ = beeyard(database_url)
    run_migration(project_, "upgrade", YARD_SET)
    add_hives(database_url)
    unchanged = dump(database_url)

    nb = run_runbook("inspect_diff", tmp_path, cwd=beeyard.root, **project)
    tables = shown(step_outputs(nb, "## 4."), "text/html")
    offline = {row["revision"]: row["offline"] for row in table_rows(tables[0])}
    assert offline == {rev: NEEDS_LIVE for rev in LIVE_ONLY}

    nb = run_runbook("inspect_diff", tmp_path, cwd=beeyard.root, capture=True, **project)
    tables = shown(step_outputs(nb, "## 4."), "text/html")
    statements = [row["sql"] for row in table_rows(tables[1])]
    assert "UPDATE hives SET yard = 'south' WHERE id = 2" in statements
    assert dump(database_url) == unchanged
