"""What differs per database, in one place: the facts, and docs/guarantees.md's table of them."""

from __future__ import annotations

import re

import pytest

from softbee.runbook.project.dialects import (
    MySQL,
    PostgreSQL,
    SQLite,
    dialect_named,
    error_code,
)
from softbee.runbook.project.guarantees import guarantees_table
from tests.conftest import require_driver
from tests.helpers import REPO_ROOT


def test_the_docs_table_of_guarantees_is_the_one_the_dialects_make() -> None:
    """The documented per-database promises cannot drift from the code that keeps them."""
    page = (REPO_ROOT / "docs" / "guarantees.md").read_text()
    found = re.search(r"<!-- guarantees:start -->\n(.*?)\n<!-- guarantees:end -->", page, re.DOTALL)
    assert found, "docs/guarantees.md lost its guarantees table markers"
    assert found.group(1) == guarantees_table()


def test_only_databases_with_transactional_ddl_promise_an_atomic_run() -> None:
    assert PostgreSQL.transactional_ddl and SQLite.transactional_ddl
    assert not MySQL.transactional_ddl and dialect_named("mariadb") is dialect_named("mysql")
    assert not dialect_named("mssql").transactional_ddl and dialect_named("mssql").lock_kind == "none"


@pytest.mark.parametrize(("ms", "seconds"), [(1, 1), (1000, 1), (1001, 2), (5000, 5)])
def test_mysql_lock_timeouts_round_up_to_whole_seconds(ms: int, seconds: int) -> None:
    params = MySQL().connect_params("pymysql", ms, None)
    assert params == {"init_command": f"SET SESSION lock_wait_timeout = {seconds}, "
                                      f"innodb_lock_wait_timeout = {seconds}"}


def test_new_sessions_get_timeouts_only_through_drivers_that_take_them() -> None:
    assert PostgreSQL().connect_params("psycopg2", 1500, 90000) == {
        "options": "-c lock_timeout=1500 -c statement_timeout=90000"}
    assert PostgreSQL().connect_params("asyncpg", 1500, None) == {}
    assert SQLite().connect_params("pysqlite", 1500, None) == {"timeout": 1.5}
    assert MySQL().connect_params("pymysql", 0, None) == {}  # 0: no limit, the server's setting


class _DriverError(Exception):
    """A driver error as SQLAlchemy wraps it: ``.orig`` with a code (pgcode, or MySQL's number)."""

    def __init__(self, *args: object, pgcode: str | None = None) -> None:
        super().__init__(*args)
        self.pgcode = pgcode


def _wrapped(orig: Exception) -> Exception:
    error = Exception("wrapped")
    error.orig = orig  # type: ignore[attr-defined]
    return error


def test_each_dialect_names_its_own_timeouts_as_set() -> None:
    """A stopped statement is named by the setting that stopped it, with the value the run set."""
    pg = PostgreSQL()
    assert pg.timeout_reached(_wrapped(_DriverError("x", pgcode="55P03")), 300, None).setting == (
        "lock_timeout (300 ms)")
    assert pg.timeout_reached(_wrapped(_DriverError("x", pgcode="57014")), 300, 500).kind == "statement"
    assert SQLite().timeout_reached(_wrapped(_DriverError("database is locked")), 300, None).kind == "lock"
    mysql = MySQL()
    lock = mysql.timeout_reached(_wrapped(_DriverError(1205, "Lock wait timeout exceeded")), 300, None)
    assert (lock.kind, lock.setting) == ("lock", "lock_wait_timeout (1 s)")  # rounded up, as set
    mariadb = mysql.timeout_reached(_wrapped(_DriverError(1969, "max_statement_time exceeded")), 0, 2500)
    assert (mariadb.kind, mariadb.setting) == ("statement", "max_statement_time (2.5 s)")
    assert mysql.timeout_reached(_wrapped(_DriverError(3024, "...")), 0, 500).setting == (
        "max_execution_time (0.5 s)")
    for dialect in (pg, SQLite(), mysql, dialect_named("mssql")):
        assert dialect.timeout_reached(_wrapped(_DriverError(1146, "no such table")), 300, 500) is None


