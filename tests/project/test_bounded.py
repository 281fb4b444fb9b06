"""Every session a run opens is bounded, by construction (issue 18, "What must hold" 2).

A helper session holds a Soft-Bee table in the strongest lock for far longer than any run's
timeout (released by the fixture after a minute at most). No step of any runbook may then
wait longer than its ``lock_timeout_ms`` plus a generous margin: each runbook fails in one
line naming the holder (``inspect_diff`` degrades instead: the checks the lock stopped are
findings naming it), and the database is left as it was. The bound is asserted on each
cell's own duration (papermill records it), so kernel start-up on a loaded machine does not
count. Which session waited
does not matter: counts, state reads, reflection, diagnosis, scratch databases all come
from one factory (``project.open_session``), and a test reads the library's source to prove
that nothing else opens one.
"""

from __future__ import annotations

import ast
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.project import DEFAULT_LOCK_TIMEOUT_MS, load_project
from tests.conftest import ALL_DATABASES, DRIVER_DATABASES
from tests.helpers import (
    HEAD,
    MIGRATIONS,
    REPO_ROOT,
    VARROA,
    assert_one_clear_line,
    is_mysql,
    project_at,
    run_cli,
    snapshot,
)

# Every database, on each of its drivers (psycopg2 and psycopg 3, PyMySQL and mysqlclient).
EVERY_DRIVER = pytest.mark.parametrize(
    "any_database_url", [*ALL_DATABASES, *DRIVER_DATABASES], indirect=True)
LOCKED_TABLE = "hives"
HOLDER_NAME = "table-holder"
HELD_FOR_S = 60.0  # far longer than any timeout below; a run that waits for it fails the test
# The promise is the lock timeout plus a few seconds; the failing cell also imports, reads
# the scripts and reflects the tables before the locked one, which took up to 6.5 s on the
# 2-core machine at a load of 13. A run that waits for the holder takes HELD_FOR_S.
MARGIN_S = 15.0


@contextmanager
def table_held(url: str) -> Iterator[int]:
    """A session holding ``LOCKED_TABLE`` exclusively (PostgreSQL ACCESS EXCLUSIVE, MariaDB
    LOCK TABLES ... WRITE) until the block ends or ``HELD_FOR_S`` pass; yields its pid."""
    mysql = is_mysql(url)
    engine = sa.create_engine(
        url, connect_args={} if mysql else {"application_name": HOLDER_NAME})
    conn = engine.connect()
    released = threading.Lock()
    done: list[bool] = []

    def release() -> None:
        with released:
            if done:
                return
            done.append(True)
            if mysql:
                conn.exec_driver_sql("UNLOCK TABLES")
            conn.rollback()
            conn.close()

    try:
        if mysql:
            conn.exec_driver_sql(f"LOCK TABLES {LOCKED_TABLE} WRITE")
            pid = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        else:
            # A server-side bound too, should this process die while holding it.
            conn.exec_driver_sql("SET idle_in_transaction_session_timeout = '120s'")
            conn.exec_driver_sql(f"LOCK TABLE {LOCKED_TABLE} IN ACCESS EXCLUSIVE MODE")
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        timer = threading.Timer(HELD_FOR_S, release)
        timer.start()
        try:
            yield int(pid)
        finally:
            timer.cancel()
    finally:
        release()
        engine.dispose()


def archived_cells(archive: Path) -> tuple[dict, list[tuple[str, float]]]:
    """The archived run's record, and each code cell's step and seconds (papermill's timing)."""
    (record,) = [json.loads(line) for line in (archive / "index.jsonl").read_text().splitlines()]
    notebook = json.loads((archive / record["notebook"]).read_text())
    cells, step = [], ""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            step = "".join(cell["source"]).splitlines()[0] if cell["source"] else step
        elif cell["metadata"].get("papermill", {}).get("duration") is not None:
            cells.append((step, float(cell["metadata"]["papermill"]["duration"])))
    return record, cells


def failing_cell(archive: Path) -> tuple[str, float]:
    """The archived run's failing step and the seconds its cell ran (papermill's own timing)."""
    record, _cells = archived_cells(archive)
    assert record["status"] == "failed", record
    notebook = json.loads((archive / record["notebook"]).read_text())
    cell = notebook["cells"][record["error"]["cell"]]
    return record["error"]["step"], float(cell["metadata"]["papermill"]["duration"])


