"""Online revisions: each operation, kills and resumes in each phase, a lost lock, an INVALID index.

Soft-Bee's own ``full_name`` revision (add nullable, backfill, NOT NULL) and ``varroa``
revision (add column, index) are online ones; a revision added here exercises the
foreign key. Kills are real ``kill -9`` of a process running the runbook, at a point its
progress line names; the state it leaves is read back as ``inspect_diff`` and
``recover_stamp`` read it, and a re-run must finish with every row kept.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import plan_migration, run_migration
from softbee.runbook.engine.recover import diagnose
from softbee.runbook.errors import DataLossError, GuardError, MigrationFailed, RevisionError
from softbee.runbook.online import tries
from softbee.runbook.online.phases import PHASE_TABLE, phase_table, recorded_phases
from softbee.runbook.project import load_project
from softbee.runbook.review.findings import check_versions
from softbee.runbook.review.lint import lint_sql
from softbee.runbook.review.offline import render_plan
from softbee.runbook.review.state import get_state
from tests.conftest import each_pg_driver
from tests.helpers import (
    FULL_NAME,
    HEAD,
    HIVE_HEALTH,
    HUNG_AFTER_S,
    MIGRATIONS,
    VARROA,
    history_rows,
    migrations_with_extra_revision,
    project_at,
)

USERS = 3000  # users to fill: three backfill batches of the first size (1,000)

# Runs the upgrade to head and kills its own process (SIGKILL: no cleanup, no rollback
# sent) when the ``nth`` progress line containing ``needle`` is printed.
KILL_AT = """
import os, signal, sys
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.project import load_project

url, migrations, needle, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = []

def progress(line):
    print(line, flush=True)
    if needle in line:
        seen.append(line)
        if len(seen) >= nth:
            os.kill(os.getpid(), signal.SIGKILL)

run_migration(load_project(database_url=url, migrations_dir=migrations), "upgrade", "head",
              progress=progress, lock_timeout_ms=60000)
"""


def seeded_at_hive_health(url: str, migrations: Path = MIGRATIONS):
    """The project at the revision before ``full_name``, with ``USERS`` users to fill."""
    project = project_at(url, HIVE_HEALTH, migrations_dir=migrations)
    users = sa.table("users", *(sa.column(name) for name in (
        "email", "username", "password_hash", "first_name", "last_name")))
    with project.engine.begin() as conn:
        conn.execute(users.insert(), [
            {"email": f"bee{i}@example.org", "username": f"bee{i}", "password_hash": "x",
             "first_name": f"Ada{i}", "last_name": "Keeper"} for i in range(USERS)])
    project.engine.dispose()  # no idle session of this process left on the database
    return project


def users_ok(url: str) -> tuple[int, int, bool]:
    """(users, users whose full_name is first_name || ' ' || last_name, full_name NOT NULL)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
            filled = conn.execute(sa.text(
                "SELECT count(*) FROM users WHERE full_name = first_name || ' ' || last_name")).scalar_one()
            column = next(c for c in sa.inspect(conn).get_columns("users") if c["name"] == "full_name")
        return total, filled, not column["nullable"]
    finally:
        engine.dispose()


def run_killed_at(url: str, needle: str, nth: int = 1, migrations: Path = MIGRATIONS) -> str:
    """Run the upgrade in a process that kills itself at a progress line; its output."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_AT, url, str(migrations), needle, str(nth)],
        capture_output=True, text=True, timeout=HUNG_AFTER_S,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    wait_for_sessions_to_end(url)
    return done.stdout


def wait_for_sessions_to_end(url: str) -> None:
    """A killed client's server session ends when the server sees the socket close: wait for it."""
    engine = sa.create_engine(url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        return
    try:
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                others = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND application_name LIKE 'softbee-runbook%'"
                )).scalar_one()
                if others == 0:
                    return
                time.sleep(0.1)
        raise AssertionError("the killed run's session is still there after 30 s")
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def columns_of(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns(table)}
    finally:
        engine.dispose()


# -- each operation ------------------------------------------------------------------------


