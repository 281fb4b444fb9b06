"""Revisions using Alembic's own ``autocommit_block`` run as online phases (tests/examples/native_autocommit_block).

The example's ``ab0c00000002`` adds a column, then builds an index ``CONCURRENTLY`` in
``op.get_context().autocommit_block()`` (its downgrade drops it ``CONCURRENTLY``);
``ab0c00000004`` builds another. Under ``upgrade_downgrade`` each block is a phase: the
work before it checked and committed, the block in autocommit, recorded, resumed after a
``kill -9`` by a re-run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import MigrationFailed
from softbee.runbook.online.phases import PHASE_TABLE, recorded_phases
from softbee.runbook.project import Project, load_project
from tests.engine.test_online import Holder, wait_for_sessions_to_end
from tests.helpers import EXAMPLES, HUNG_AFTER_S, revision_of

EXAMPLE = EXAMPLES / "native_autocommit_block"
MIGRATIONS = EXAMPLE / "migrations"
APP = "combs:app"
FIRST, COLUMN_AND_INDEX, HARVESTS, HEAD = (
    "ab0c00000001", "ab0c00000002", "ab0c00000003", "ab0c00000004")
FRAMES = 2000


def combs(url: str, migrations: Path = MIGRATIONS) -> Project:
    """The example project on ``url`` (its package importable, as from its own folder)."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    return load_project(app=APP, migrations_dir=str(migrations), database_url=url)


def seed_frames(url: str) -> None:
    """``FRAMES`` frames, at revision ab0c00000001 or later."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO frames (id, hive, weight_g) VALUES (:id, :hive, :w)"),
                     [{"id": i, "hive": f"hive-{i % 37}", "w": 2000 + i} for i in range(1, FRAMES + 1)])
    engine.dispose()


def indexes(url: str) -> dict[str, bool]:
    """Each index of the example's tables (primary keys left out), and whether it is valid."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN ('frames', 'harvests') "
                "AND NOT i.indisprimary"))
            return dict(rows.all())
    finally:
        engine.dispose()


def scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def flask_db(url: str, migrations: Path, *args: str) -> None:
    """``flask db <args>`` on the example, as its users run it (Alembic alone, no runbook)."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", APP, "db", args[0], "-d", str(migrations), *args[1:]],
        cwd=EXAMPLE, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
        timeout=HUNG_AFTER_S)
    assert done.returncode == 0, done.stdout + done.stderr


def has_table(url: str, table: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table(table)
    finally:
        engine.dispose()


# -- base -> head -> base -> head ----------------------------------------------------------


@pytest.mark.postgres
def test_base_to_head_and_back_twice_through_upgrade_downgrade(postgres_url: str) -> None:
    project = combs(postgres_url)
    said: list[str] = []
    result = run_migration(project, "upgrade", "head", progress=said.append)
    assert revision_of(postgres_url) == HEAD and result.committed
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}
    ran = {(p["revision"], p["runs"]) for p in result.phases}
    assert (COLUMN_AND_INDEX, "online") in ran and (HEAD, "online") in ran
    assert any("autocommit_block" in line and COLUMN_AND_INDEX in line for line in said), said
    assert not has_table(postgres_url, PHASE_TABLE)

    run_migration(project, "downgrade", "base")
    assert revision_of(postgres_url) is None and not has_table(postgres_url, "frames")
    run_migration(project, "upgrade", "head")
    assert revision_of(postgres_url) == HEAD
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}
    assert not has_table(postgres_url, PHASE_TABLE)


@pytest.mark.postgres
def test_a_table_with_rows_is_indexed_concurrently_and_unindexed_concurrently(postgres_url: str) -> None:
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    run_migration(project, "upgrade", "head")
    assert indexes(postgres_url)["ix_frames_hive"] is True
    said: list[str] = []
    run_migration(project, "downgrade", FIRST, progress=said.append)  # DROP INDEX CONCURRENTLY
    assert revision_of(postgres_url) == FIRST and indexes(postgres_url) == {}
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert any("autocommit_block" in line and "downgrade" in line for line in said), said
    run_migration(project, "upgrade", "head")
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}


@pytest.mark.postgres
def test_the_schema_equals_plain_flask_db_upgrades(postgres_url: str) -> None:
    from alembic import command

    project = combs(postgres_url)
    run_migration(project, "upgrade", "head")
    ours = indexes(postgres_url)
    run_migration(project, "downgrade", "base")
    with project.engine.connect() as conn, project.bound(conn) as config:  # Alembic's own way
        command.upgrade(config, "head")
        conn.commit()
    assert revision_of(postgres_url) == HEAD and indexes(postgres_url) == ours


@pytest.mark.postgres
def test_the_work_before_the_block_is_guarded(postgres_url: str, tmp_path: Path) -> None:
    """A loss in the work before a block is refused and rolled back, before the block runs."""
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    script = migrations / "versions" / "ab0c00000002_capped_and_index_frames_hive.py"
    text = script.read_text()
    script.write_text(text.replace(
        "        batch_op.add_column(sa.Column('capped', sa.Boolean(), nullable=True))\n",
        "        batch_op.add_column(sa.Column('capped', sa.Boolean(), nullable=True))\n"
        "    op.execute('DELETE FROM frames WHERE id <= 10')\n", 1))
    project = combs(postgres_url, migrations)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    from softbee.runbook.errors import DataLossError

    with pytest.raises(DataLossError, match="would lose data"):
        run_migration(project, "upgrade", "head")
    assert revision_of(postgres_url) == FIRST
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert indexes(postgres_url) == {}  # the block never ran


# -- kill -9 during the block, then a re-run -----------------------------------------------

# Runs a migration, printing its progress; the test kills it (SIGKILL) mid-block.
RUN = """
import sys
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.project import load_project

