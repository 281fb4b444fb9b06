"""The guard rails hold on every env.py shape of the corpus (tests/examples/envpy_*), on SQLite and PostgreSQL.

Each routable shape gets the same scenario: upgrade from base, a data-loss-guarded
downgrade (refused with nothing changed, then allowed), a round trip, a rehearsal that
leaves the database byte for byte as it was, a lock held by another run, and a long
reader in the way. On PostgreSQL an event trigger records, for every DDL statement, the
session that ran it, its application name and lock_timeout and whether it held the
migration's advisory lock: the proof that no second session ran the migration.
The shapes that cannot be routed are refused before any statement runs.

Every run is bounded (:func:`bounded`): a migration that deadlocks against itself, as the
Flask-Migrate 2.x shape did before routing, fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.runbook.engine.guards import migration_lock
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.engine.retries import NO_RETRIES
from softbee.runbook.errors import DataLossError, LockHeld, MigrationFailed, NotRoutable
from softbee.runbook.project import APPLICATION_NAME, Project, load_project
from softbee.runbook.util.history_name import HISTORY_TABLE
from tests.conftest import POSTGRESQL_PSYCOPG, each_pg_driver
from tests.helpers import (
    HIVELOG_REVISIONS,
    HUNG_AFTER_S,
    ROUTABLE_SHAPES,
    assemble_envpy_project,
    dump,
    revision_of,
    snapshot,
)

LOCK_TIMEOUT_MS = 1000
T = TypeVar("T")


def bounded(work: Callable[[], T], seconds: float = HUNG_AFTER_S) -> T:
    """Run ``work`` in a thread and fail the test if it has not finished in ``seconds``."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the run did not finish in {seconds} s: it hangs")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def hivelog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Project]:
    """Load the hivelog project in the given env.py shape on the given database, from its root."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_app adds the project root

    def load(shape: str, url: str) -> Project:
        root = assemble_envpy_project(shape, tmp_path / f"hivelog_{shape}")
        monkeypatch.chdir(root)
        for name in [m for m in sys.modules if m == "hivelog" or m.startswith("hivelog.")]:
            del sys.modules[name]
        return load_project(app="hivelog:create_app", migrations_dir="migrations", database_url=url)

    return load


def fill(url: str) -> None:
    """Five colonies, each with a region and a visit."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n in range(1, 6):
            conn.execute(sa.text("INSERT INTO colonies (id, name, region) VALUES (:n, :name, 'north')"),
                         {"n": n, "name": f"colony {n}"})
            conn.execute(sa.text("INSERT INTO visits (id, colony_id, note) VALUES (:n, :n, 'calm')"),
                         {"n": n})
    engine.dispose()


# -- who ran the DDL (PostgreSQL) -----------------------------------------------------------

DDL_LOG = """
CREATE SCHEMA audit;
CREATE TABLE audit.ddl_log (
    pid int, tag text, application text, lock_timeout text, held_migration_lock bool, txid bigint,
    query text);
CREATE FUNCTION audit.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.ddl_log VALUES (
        pg_backend_pid(), tg_tag, current_setting('application_name'),
        current_setting('lock_timeout'),
        EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                AND pid = pg_backend_pid()),
        txid_current(), current_query());
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_start EXECUTE FUNCTION audit.log_ddl();
"""