def test_full_name_is_filled_for_every_user_and_made_not_null(database_url: str) -> None:
    project = seeded_at_hive_health(database_url)
    result = run_migration(project, "upgrade", FULL_NAME)
    assert users_ok(database_url) == (USERS, USERS, True)
    assert revision_of(database_url) == FULL_NAME
    if project.dialect == "postgresql":
        phases = result.phases_frame()
        assert list(phases["runs"]) == ["in the transaction", "online", "online"]
        assert phases.loc[1, "rows"] == USERS  # the backfill's rows, all of them
    else:  # SQLite: the plain forms, in the run's one transaction
        assert result.phases == []
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:  # nothing of the runbook's is left in the database
        assert not sa.inspect(conn).has_table(PHASE_TABLE)
    engine.dispose()


def test_the_varroa_index_is_built_and_valid(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=50)
    run_migration(project, "upgrade", VARROA)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("inspections")}
        assert "ix_inspections_varroa_mites_per_100" in indexes
        if conn.dialect.name == "postgresql":
            assert conn.execute(sa.text(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                "'ix_inspections_varroa_mites_per_100'::regclass")).scalar_one() is True
    engine.dispose()


def test_an_invalid_index_left_behind_is_found_and_rebuilt(postgres_url: str) -> None:
    project = project_at(postgres_url, VARROA, rows=50)
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        # What a failed or killed CREATE INDEX CONCURRENTLY leaves: an INVALID index of that name.
        conn.execute(sa.text("DROP INDEX ix_inspections_varroa_mites_per_100"))
        conn.execute(sa.text("UPDATE inspections SET varroa_mites_per_100 = 1"))
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_inspections_varroa_mites_per_100 "
                                 "ON inspections (varroa_mites_per_100)"))
        invalid = ("SELECT indisvalid FROM pg_index "
                   "WHERE indexrelid = 'ix_inspections_varroa_mites_per_100'::regclass")
        assert conn.execute(sa.text(invalid)).scalar_one() is False
        # ...and what the killed run recorded: its column phase done, the index phase running.
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": FULL_NAME})
        phase_table.create(conn)
        conn.execute(phase_table.insert(), [
            {"revision": VARROA, "direction": "upgrade", "phase": number, "phases": 2,
             "name": name, "state": state}
            for number, name, state in ((1, "add column", "done"), (2, "create index", "running"))])
    said: list[str] = []
    run_migration(project, "upgrade", VARROA, progress=said.append)
    assert any("INVALID" in line and "building it again" in line for line in said), said
    with engine.connect() as conn:
        assert conn.execute(sa.text(invalid)).scalar_one() is True
        unique = conn.execute(sa.text(
            "SELECT indisunique FROM pg_index "
            "WHERE indexrelid = 'ix_inspections_varroa_mites_per_100'::regclass")).scalar_one()
        assert unique is False  # rebuilt as the revision defines it, not as the leftover was
    engine.dispose()


FK_REVISION = "9c8e3a5d0f09"
EXTRA_REVISION = "9d0f4b6e1a10"


def migrations_with_online_foreign_key(tmp_path: Path) -> Path:
    """Soft-Bee's migrations plus a revision adding inspections.treatment_id with an online foreign key."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / f"{FK_REVISION}_link_inspections_to_treatments.py").write_text(f'''"""Link inspections to the treatment they led to