# runbook, revision the database is at, parameters, lock_timeout_ms the run has
CASES = {
    "inspect_diff": ("inspect_diff", VARROA, {}, DEFAULT_LOCK_TIMEOUT_MS),
    "upgrade": ("upgrade_downgrade", VARROA, {"lock_timeout_ms": "1000"}, 1000),
    "downgrade": ("upgrade_downgrade", VARROA,
                  {"direction": "downgrade", "lock_timeout_ms": "1000"}, 1000),
    "recover_stamp_dry_run": ("recover_stamp", VARROA,
                              {"stamp_revision": VARROA, "lock_timeout_ms": "1000"}, 1000),
    "generate_revision": ("generate_revision", HEAD,
                          {"message": "Add a bounded column to hives"}, DEFAULT_LOCK_TIMEOUT_MS),
}


def _run_behind_the_lock(url: str, case: str, tmp_path: Path) -> None:
    runbook, revision, params, lock_timeout_ms = CASES[case]
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    project_at(url, revision, rows=20)
    before = snapshot(url)
    versions_before = sorted(p.name for p in (migrations / "versions").glob("*.py"))
    archive = tmp_path / "archive"
    with table_held(url) as pid:
        pairs = [arg for name, value in {"migrations_dir": str(migrations), **params}.items()
                 for arg in ("-p", name, value)]
        result = run_cli(runbook, *pairs, env={"DATABASE_URL": url}, archive=archive)
    record, cells = archived_cells(archive)
    longest = max(cells, key=lambda cell: cell[1])
    # No step waited longer than the lock timeout (and a margin): none waited for the holder.
    assert longest[1] <= lock_timeout_ms / 1000 + MARGIN_S, (longest, result.stderr)
    if runbook == "inspect_diff":
        # A review degrades, never dies (issue 18, item 5): each check the lock stopped is a
        # finding naming the holder, and the review completes.
        assert result.returncode == 0, result.stdout + result.stderr
        said = result.stdout
        assert "could not run" in said and f"pid {pid}" in said, said
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert_one_clear_line(result, f"pid {pid}", LOCKED_TABLE)
        (said,) = [line for line in result.stderr.splitlines() if line.startswith("softbee-")]
    if is_mysql(url):  # the holder only: not the run's own session, which waited
        assert said.count("pid ") == said.count(f"pid {pid}"), said
    else:
        assert HOLDER_NAME in said and f"AccessExclusiveLock on {LOCKED_TABLE}" in said, said
    assert snapshot(url) == before
    assert sorted(p.name for p in (migrations / "versions").glob("*.py")) == versions_before


@pytest.mark.postgres
@pytest.mark.parametrize("case", list(CASES))
def test_every_runbook_fails_within_lock_timeout_naming_the_table_holder(
    postgres_url: str, case: str, tmp_path: Path
) -> None:
    _run_behind_the_lock(postgres_url, case, tmp_path)


@pytest.mark.mysql
@pytest.mark.parametrize("case", ["inspect_diff", "upgrade"])
def test_on_mariadb_a_table_lock_stops_the_runbooks_reads_within_lock_wait_timeout(
    mysql_url: str, case: str, tmp_path: Path
) -> None:
    _run_behind_the_lock(mysql_url, case, tmp_path)


@pytest.mark.postgres
def test_a_second_run_fails_at_once_on_the_migration_lock_not_behind_the_first_runs_alter(
    postgres_url: str, tmp_path: Path
) -> None:
    """The first run holds the migration lock and an ALTER's ACCESS EXCLUSIVE lock: the second
    run's row counts must not queue behind the ALTER, it fails at once naming the first run."""
    from softbee.runbook.engine.guards import LOCK_CLASS, LOCK_OBJECT

    project_at(postgres_url, VARROA, rows=20)
    before = snapshot(postgres_url)
    archive = tmp_path / "archive"
    with table_held(postgres_url) as pid:
        holder = sa.create_engine(postgres_url, connect_args={"application_name": "first-run"})
        with holder.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:c, :o)"),
                         {"c": LOCK_CLASS, "o": LOCK_OBJECT})
            first_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            conn.commit()
            result = run_cli("upgrade_downgrade", "-p", "lock_timeout_ms", "30000",
                             env={"DATABASE_URL": postgres_url}, archive=archive)
        holder.dispose()
    assert pid != first_pid
    assert_one_clear_line(result, "LockHeld", f"pid {first_pid}", "first-run")
    step, seconds = failing_cell(archive)
    assert "Row counts before" in step, step
    assert seconds < 30, "it waited for the table lock instead of failing on the migration lock"
    assert snapshot(postgres_url) == before