def install_ddl_log(url: str) -> None:
    """Record every DDL statement run on the database, with the session that ran it."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL_LOG)
    engine.dispose()


def ddl_log(url: str) -> tuple[list[dict[str, Any]], int]:
    """The recorded DDL statements, and the transaction that last wrote alembic_version.

    The runbooks' history table is created in a transaction of its own (so that a run
    rolled back can still record itself: docs/history.md), on the same session under the
    same lock and timeouts: its statement is left out here, and only there.
    """
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("SELECT * FROM audit.ddl_log")).mappings()
                if HISTORY_TABLE not in (r["query"] or "")]
        version_xid = conn.execute(sa.text("SELECT xmin::text::bigint FROM alembic_version")).scalar_one()
    engine.dispose()
    return rows, version_xid


# -- what other sessions do while the migration runs (PostgreSQL) ----------------------------

MIGRATION_STATEMENT = re.compile(r"\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


class SessionWatcher:
    """Reads pg_stat_activity for the database while a run goes on.

    A thread looks every few milliseconds (a statement on a second session would show
    there while it runs), and the run's progress callback looks at every step (where the
    runbook's own session is sure to be open).
    """

    def __init__(self, url: str) -> None:
        self.database = make_url(url).database
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.seen: list[dict[str, Any]] = []
        self.looks = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def look(self, _message: str = "") -> None:
        """Record every session on the database but the watcher's own: pid, application, last query."""
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(sa.text(
                "SELECT pid, application_name, state, query FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": self.database}).mappings()]
        with self._lock:
            self.looks += 1
            self.seen += rows

    def _poll(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(0.005):
                rows = [dict(row) for row in conn.execute(sa.text(
                    "SELECT pid, application_name, state, query FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid() AND state = 'active'"),
                    {"db": self.database}).mappings()]
                conn.rollback()
                with self._lock:
                    self.seen += rows

    def close(self) -> None:
        """Stop looking."""
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()


# -- the scenario on every routable shape ----------------------------------------------------


@pytest.mark.parametrize("shape", ROUTABLE_SHAPES)
def test_every_guard_holds_on_the_env_py_shape(shape: str, database_url: str, hivelog) -> None:
    """Upgrade from base, guarded downgrade, round trip and rehearsal all run on the runbook's session."""
    is_pg = database_url.startswith("postgresql")
    if is_pg:
        install_ddl_log(database_url)
    project = hivelog(shape, database_url)
    middle, head = HIVELOG_REVISIONS[1], HIVELOG_REVISIONS[-1]

    watcher = SessionWatcher(database_url) if is_pg else None
    result = bounded(lambda: run_migration(project, "upgrade", "head",
                                           progress=watcher.look if watcher else None))
    assert result.committed and revision_of(database_url) == head
    assert [s.revision for s in result.steps] == list(HIVELOG_REVISIONS)
    if watcher is not None:
        watcher.close()
        assert watcher.looks >= 2 * len(HIVELOG_REVISIONS)
        ours = [s for s in watcher.seen if s["application_name"] == APPLICATION_NAME]
        others = [s for s in watcher.seen if s["application_name"] != APPLICATION_NAME]
        assert len({s["pid"] for s in ours}) == 1  # the watcher sees the runbook's own session
        assert [s for s in others if MIGRATION_STATEMENT.match(s["query"] or "")] == [], others
    if is_pg:
        statements, version_xid = ddl_log(database_url)
        assert {r["tag"] for r in statements} >= {"CREATE TABLE", "CREATE INDEX", "ALTER TABLE"}
        assert {r["application"] for r in statements} == {APPLICATION_NAME}
        assert len({r["pid"] for r in statements}) == 1, statements
        assert all(r["held_migration_lock"] for r in statements), statements
        # Every DDL under a lock timeout: the run's 5 s, or its 50 ms first try (a lock retry).
        assert {r["lock_timeout"] for r in statements} == {"50ms", "5s"}, statements
        assert {r["txid"] % 2**32 for r in statements} == {version_xid}

    fill(database_url)
    before = snapshot(database_url)
    with pytest.raises(DataLossError, match=r"colonies\.region"):
        bounded(lambda: run_migration(project, "downgrade", "-1"))
    assert snapshot(database_url) == before

    result = bounded(lambda: run_migration(project, "downgrade", "-1", allow_data_loss=True))
    assert revision_of(database_url) == middle
    assert "region" not in {c["name"] for c in sa.inspect(sa.create_engine(database_url)).get_columns("colonies")}

    result = bounded(lambda: run_migration(project, "upgrade", "head", round_trip=True))
    assert result.checks and all(check["ok"] for check in result.checks), result.checks
    assert revision_of(database_url) == head

    unchanged = dump(database_url)
    result = bounded(lambda: run_migration(project, "downgrade", "base", rehearse=True,
                                           allow_data_loss=True))
    assert result.rehearsal and result.end is None
    assert dump(database_url) == unchanged


@pytest.mark.parametrize("shape", ROUTABLE_SHAPES)
def test_a_lock_held_by_another_run_is_refused_naming_it(shape: str, database_url: str, hivelog) -> None:
    """A second run on the shape fails at once, naming the first one, and changes nothing."""
    project = hivelog(shape, database_url)
    with project.connect() as other, migration_lock(project, other) as held:
        holder = held.holder["pid"]
        with pytest.raises(LockHeld, match=f"pid {holder}"):
            bounded(lambda: run_migration(project, "upgrade", "head"))
    assert revision_of(database_url) is None


@pytest.mark.parametrize("shape", ROUTABLE_SHAPES)
def test_a_long_reader_makes_the_run_fail_within_lock_timeout_naming_it(
    shape: str, database_url: str, hivelog
) -> None:
    """The run gives up after lock_timeout_ms (plus a margin), names the reader, and changes nothing."""
    assert_a_long_reader_is_named_within_lock_timeout(hivelog(shape, database_url), database_url)


@pytest.mark.parametrize("database_url", [POSTGRESQL_PSYCOPG], indirect=True)
@pytest.mark.parametrize("shape", ["alembic_generic", "engine_begin"])
def test_a_long_reader_on_psycopg3_is_named_like_on_psycopg2(
    shape: str, database_url: str, hivelog
) -> None:
    """Issue 18's project A: an env.py building its own engine on postgresql+psycopg://. The
    lock timeout was read as a script error ("LockNotAvailable ... fix the script")."""
    assert_a_long_reader_is_named_within_lock_timeout(hivelog(shape, database_url), database_url)


def assert_a_long_reader_is_named_within_lock_timeout(project: Project, database_url: str) -> None:
    """Upgrade behind a reader of ``colonies``: fails within lock_timeout_ms + 5 s naming its pid."""
    middle = HIVELOG_REVISIONS[1]
    run_migration(project, "upgrade", middle)
    fill_colonies_only(database_url)
    with long_reader(database_url) as reader_pid:
        started = time.monotonic()
        with pytest.raises(MigrationFailed) as failure:
            # Without lock retries (tests/engine/test_retries.py): the bound here is the timeout.
            bounded(lambda: run_migration(project, "upgrade", "head", lock_timeout_ms=LOCK_TIMEOUT_MS,
                                          lock_retries=NO_RETRIES))
        elapsed = time.monotonic() - started
    message = str(failure.value)
    assert f"pid {reader_pid}" in message and "lock" in message and middle in message, message
    assert elapsed < LOCK_TIMEOUT_MS / 1000 + 5, f"took {elapsed:.1f}s"
    assert revision_of(database_url) == middle
    columns = {c["name"] for c in sa.inspect(sa.create_engine(database_url)).get_columns("colonies")}
    assert "region" not in columns


def fill_colonies_only(url: str) -> None:
    """Three colonies without regions (the history is at the revision before ``region``)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n in range(1, 4):
            conn.execute(sa.text("INSERT INTO colonies (id, name) VALUES (:n, 'c')"), {"n": n})
    engine.dispose()


READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT * FROM colonies").fetchall()
print("reading", flush=True)
sys.stdin.read()  # hold the read lock until the test closes our stdin
"""


@contextmanager
def long_reader(url: str) -> Iterator[int]:
    """A session in another process reading ``colonies`` in an open transaction; yields its pid."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        reader = subprocess.Popen([sys.executable, "-c", READER, str(parsed.database)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
            yield reader.pid
        finally:
            reader.communicate(timeout=30)
        return
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        transaction = conn.begin()  # explicit: SQLAlchemy 1.4 connections do not autobegin
        conn.execute(sa.text("SELECT * FROM colonies")).fetchall()  # holds ACCESS SHARE until rollback
        yield conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        transaction.rollback()
    engine.dispose()


# -- shapes that cannot be routed -------------------------------------------------------------


def test_an_env_py_on_another_database_is_refused_before_any_statement(
    database_url: str, hivelog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """env.py migrating a database of its own: refused in one line, neither database touched."""
    other = tmp_path / "other.sqlite3"
    monkeypatch.setenv("HIVELOG_OTHER_URL", f"sqlite:///{other}")
    project = hivelog("refuse_other_database", database_url)
    with pytest.raises(NotRoutable) as refusal:
        bounded(lambda: run_migration(project, "upgrade", "head"))
    message = str(refusal.value)
    assert "\n" not in message and "other.sqlite3" in message and "nothing was run" in message
    assert revision_of(database_url) is None and snapshot(database_url) == {}
    assert not other.exists() or snapshot(f"sqlite:///{other}") == {}


def test_an_env_py_that_never_configures_is_refused(sqlite_url: str, hivelog) -> None:
    """No context.configure in this process (migrations run elsewhere): refused, nothing run."""
    project = hivelog("refuse_no_configure", sqlite_url)
    with pytest.raises(NotRoutable, match="never called context.configure"):
        bounded(lambda: run_migration(project, "upgrade", "head"))
    assert snapshot(sqlite_url) == {}


def test_an_async_env_py_is_refused_before_any_statement(sqlite_url: str, hivelog) -> None:
    """An async engine cannot carry the runbook's guarded connection: refused in one line."""
    pytest.importorskip("aiosqlite", reason="the async shape needs the aiosqlite driver")
    project = hivelog("refuse_async", sqlite_url)
    with pytest.raises(NotRoutable, match="async engine"):
        bounded(lambda: run_migration(project, "upgrade", "head"))
    assert snapshot(sqlite_url) == {}


@each_pg_driver
@pytest.mark.parametrize("shape", ["flask_migrate_2x", "engine_begin", "alembic_generic"])
def test_sessions_env_py_opens_during_a_run_start_with_the_runs_timeouts(
    postgres_url: str, hivelog, tmp_path: Path, shape: str
) -> None:
    """Shapes that open a session of their own (engine_from_config on the app's URI or on
    sqlalchemy.url, their own create_engine): it is born with lock_timeout and statement_timeout."""
    project = hivelog(shape, postgres_url)
    seen: list[tuple[str, str, str]] = []
    original = sa.engine.Engine.connect

    def spy(engine: sa.engine.Engine, *args: Any, **kwargs: Any) -> Any:
        conn = original(engine, *args, **kwargs)  # SQLAlchemy 1.4 passes close_with_result
        if engine is not project.engine:
            seen.append(tuple(conn.exec_driver_sql(  # type: ignore[arg-type]
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
                "current_setting('application_name')").one()))
            if hasattr(conn, "rollback"):  # a SQLAlchemy 1.4 (non-future) connection has not begun
                conn.rollback()
        return conn

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sa.engine.Engine, "connect", spy)
        run_migration(project, "upgrade", "head", lock_timeout_ms=1234, statement_timeout_ms=56789)
    assert seen and set(seen) == {("1234ms", "56789ms", "softbee-runbook env.py")}
    assert os.environ.get("PGOPTIONS") is None  # the timeouts travel with the connection, not the process