Revision ID: {FK_REVISION}
"""
import sqlalchemy as sa
from alembic import op

from softbee.runbook import online

revision = {FK_REVISION!r}
down_revision = {HEAD!r}
branch_labels = None
depends_on = None


def add_column():
    with op.batch_alter_table("inspections") as batch_op:
        batch_op.add_column(sa.Column("treatment_id", sa.Integer(), nullable=True))


def upgrade():
    online.run_phases(
        revision,
        online.ddl("add inspections.treatment_id", add_column),
        online.add_foreign_key("fk_inspections_treatment_id_treatments", "inspections",
                               "treatments", ["treatment_id"], ["id"], ondelete="SET NULL"),
    )


def downgrade():
    with op.batch_alter_table("inspections") as batch_op:
        batch_op.drop_constraint("fk_inspections_treatment_id_treatments", type_="foreignkey")
        batch_op.drop_column("treatment_id")
''')
    return target


def test_a_foreign_key_is_added_and_enforced(database_url: str, tmp_path: Path) -> None:
    migrations = migrations_with_online_foreign_key(tmp_path)
    project = project_at(database_url, HEAD, rows=20, migrations_dir=migrations)
    run_migration(project, "upgrade", FK_REVISION)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        keys = {fk["name"]: fk["referred_table"] for fk in sa.inspect(conn).get_foreign_keys("inspections")}
        assert keys.get("fk_inspections_treatment_id_treatments") == "treatments"
        if conn.dialect.name == "postgresql":
            assert conn.execute(sa.text(
                "SELECT convalidated FROM pg_constraint "
                "WHERE conname = 'fk_inspections_treatment_id_treatments'")).scalar_one() is True
            with pytest.raises(sa.exc.IntegrityError):  # enforced: no treatment 999999
                conn.execute(sa.text("UPDATE inspections SET treatment_id = 999999"))
    engine.dispose()


def test_plain_flask_db_upgrade_runs_the_online_forms_on_postgresql(postgres_url: str) -> None:
    seeded_at_hive_health(postgres_url)
    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"], capture_output=True, text=True,
        timeout=HUNG_AFTER_S, env={**os.environ, "FLASK_APP": "softbee", "DATABASE_URL": postgres_url},
    )
    assert done.returncode == 0, done.stderr
    assert "phase 2/3 (online): backfill users.full_name" in done.stdout
    assert users_ok(postgres_url) == (USERS, USERS, True) and revision_of(postgres_url) == HEAD


def test_a_rehearsal_runs_the_plain_forms_and_changes_nothing(postgres_url: str) -> None:
    project = seeded_at_hive_health(postgres_url)
    said: list[str] = []
    result = run_migration(project, "upgrade", "head", rehearse=True, progress=said.append)
    assert result.rehearsal and not result.committed
    assert any("plain form" in line for line in said)
    assert revision_of(postgres_url) == HIVE_HEALTH and "full_name" not in columns_of(postgres_url, "users")


# -- before anything runs: the phases, and lint pointing at them -------------------------


@each_pg_driver
def test_inspect_diff_shows_the_phases_before_anything_runs(postgres_url: str) -> None:
    project = seeded_at_hive_health(postgres_url)
    rendered = render_plan(project, plan_migration(project, "upgrade", "head"), dialect="postgresql")
    phases = rendered.phases_frame()
    assert list(zip(phases["revision"], phases["phase"], phases["runs"], strict=True)) == [
        (FULL_NAME, 1, "in the transaction"), (FULL_NAME, 2, "online on PostgreSQL"),
        (FULL_NAME, 3, "online on PostgreSQL"), (VARROA, 1, "in the transaction"),
        (VARROA, 2, "online on PostgreSQL"),
    ]
    assert revision_of(postgres_url) == HIVE_HEALTH  # nothing ran
    # The online forms are what lint asks for: none of its findings is about them.
    findings = lint_sql(rendered.sql, {"users": 2_000_000, "inspections": 2_000_000})
    assert not set(findings["rule"]) & {"full-table-update", "set-not-null-after-backfill",
                                        "create-index-not-concurrently"}


def test_lint_points_a_full_table_update_and_set_not_null_at_the_online_form() -> None:
    sql = ("-- Running upgrade a1 -> b2\n\nALTER TABLE users ADD COLUMN full_name VARCHAR(200);\n\n"
           "UPDATE users SET full_name=(users.first_name || ' ') || users.last_name;\n\n"
           "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;\n")
    findings = lint_sql(sql, {"users": 2_000_000}).set_index("rule")
    assert "online.backfill" in findings.loc["full-table-update", "fix"]
    assert findings.loc["set-not-null-after-backfill", "severity"] == "warning"
    assert "online.set_not_null" in findings.loc["set-not-null-after-backfill", "fix"]
    small = lint_sql(sql, {"users": 10})
    assert "full-table-update" not in set(small["rule"])


# -- the application's locks ---------------------------------------------------------------


class Holder:
    """The application holding a lock (an open transaction) from the run's progress line ``at`` on.

    ``sql`` runs in that transaction, which stays open ``seconds``, then rolls back.
    """

    def __init__(self, url: str, seconds: float, *, at: str, sql: str) -> None:
        self.url, self.seconds, self.at, self.sql = url, seconds, at, sql
        self.held, self.thread = threading.Event(), None
        self.said: list[str] = []

    def progress(self, line: str) -> None:
        self.said.append(line)
        if self.at in line and self.thread is None:
            self.thread = threading.Thread(target=self._hold)
            self.thread.start()
            assert self.held.wait(HUNG_AFTER_S) and self.failed is None, self.failed

    failed: BaseException | None = None

    def _hold(self) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(self.sql))
                self.held.set()
                time.sleep(self.seconds)
                conn.rollback()
        except BaseException as exc:  # noqa: BLE001 - said by progress(), in the test's thread
            self.failed = exc
        finally:
            self.held.set()
            engine.dispose()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(HUNG_AFTER_S)


def online_retries_last_s(session_ms: int) -> float:
    """How long an online statement's tries and the waits between them last, at most."""
    timeouts, timeout = [], tries.FIRST_LOCK_TIMEOUT_MS
    for _ in range(tries.RETRIES + 1):
        timeouts.append(min(timeout, session_ms))
        timeout *= 2
    waits = [min(tries.RETRY_FIRST_WAIT_S * 2 ** k, tries.RETRY_MAX_WAIT_S)
             for k in range(tries.RETRIES)]
    return sum(timeouts) / 1000 + sum(waits)