@EVERY_DRIVER
def test_every_session_the_project_opens_carries_the_runs_lock_timeout(
    any_database_url: str,
) -> None:
    """Project.connect() gives each session the run's lock timeout, also after a run reset it."""
    url = any_database_url
    project_at(url)
    project = load_project(database_url=url, migrations_dir=str(MIGRATIONS), lock_timeout_ms=3000)

    def lock_timeout() -> str:
        with project.connect() as conn:
            if project.dialect == "postgresql":
                return conn.exec_driver_sql("SHOW lock_timeout").scalar_one()
            if project.dialect == "sqlite":
                return str(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
            return str(conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar_one())

    expected = {"postgresql": "3s", "sqlite": "3000", "mysql": "3"}[project.dialect]
    assert lock_timeout() == expected
    from softbee.runbook.engine.migrate import run_migration

    run_migration(project, "upgrade", "head", lock_timeout_ms=200)  # sets, then resets, its own
    assert lock_timeout() == expected


# -- no other way to open a session -----------------------------------------------------------

LIBRARY = REPO_ROOT / "softbee" / "runbook"
# (module, function) allowed to create an engine or open a session: the factory itself, and
# fleet status's and the fleet drift check's one driver connection per target (each born
# with the lock timeout, see there; tests/review/test_drift_many.py shows the drift one's bound).
FACTORY = {("project/engines.py", "make_engine"), ("project/sessions.py", "open_session"),
           ("fleet/status.py", "read_revisions"), ("review/drift_many.py", "quick_read")}
ENGINE_MAKERS = {"create_engine", "engine_from_config", "create_async_engine"}
DRIVERS = {"psycopg2", "psycopg", "pymysql", "MySQLdb", "sqlite3", "asyncpg"}


def _direct_sessions(path: Path, module: str) -> list[str]:
    """Calls in ``path`` (``module``, its path in the library) that make an engine or open a
    session without the factory."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Call) and (module, function) not in FACTORY:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            direct = (
                name in ENGINE_MAKERS
                or (name in ("connect", "raw_connection", "begin")
                    and receiver.lower().endswith("engine"))
                or (name == "connect" and (receiver in DRIVERS or isinstance(func.value, ast.Call)))
            )
            if direct:
                where = f"{module}:{node.lineno}"
                found.append(f"{where} {ast.unparse(node)[:80]}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_nothing_in_the_library_opens_a_session_but_the_factory() -> None:
    """A new path cannot sneak in: every session comes from ``project.open_session``."""
    found = [hit for path in sorted(LIBRARY.rglob("*.py"))
             for hit in _direct_sessions(path, path.relative_to(LIBRARY).as_posix())]
    assert found == [], "open sessions through Project.connect() (project.open_session):\n" + \
        "\n".join(found)


def test_the_factory_check_sees_a_direct_engine_connect(tmp_path: Path) -> None:
    """The source check above is not vacuous: it finds the shapes it forbids."""
    sample = tmp_path / "sample.py"  # as if it were the factory's module: only its two functions may
    sample.write_text("def f(project, url):\n    with project.engine.connect() as c:\n"
                      "        pass\n    sa.create_engine(url).connect()\n"
                      "    import psycopg2\n    psycopg2.connect(url)\n", encoding="utf-8")
    assert len(_direct_sessions(sample, "project/__init__.py")) == 4


@contextmanager
def sqlite_file_held(url: str) -> Iterator[int]:
    """Another process holding the SQLite file in an exclusive transaction; yields its pid."""
    import subprocess
    import sys

    from tests.helpers import HUNG_AFTER_S

    path = sa.engine.make_url(url).database
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nprint('held', flush=True)\n"
         f"time.sleep({HELD_FOR_S})\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=HUNG_AFTER_S)


@EVERY_DRIVER
def test_a_read_through_the_factory_stops_within_lock_timeout_naming_the_holder(
    any_database_url: str,
) -> None:
    """In the library itself, on every database: a count behind a held table or file stops
    within the lock timeout with SessionTimeout naming the holder (it waited for it before)."""
    import time

    from softbee.runbook.errors import SessionTimeout
    from softbee.runbook.review.counts import row_counts

    url = any_database_url
    project_at(url, VARROA, rows=5)
    project = load_project(database_url=url, migrations_dir=str(MIGRATIONS), lock_timeout_ms=1000)
    holding = sqlite_file_held if project.dialect == "sqlite" else table_held
    with holding(url) as pid:
        started = time.monotonic()
        with pytest.raises(SessionTimeout) as caught, project.connect() as conn:
            row_counts(conn)
        waited = time.monotonic() - started
    message = str(caught.value)
    assert waited < 1 + MARGIN_S and f"pid {pid}" in message and "\n" not in message, message
    assert "reached" in message and "raise lock_timeout_ms" in message