def test_psycopg3_errors_are_read_by_their_sqlstate() -> None:
    """psycopg 3 carries ``sqlstate``, not psycopg2's ``pgcode``: a lock timeout is still one."""
    require_driver("psycopg")
    import psycopg

    pg = PostgreSQL()
    lock = pg.timeout_reached(_wrapped(psycopg.errors.LockNotAvailable("x")), 300, None)
    assert lock is not None and lock.setting == "lock_timeout (300 ms)"
    cancel = pg.timeout_reached(_wrapped(psycopg.errors.QueryCanceled("x")), 300, 500)
    assert cancel is not None and cancel.setting == "statement_timeout (500 ms)"
    assert error_code(psycopg.errors.DeadlockDetected("x")) == "40P01"  # unwrapped: the same
    assert error_code(_wrapped(psycopg.OperationalError("connection lost"))) is None


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_mysql_errors_are_read_by_their_number_on_either_driver(driver: str) -> None:
    """PyMySQL and mysqlclient both raise ``(errno, message)``: the same timeouts named."""
    require_driver(driver)
    errors = __import__("pymysql").err if driver == "pymysql" else __import__("MySQLdb")
    mysql = MySQL()
    raised = errors.OperationalError(1205, "Lock wait")
    raised.sqlstate = "HY000"  # what PyMySQL 1.2 adds: the number still decides
    lock = mysql.timeout_reached(_wrapped(raised), 300, None)
    assert lock is not None and lock.setting == "lock_wait_timeout (1 s)"
    statement = errors.OperationalError(1969, "Query execution was interrupted")
    assert mysql.timeout_reached(_wrapped(statement), 0, 2000).kind == "statement"
    assert error_code(errors.OperationalError("no number")) is None


def test_error_codes_are_read_in_one_place() -> None:
    """No module but util/error_codes.py reads a driver's error attributes (issue 18: psycopg 3
    was missed where guards.py and phases.py read psycopg2's ``pgcode`` themselves)."""
    driver_reads = re.compile(
        r"\.pgcode\b|[\"']pgcode[\"']|\.sqlstate\b|[\"']sqlstate[\"']|\.diag\b|"
        r"\borig\.args\b|\bexc\.args\[0\]|psycopg2?\.errors\b|MySQLdb\.|pymysql\.err\b")
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted((REPO_ROOT / "softbee").rglob("*.py")) if path.name != "error_codes.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if driver_reads.search(line)
    ]
    assert offenders == [], "read error codes through util.error_codes.error_code:\n" + "\n".join(offenders)


def test_a_review_lints_what_will_run_where_lint_can_read_it() -> None:
    """MySQL's own SQL (MODIFY, concat()) on MySQL; PostgreSQL's where squawk must read it."""
    assert MySQL.review_sql == "mysql" and dialect_named("mariadb").review_sql == "mysql"
    assert PostgreSQL.review_sql == "postgresql"
    assert SQLite.review_sql == "postgresql"  # SQLite's batch revisions cannot render offline


def test_each_database_says_what_lock_retries_and_throttled_backfills_do_there() -> None:
    """Retries and throttling have a row per database, and only PostgreSQL claims them in full."""
    table = guarantees_table()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table.splitlines()}
    postgresql, sqlite, mysql = rows["lock retries (`lock_retries`)"]
    assert "SAVEPOINT" in postgresql and sqlite.startswith("none") and mysql.startswith("what it can")
    postgresql, sqlite, mysql = rows["backfills yield (replica lag, VACUUM, pause file)"]
    assert "max_replica_lag_s" in postgresql and sqlite.startswith("no:") and mysql.startswith("no:")
    assert [d.lock_retry for d in (PostgreSQL, SQLite, MySQL)] == ["savepoint", "none", "statement"]


def test_lock_retries_are_left_alone_where_the_table_says_none() -> None:
    """The row is the code's own fact: a database whose lock_retry is "none" gets no retry."""
    from types import SimpleNamespace

    from softbee.runbook.engine.retries import LockRetries, _retrying, lock_retries

    ran: list[int] = []
    with lock_retries(LockRetries()):
        for name in ("sqlite", "mssql"):
            assert dialect_named(name).lock_retry == "none"
            context = SimpleNamespace(dialect=SimpleNamespace(name=name))
            cursor = SimpleNamespace(connection=SimpleNamespace(autocommit=False))
            assert _retrying(cursor, "ALTER TABLE hives ADD COLUMN x INTEGER", context,
                             lambda: ran.append(1)) is False
    assert ran == []


@pytest.mark.postgres
def test_rolling_back_a_lost_connection_opens_no_new_session(postgres_url: str) -> None:
    """Before: rollback_fully asked an invalidated connection for its driver connection, which
    reconnected; while the server restarted, that connect failed and its error replaced the
    run's (the fault matrix, restart during the DDL: "rolled back, database still at ...")."""
    import sqlalchemy as sa

    from softbee.runbook.project.dialects import rollback_fully

    engine = sa.create_engine(postgres_url)
    killer = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    connects: list[int] = []
    sa.event.listen(engine, "connect", lambda *_args: connects.append(1))
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(sa.exc.OperationalError):
                conn.execute(sa.text("SELECT 1"))
            assert conn.invalidated
            rollback_fully(conn)
            assert len(connects) == 1, "rollback_fully reconnected a lost connection"
    finally:
        engine.dispose()
        killer.dispose()