url, migrations, direction, target = sys.argv[1:5]
sys.path.insert(0, sys.argv[5])
run_migration(load_project(app="combs:app", migrations_dir=migrations, database_url=url),
              direction, target, progress=lambda line: print(line, flush=True), lock_timeout_ms=60000)
"""


def killed_while_waiting(url: str, direction: str, target: str, statement: str, hold: str) -> str:
    """Run the migration in a child; ``SIGKILL`` it while ``statement`` waits behind ``hold``; its output.

    ``hold`` runs in a transaction of the test's, open until the child and its server
    session are gone.
    """
    holder_engine = sa.create_engine(url)
    holder = holder_engine.connect()
    holder.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.exec_driver_sql(hold)
    child = subprocess.Popen(
        [sys.executable, "-c", RUN, url, str(MIGRATIONS), direction, target, str(EXAMPLE)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, waiting = time.monotonic() + HUNG_AFTER_S, False
        while not waiting and time.monotonic() < deadline and child.poll() is None:
            waiting = bool(scalar(url, (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                f"ltrim(query, E' \\n') ILIKE '{statement}%' AND wait_event_type = 'Lock'")))
            time.sleep(0.1)
        assert waiting and child.poll() is None, f"{statement} never waited"
        child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=HUNG_AFTER_S)[0]
        # Its server session, waiting in the statement, does not notice the client gone while
        # it waits for a lock: end it as the server does when it sees the socket closed, while
        # the hold still stands, so the statement is cut where a kill cuts it.
        scalar(url, (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
            "current_database() AND application_name LIKE 'softbee-runbook%'"))
        wait_for_sessions_to_end(url)
    finally:
        if child.poll() is None:
            child.kill()
        holder.rollback()
        holder.close()
        holder_engine.dispose()
    return output


def phase_states(url: str) -> dict[tuple[str, str, int], str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {(r.revision, r.direction, r.phase): r.state for r in recorded_phases(conn)}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_killed_during_the_index_build_a_rerun_finishes_with_every_row_and_a_valid_index(
    postgres_url: str,
) -> None:
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    project.engine.dispose()  # no idle session of this process left on the database
    # An open snapshot makes CREATE INDEX CONCURRENTLY wait at its end, its index still INVALID.
    output = killed_while_waiting(postgres_url, "upgrade", "head", "CREATE INDEX CONCURRENTLY",
                                  "SELECT 1")
    assert COLUMN_AND_INDEX in output
    # The column was committed before the block, the index left INVALID, the phases recorded.
    assert revision_of(postgres_url) == FIRST
    assert scalar(postgres_url, "SELECT count(*) FROM information_schema.columns "
                                "WHERE table_name = 'frames' AND column_name = 'capped'") == 1
    assert indexes(postgres_url) == {"ix_frames_hive": False}
    assert phase_states(postgres_url) == {(COLUMN_AND_INDEX, "upgrade", 1): "done",
                                          (COLUMN_AND_INDEX, "upgrade", 2): "running"}

    said: list[str] = []
    run_migration(combs(postgres_url), "upgrade", "head", progress=said.append)
    assert revision_of(postgres_url) == HEAD
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}
    assert any("done by an earlier run, skipped" in line for line in said), said
    assert any("INVALID" in line for line in said), said
    assert not has_table(postgres_url, PHASE_TABLE)


@pytest.mark.postgres
def test_killed_during_a_concurrent_index_drop_a_rerun_finishes_the_downgrade(postgres_url: str) -> None:
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    run_migration(project, "upgrade", "head")
    project.engine.dispose()
    # A reader of frames makes DROP INDEX CONCURRENTLY wait (after it marked the index INVALID).
    output = killed_while_waiting(postgres_url, "downgrade", FIRST, "DROP INDEX CONCURRENTLY",
                                  "SELECT count(*) FROM frames")
    assert f"{COLUMN_AND_INDEX} phase 2/2 (online)" in output
    # The revisions above it committed; its block recorded as running, its column still there.
    assert revision_of(postgres_url) == COLUMN_AND_INDEX
    assert phase_states(postgres_url) == {(COLUMN_AND_INDEX, "downgrade", 1): "done",
                                          (COLUMN_AND_INDEX, "downgrade", 2): "running"}

    said: list[str] = []
    run_migration(combs(postgres_url), "downgrade", FIRST, progress=said.append)
    assert revision_of(postgres_url) == FIRST
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert indexes(postgres_url) == {}
    assert "capped" not in {c["name"] for c in sa.inspect(sa.create_engine(postgres_url)).get_columns("frames")}
    assert any("begun by an earlier run" in line for line in said), said
    assert not has_table(postgres_url, PHASE_TABLE)


@pytest.mark.postgres
def test_an_index_build_in_a_block_that_loses_its_lock_is_retried_and_rebuilt(postgres_url: str) -> None:
    """Under lock_timeout, CREATE INDEX CONCURRENTLY behind a writer fails, leaving an INVALID index."""
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    # A write open on frames from the block's line on: the build waits for it and times out.
    holder = Holder(postgres_url, 1.5, at=f"{COLUMN_AND_INDEX} phase 2/2 (online)",
                    sql="UPDATE frames SET weight_g = weight_g WHERE id = 1")
    try:
        run_migration(project, "upgrade", COLUMN_AND_INDEX, lock_timeout_ms=300,
                      progress=holder.progress)
    finally:
        holder.join()
    said = "\n".join(holder.said)
    assert "lost a lock to the application" in said and "is INVALID" in said, said
    assert revision_of(postgres_url) == COLUMN_AND_INDEX
    assert indexes(postgres_url) == {"ix_frames_hive": True}


@pytest.mark.postgres
def test_a_block_that_fails_says_where_the_database_is_and_a_rerun_after_the_fix_finishes(
    postgres_url: str, tmp_path: Path,
) -> None:
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    script = migrations / "versions" / "ab0c00000002_capped_and_index_frames_hive.py"
    script.write_text(script.read_text().replace("['hive'], unique=False", "['hive'], unique=True", 1))
    project = combs(postgres_url, migrations)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)  # 37 hives over 2,000 frames: the unique build fails
    with pytest.raises(MigrationFailed) as caught:
        run_migration(project, "upgrade", "head")
    message = str(caught.value)
    assert "NOT rolled back as a whole" in message and "a re-run resumes there" in message
    assert f"the database is at revision {FIRST}" in message
    assert "phase 2 of 2 (autocommit_block 1 (upgrade)) running" in message
    assert indexes(postgres_url) == {"ix_frames_hive": False}  # what the failed build left

    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:  # the fix: every frame its own hive
        conn.execute(sa.text("UPDATE frames SET hive = 'hive-' || id"))
    engine.dispose()
    said: list[str] = []
    run_migration(project, "upgrade", "head", progress=said.append)
    assert revision_of(postgres_url) == HEAD
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}
    assert scalar(postgres_url, "SELECT count(*) FROM frames") == FRAMES
    assert any("work before autocommit_block 1: done by an earlier run, skipped" in line
               for line in said), said


# -- rehearsals and round trips: they must roll back --------------------------------------


@pytest.mark.postgres
def test_a_rehearsal_says_the_blocks_run_in_its_transaction_and_changes_nothing(postgres_url: str) -> None:
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    said: list[str] = []
    result = run_migration(project, "upgrade", "head", rehearse=True, progress=said.append)
    assert result.rehearsal and not result.committed
    line = next(line for line in said if "autocommit_block" in line)
    assert COLUMN_AND_INDEX in line and HEAD in line and "without CONCURRENTLY" in line
    assert revision_of(postgres_url) == FIRST and indexes(postgres_url) == {}


@pytest.mark.postgres
def test_a_round_trip_through_the_blocks_comes_back_and_says_how_it_ran(postgres_url: str) -> None:
    project = combs(postgres_url)
    run_migration(project, "upgrade", FIRST)
    seed_frames(postgres_url)
    said: list[str] = []
    result = run_migration(project, "upgrade", "head", round_trip=True, progress=said.append)
    assert result.checks and all(check["ok"] for check in result.checks), result.checks
    assert any("autocommit_block" in line and "round trip" in line for line in said), said
    assert revision_of(postgres_url) == HEAD
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}


@pytest.mark.postgres
def test_a_block_that_cannot_run_in_a_transaction_is_refused_in_a_rehearsal_with_the_right_command(
    postgres_url: str, tmp_path: Path,
) -> None:
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    script = migrations / "versions" / "ab0c00000004_index_harvests_frame_id.py"
    script.write_text(script.read_text().replace(
        "postgresql_concurrently=True)\n", "postgresql_concurrently=True)\n"
        "        op.execute('VACUUM ANALYZE harvests')\n", 1))
    project = combs(postgres_url, migrations)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(project, "upgrade", "head", rehearse=True)
    message = str(caught.value)
    assert HEAD in message and "cannot run inside the rehearsal's transaction" in message
    rehearsal, for_real = advised(message)
    assert rehearsal.endswith(f"-p direction upgrade -p target {HARVESTS} -p rehearse true")
    assert for_real.endswith(f"-p direction upgrade -p target {HEAD}")  # there it is a phase
    assert revision_of(postgres_url) is None
    # The real run has no such limit.
    run_migration(project, "upgrade", "head")
    assert revision_of(postgres_url) == HEAD


# -- elsewhere: what Alembic does --------------------------------------------------------


def test_on_sqlite_the_blocks_run_in_the_runbooks_transaction_and_say_so(sqlite_url: str) -> None:
    project = combs(sqlite_url)
    said: list[str] = []
    run_migration(project, "upgrade", "head", progress=said.append)
    assert revision_of(sqlite_url) == HEAD
    assert any("autocommit_block" in line and "sqlite" in line.lower() for line in said), said
    run_migration(project, "downgrade", "base")
    run_migration(project, "upgrade", "head")
    assert revision_of(sqlite_url) == HEAD


def with_vacuum_in_blocks(tmp_path: Path) -> Path:
    """The example with a VACUUM (which no transaction can hold) in two blocks, up and down."""
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    up = migrations / "versions" / "ab0c00000004_index_harvests_frame_id.py"
    up.write_text(up.read_text().replace(
        "postgresql_concurrently=True)\n", "postgresql_concurrently=True)\n"
        "        op.execute('VACUUM')\n", 1))
    down = migrations / "versions" / "ab0c00000002_capped_and_index_frames_hive.py"
    down.write_text(down.read_text().replace(
        "table_name='frames', postgresql_concurrently=True)\n",
        "table_name='frames', postgresql_concurrently=True)\n        op.execute('VACUUM')\n", 1))
    return migrations


def test_on_sqlite_a_block_the_transaction_cannot_hold_is_refused_with_the_exact_step(
    sqlite_url: str, tmp_path: Path,
) -> None:
    project = combs(sqlite_url, with_vacuum_in_blocks(tmp_path))
    with pytest.raises(MigrationFailed) as caught:
        run_migration(project, "upgrade", "head")
    message = str(caught.value)
    assert "revision ab0c00000004" in message and "VACUUM" in message
    runbook, flask = advised(message)
    assert runbook.endswith(f"-p direction upgrade -p target {HARVESTS}")
    assert flask.endswith(f"db upgrade -d {tmp_path / 'migrations'} {HEAD}")
    assert f"(from {HARVESTS} it runs only {HEAD})" in message
    assert revision_of(sqlite_url) is None  # rolled back whole

    run_as_printed(runbook)  # as advised, copied as printed: the runbook to the step before...
    assert revision_of(sqlite_url) == HARVESTS
    run_as_printed(flask)  # ...then that one step with Alembic
    assert revision_of(sqlite_url) == HEAD
    with pytest.raises(MigrationFailed) as caught:
        run_migration(project, "downgrade", "base")
    message = str(caught.value)
    assert "revision ab0c00000002" in message
    runbook, flask = advised(message)
    assert runbook.endswith(f"-p direction downgrade -p target {COLUMN_AND_INDEX}")
    assert flask.endswith(f"db downgrade -d {tmp_path / 'migrations'} {FIRST}")
    assert f"(from {COLUMN_AND_INDEX} it undoes only" in message
    assert revision_of(sqlite_url) == HEAD


def advised(message: str) -> list[str]:
    """The commands an advice quotes (between double backticks), in order."""
    import re

    return [command.strip() for command in re.findall(r"`` (.+?) ``", message)]


def run_as_printed(command: str) -> None:
    """Run an advised command in a shell, from the example's folder, as a user would paste it."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", command], cwd=EXAMPLE, env=env, capture_output=True,
                          text=True, timeout=HUNG_AFTER_S)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.mysql