class RowHolder(Holder):
    """The last user's row held from the first backfill batch on (phase 1 committed, a batch done):
    the batches after it reach the row and lose their lock to it."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(url, seconds, at=" rows (",
                         sql="SELECT id FROM users WHERE id = (SELECT max(id) FROM users) FOR UPDATE")


@each_pg_driver
def test_a_batch_that_loses_to_the_application_waits_and_retries(postgres_url: str) -> None:
    project = seeded_at_hive_health(postgres_url)
    holder = RowHolder(postgres_url, 1.5)
    try:
        run_migration(project, "upgrade", FULL_NAME, lock_timeout_ms=300, progress=holder.progress)
    finally:
        holder.join()
    assert holder.thread is not None
    assert any("lost a lock to the application" in line for line in holder.said), holder.said
    assert users_ok(postgres_url) == (USERS, USERS, True)


@each_pg_driver
def test_a_batch_that_keeps_losing_fails_within_its_bound_and_says_where_it_is(postgres_url: str) -> None:
    project = seeded_at_hive_health(postgres_url)
    # Held longer than the retries last (50 ms, 100, 200, then 300 ms of lock_timeout, with
    # waits between): a run that waited for the holder would end up succeeding, not fail.
    assert online_retries_last_s(300) < 15
    holder = RowHolder(postgres_url, 15)
    try:
        with pytest.raises(MigrationFailed) as failed:
            run_migration(project, "upgrade", FULL_NAME, lock_timeout_ms=300, progress=holder.progress)
    finally:
        holder.join()
    message = str(failed.value)
    assert "lock_timeout (300 ms)" in message and "phase 2 of 3" in message, message
    assert f"at revision {HIVE_HEALTH}" in message and "resume" in message
    # Phase 1 (the new column) is committed: the report must not claim a rollback.
    assert "rolled back, database still" not in message, message
    assert f"{FULL_NAME} is NOT rolled back as a whole" in message
    assert "full_name" in columns_of(postgres_url, "users")
    stopped = history_rows(postgres_url)[-1]  # the history says where it stopped
    assert (stopped.revision_to, stopped.outcome) == (FULL_NAME, "phase 2 of 3")
    run_migration(project, "upgrade", FULL_NAME)  # the holder is gone: a re-run finishes
    assert users_ok(postgres_url) == (USERS, USERS, True)


# -- kill -9 in each phase, then a re-run ---------------------------------------------------

KILL_POINTS = [
    # (driver, progress line to die at, the nth one, what the database must then say, the
    # phases a re-run must skip: exactly the ones recorded done, no more, no fewer)
    pytest.param("psycopg2", "phase 1/3", 1, None, [], id="phase 1 before its DDL"),
    pytest.param("psycopg2", " rows (", 1, "phase 2 of 3 (backfill users.full_name) running", [1],
                 id="phase 2 mid-backfill"),
    pytest.param("psycopg2", "phase 3/3", 1, "phase 2 of 3 (backfill users.full_name) done", [1, 2],
                 id="phase 3 before NOT NULL"),
    pytest.param("psycopg2", "phase 2/2", 1, None, [], id="varroa index phase"),
    # psycopg 3: the resume reads the phase record and the killed session as psycopg2 does
    pytest.param("psycopg", " rows (", 1, "phase 2 of 3 (backfill users.full_name) running", [1],
                 id="psycopg phase 2 mid-backfill"),
]


@pytest.mark.parametrize(("postgres_url", "needle", "nth", "recorded", "skipped_phases"),
                         KILL_POINTS, indirect=["postgres_url"])
def test_killed_in_a_phase_the_state_is_explained_and_a_rerun_finishes(
    postgres_url: str, needle: str, nth: int, recorded: str | None, skipped_phases: list[int]
) -> None:
    seeded_at_hive_health(postgres_url)
    run_killed_at(postgres_url, needle, nth)
    project = load_project(database_url=postgres_url, migrations_dir=str(MIGRATIONS))
    state = get_state(project)
    if needle == "phase 2/2":  # full_name committed; varroa's column not yet (killed before)
        assert state.current == (FULL_NAME,) and state.in_progress == ()
        assert "varroa_mites_per_100" not in columns_of(postgres_url, "inspections")
    elif recorded is None:  # nothing of full_name committed yet
        assert state.current == (HIVE_HEALTH,) and state.in_progress == ()
        assert "full_name" not in columns_of(postgres_url, "users")
    else:
        assert state.current == (HIVE_HEALTH,)
        assert [line for line in state.in_progress if recorded in line], state.in_progress
        # inspect_diff (check_versions) and recover_stamp (diagnose) say the same
        assert any(recorded in f.problem for f in check_versions(project))
        assert recorded in diagnose(project).frame().to_string()
    result = run_migration(project, "upgrade", "head")  # the re-run resumes
    assert revision_of(postgres_url) == HEAD and get_state(project).in_progress == ()
    assert users_ok(postgres_url) == (USERS, USERS, True)
    # a finished phase is never run twice (a re-run backfill would pass every other check)
    assert [p["phase"] for p in result.phases if p["skipped"]] == skipped_phases


def test_killed_on_sqlite_the_run_is_rolled_back_whole_and_a_rerun_finishes(sqlite_url: str) -> None:
    seeded_at_hive_health(sqlite_url)
    run_killed_at(sqlite_url, "done in", 1)  # after full_name ran, before the run committed
    assert revision_of(sqlite_url) == HIVE_HEALTH and "full_name" not in columns_of(sqlite_url, "users")
    project = load_project(database_url=sqlite_url, migrations_dir=str(MIGRATIONS))
    run_migration(project, "upgrade", "head")
    assert users_ok(sqlite_url) == (USERS, USERS, True)


def test_the_phase_record_lists_running_and_done_phases(postgres_url: str) -> None:
    seeded_at_hive_health(postgres_url)
    run_killed_at(postgres_url, " rows (", 1)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        records = recorded_phases(conn)
    engine.dispose()
    assert [(r.phase, r.state) for r in records] == [(1, "done"), (2, "running")]
    assert records[1].rows_total == USERS and 0 < (records[1].rows_done or 0) < USERS



def test_the_runbooks_show_a_half_done_revision_and_upgrade_downgrade_resumes_it(
    postgres_url: str, tmp_path: Path
) -> None:
    from tests.notebooks import run_failing_runbook, run_runbook

    seeded_at_hive_health(postgres_url)
    run_killed_at(postgres_url, " rows (", 1)
    inspected = run_runbook("inspect_diff", tmp_path, database_url=postgres_url)
    text = json.dumps(inspected)
    assert "phase 2 of 3 (backfill users.full_name) running" in text
    assert "run upgrade_downgrade again" in text
    # recover_stamp's dry run (no fix, no stamp) cannot verify a half-done revision: it says
    # which phase it is at, and to resume rather than stamp.
    error, diagnosed = run_failing_runbook("recover_stamp", tmp_path, database_url=postgres_url)
    assert "phase 2 of 3 (backfill users.full_name) running" in json.dumps(diagnosed)
    assert "resume it rather than stamping" in str(error)
    upgraded = run_runbook("upgrade_downgrade", tmp_path, database_url=postgres_url)
    text = json.dumps(upgraded)
    assert "done by an earlier run, skipped" in text and "Phases of the online revisions" in text
    assert revision_of(postgres_url) == HEAD and users_ok(postgres_url) == (USERS, USERS, True)
    from softbee.runbook.archive.summary import read_summary

    (found,) = read_summary(upgraded)["in_progress"]  # the run's first words say what it met
    assert "phase 2 of 3 (backfill users.full_name) running" in found


def test_the_guard_counts_outside_the_locks_only_for_revisions_that_only_add(postgres_url: str) -> None:
    from softbee.runbook.engine.online_run import GuardPlan
    from softbee.runbook.engine.predict import step_sql
    from softbee.runbook.review.counts import user_tables
    from softbee.runbook.review.state import get_script

    project = project_at(postgres_url, HEAD)
    with project.connect() as conn:
        tables = user_tables(conn)

    def guard(direction: str, revision: str) -> tuple[list[str], bool]:
        plan = GuardPlan(step_sql(project, direction, get_script(project, revision)), tables)
        return plan.tables, plan.additive

    # Its ADD COLUMN only adds (BEGIN/COMMIT aside); the fill and NOT NULL are online phases.
    assert guard("upgrade", FULL_NAME) == (["users"], True)
    assert guard("upgrade", VARROA) == (["inspections"], True)
    assert guard("upgrade", HEAD) == ([], True)  # a new table: nothing there to lose
    assert guard("downgrade", FULL_NAME) == (["users"], False)  # DROP COLUMN: counted inside
    assert GuardPlan(None, tables).tables == tables and not GuardPlan(None, tables).additive


@pytest.mark.parametrize(("statement", "tables"), [
    ("ALTER TABLE public.users DROP COLUMN email", ["users"]),
    ('ALTER TABLE IF EXISTS ONLY "users" DROP COLUMN email', ["users"]),
    ("DROP TABLE hives, users", ["hives", "users"]),
    ("TRUNCATE apiaries, public.users CASCADE", ["apiaries", "users"]),
    ("ALTER TABLE users RENAME TO members", ["users", "members"]),  # members counted after
])
def test_the_guard_reads_qualified_names_lists_and_renames(statement: str, tables: list[str]) -> None:
    from softbee.runbook.engine.online_run import GuardPlan

    plan = GuardPlan(f"{statement};\n", ["apiaries", "hives", "users"])
    assert (plan.tables, plan.additive) == (tables, False)


def test_a_statement_whose_table_the_guard_cannot_name_makes_it_count_every_table() -> None:
    """Never a guard that counts nothing: a statement that may lose data, its table unknown."""
    from softbee.runbook.engine.online_run import GuardPlan

    existing = ["apiaries", "hives", "users"]
    plan = GuardPlan("WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone;\n",
                     existing)
    assert (plan.tables, plan.additive) == (existing, False)


# -- what the guard and the reports say on an online plan ----------------------------------

@pytest.mark.parametrize(("statement", "count_mode"), [
    pytest.param("DELETE FROM users WHERE id % 2 = 0", "estimate", id="estimate-delete"),
    pytest.param("ALTER TABLE public.users DROP COLUMN email", "exact", id="qualified-drop-column"),
])
def test_the_guard_applies_to_a_revision_in_an_online_plan(
    postgres_url: str, tmp_path: Path, statement: str, count_mode: str
) -> None:
    """A loss in a plain revision of a phased plan is refused: estimates and qualified names too."""
    migrations = migrations_with_extra_revision(tmp_path, EXTRA_REVISION, HEAD,
                                                upgrade=f"op.execute({statement!r})")
    project = seeded_at_hive_health(postgres_url, migrations)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE users"))  # the estimate's reltuples, right before
        conn.commit()
    engine.dispose()
    with pytest.raises(DataLossError) as refused:
        run_migration(project, "upgrade", "head", count_mode=count_mode)
    assert "would lose data" in str(refused.value)
    assert revision_of(postgres_url) == HEAD  # the online revisions before it are committed
    assert users_ok(postgres_url) == (USERS, USERS, True)  # and the purge rolled back
    assert "email" in columns_of(postgres_url, "users")


def test_rows_the_application_deletes_during_a_backfill_are_not_called_a_loss(postgres_url: str) -> None:
    """Each guarded segment is compared with its own start, not with the time before the backfill."""
    project = seeded_at_hive_health(postgres_url)
    engine = sa.create_engine(postgres_url)
    deleted: list[str] = []

    def progress(line: str) -> None:
        if " rows (" in line and not deleted:  # the application, mid-backfill
            with engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM users WHERE id = (SELECT max(id) FROM users)"))
            deleted.append(line)

    run_migration(project, "upgrade", FULL_NAME, progress=progress)
    engine.dispose()
    assert deleted and revision_of(postgres_url) == FULL_NAME
    assert users_ok(postgres_url) == (USERS - 1, USERS - 1, True)


@each_pg_driver
def test_an_index_build_that_loses_its_lock_is_rebuilt_not_left_invalid(
    postgres_url: str, tmp_path: Path
) -> None:
    """CREATE INDEX CONCURRENTLY timed out leaves an INVALID index; the retry must not skip it."""
    migrations = migrations_with_extra_revision(
        tmp_path, EXTRA_REVISION, HEAD,
        upgrade="from softbee.runbook import online; online.run_phases(revision, "
                "online.create_index('ix_inspections_hive_id_id', 'inspections', ['hive_id', 'id']))")
    project = project_at(postgres_url, HEAD, rows=50, migrations_dir=migrations)
    # A write open on inspections when the build starts: the build waits for it, times out.
    holder = Holder(postgres_url, 1.5, at="phase 1/1",
                    sql="UPDATE inspections SET id = id WHERE id = (SELECT min(id) FROM inspections)")
    try:
        run_migration(project, "upgrade", EXTRA_REVISION, lock_timeout_ms=300,
                      progress=holder.progress)
    finally:
        holder.join()
    said = "\n".join(holder.said)
    assert "lost a lock to the application" in said and "is INVALID" in said, said
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = "
            "'ix_inspections_hive_id_id'::regclass")).scalar_one() is True
    engine.dispose()


@each_pg_driver
def test_without_a_lock_timeout_online_statements_still_give_up_and_retry(postgres_url: str) -> None:
    """lock_timeout_ms=0 means none for the guarded DDL; an online phase still gets its 2 s bound."""
    project = seeded_at_hive_health(postgres_url)
    # An idle transaction that read users: SET NOT NULL's ADD CONSTRAINT waits for it.
    holder = Holder(postgres_url, 3.0, at="phase 3/3", sql="SELECT count(*) FROM users")
    try:
        run_migration(project, "upgrade", FULL_NAME, lock_timeout_ms=0, progress=holder.progress)
    finally:
        holder.join()
    lost = [line for line in holder.said if "lost a lock to the application" in line]
    assert lost and "lock timeout" in lost[0], holder.said
    assert users_ok(postgres_url) == (USERS, USERS, True)


def test_a_rehearsal_inside_a_half_done_revision_is_refused_naming_it(postgres_url: str) -> None:
    seeded_at_hive_health(postgres_url)
    run_killed_at(postgres_url, " rows (")
    project = load_project(database_url=postgres_url, migrations_dir=str(MIGRATIONS))
    before = get_state(project).in_progress
    for flags in ({"rehearse": True}, {"round_trip": True}):
        with pytest.raises(GuardError) as refused:
            run_migration(project, "upgrade", "head", **flags)
        message = str(refused.value)
        assert "phase 2 of 3 (backfill users.full_name) running" in message, message
        assert "finish it first with upgrade_downgrade" in message
    assert get_state(project).in_progress == before and revision_of(postgres_url) == HIVE_HEALTH


def test_a_failure_reading_the_database_after_the_plan_says_it_is_committed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.engine import online_run

    project = seeded_at_hive_health(postgres_url)
    real, calls = online_run.schema_of, []

    def schema_of(conn: sa.engine.Connection) -> object:
        calls.append(1)
        if len(calls) == 2:  # the read after every revision committed
            raise RuntimeError("the server went away")
        return real(conn)

    monkeypatch.setattr(online_run, "schema_of", schema_of)
    with pytest.raises(MigrationFailed) as failed:
        run_migration(project, "upgrade", FULL_NAME)
    message = str(failed.value)
    assert f"every revision of the plan is committed (the database is at {FULL_NAME})" in message
    assert "rolled back" not in message and "the server went away" in message
    assert revision_of(postgres_url) == FULL_NAME


def test_a_revision_error_mid_plan_says_where_the_database_is(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic's CommandError in the second revision: the first is committed, and the line says so."""
    from alembic.util import CommandError

    from softbee.runbook.engine import online_run

    project = seeded_at_hive_health(postgres_url)
    real = online_run.migrate_one

    def migrate_one(config, plan, script):
        if script.revision == VARROA:
            raise CommandError("Can't locate revision identified by 'x'")
        return real(config, plan, script)

    monkeypatch.setattr(online_run, "migrate_one", migrate_one)
    with pytest.raises(RevisionError) as failed:
        run_migration(project, "upgrade", VARROA)
    message = str(failed.value)
    assert f"the database is at revision {FULL_NAME}" in message, message
    assert revision_of(postgres_url) == FULL_NAME