# -- the four runbooks on every routable shape ------------------------------------------------


@pytest.mark.notebook
@pytest.mark.parametrize("shape", ROUTABLE_SHAPES)
def test_the_four_runbooks_run_on_the_env_py_shape(shape: str, database_url: str, tmp_path: Path) -> None:
    """inspect_diff, a round-trip upgrade, a dry-run stamp, then a revision autogenerated through env.py."""
    from tests.notebooks import run_runbook

    root = assemble_envpy_project(shape, tmp_path / f"hivelog_{shape}")
    project = {"app": "hivelog:create_app", "migrations_dir": "migrations", "database_url": database_url}

    run_runbook("inspect_diff", tmp_path, cwd=root, **project)
    assert revision_of(database_url) is None

    run_runbook("upgrade_downgrade", tmp_path, cwd=root, round_trip=True, **project)
    assert revision_of(database_url) == HIVELOG_REVISIONS[-1]

    unchanged = dump(database_url)
    run_runbook("recover_stamp", tmp_path, cwd=root, stamp_revision="head", **project)
    assert dump(database_url) == unchanged

    models = root / "hivelog" / "__init__.py"
    source = models.read_text()
    region = "    region = db.Column(db.String(40), nullable=True)\n"
    assert region in source
    models.write_text(source.replace(region, region + "    weight_kg = db.Column(db.Float, nullable=True)\n"))
    run_runbook("generate_revision", tmp_path, cwd=root, message="Add colony weight in kilograms",
                **project)
    written = [p for p in (root / "migrations" / "versions").glob("*.py")
               if not p.name.startswith(HIVELOG_REVISIONS)]
    assert len(written) == 1 and "weight_kg" in written[0].read_text()
    assert revision_of(database_url) == HIVELOG_REVISIONS[-1]