def test_on_mariadb_the_blocks_run_as_alembic_runs_them(mysql_url: str) -> None:
    project = combs(mysql_url)
    said: list[str] = []
    run_migration(project, "upgrade", "head", progress=said.append)
    assert revision_of(mysql_url) == HEAD
    assert any("autocommit_block" in line for line in said), said
    run_migration(project, "downgrade", "base")
    run_migration(project, "upgrade", "head")
    assert revision_of(mysql_url) == HEAD


# -- through the runbook notebook ----------------------------------------------------------


@pytest.mark.notebook
@pytest.mark.postgres
def test_the_upgrade_downgrade_notebook_runs_the_blocks_as_phases_both_ways(
    postgres_url: str, tmp_path: Path,
) -> None:
    from tests.notebooks import run_runbook

    def said(nb: object) -> str:
        return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"  # type: ignore[attr-defined]
                       for out in cell.get("outputs", []))

    up = run_runbook("upgrade_downgrade", tmp_path, cwd=EXAMPLE, app=APP,
                     migrations_dir="migrations", database_url=postgres_url)
    assert revision_of(postgres_url) == HEAD
    assert indexes(postgres_url) == {"ix_frames_hive": True, "ix_harvests_frame_id": True}
    assert f"{COLUMN_AND_INDEX} phase 2/2 (online): autocommit_block 1 (upgrade)" in said(up)
    down = run_runbook("upgrade_downgrade", tmp_path, cwd=EXAMPLE, app=APP,
                       migrations_dir="migrations", database_url=postgres_url,
                       direction="downgrade", target="base")
    assert revision_of(postgres_url) is None and not has_table(postgres_url, "frames")
    assert f"{COLUMN_AND_INDEX} phase 2/2 (online): autocommit_block 1 (downgrade)" in said(down)
    assert not has_table(postgres_url, PHASE_TABLE)
