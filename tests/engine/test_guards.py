"""Each guard rail stopping the harm it exists for, checked on the database.

A guard whose promise holds on every database runs on SQLite, PostgreSQL and MariaDB
(``any_database_url``). A promise made with one transaction (a loss or a round trip rolled
back after the fact, a timeout that rolls everything back) runs on SQLite and PostgreSQL
(``database_url``), and MariaDB has a counterpart asserting what is promised there
(docs/guarantees.md, "What each database guarantees"): the loss refused before anything
runs, a revision whose first statement timed out named in one line with nothing changed, the
round trip's end state told.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.guards import Snapshot, find_losses
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import (
    ConfirmationRequired,
    DataLossError,
    LockHeld,
    MigrationFailed,
    ParameterError,
    PartiallyApplied,
    RoundTripMismatch,
)
from softbee.runbook.project import load_project
from tests.conftest import ALL_DATABASES, DRIVER_DATABASES, each_mysql_driver, each_pg_driver
from tests.helpers import (
    FULL_NAME,
    HEAD,
    HIVE_HEALTH,
    HUNG_AFTER_S,
    INSPECTIONS,
    MIGRATIONS,
    dump,
    is_mysql,
    migrations_with_extra_revision,
    production_project,
    project_at,
    revision_of,
    scratch_databases,
    snapshot,
)


def _upgrade_in_thread(url: str, entered: threading.Event, release: threading.Event) -> dict:
    """Upgrade to head, pausing at the first revision until ``release`` is set."""
    outcome: dict = {}

    def progress(message: str) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(timeout=HUNG_AFTER_S)

    def work() -> None:
        try:
            outcome["result"] = run_migration(load_project(database_url=url), "upgrade", "head",
                                              progress=progress)
        except Exception as exc:  # reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    outcome["thread"] = thread
    return outcome


@pytest.mark.parametrize("any_database_url", (*ALL_DATABASES, *DRIVER_DATABASES), indirect=True)
def test_second_concurrent_upgrade_fails_naming_the_lock_holder(any_database_url: str) -> None:
    database_url = any_database_url
    project_at(database_url, INSPECTIONS, rows=100)
    entered, release = threading.Event(), threading.Event()
    first = _upgrade_in_thread(database_url, entered, release)
    assert entered.wait(timeout=HUNG_AFTER_S), "first upgrade never started"
    try:
        with pytest.raises(LockHeld) as caught:
            run_migration(load_project(database_url=database_url), "upgrade", "head")
        recorded_while_held = revision_of(database_url)
    finally:
        release.set()
        first["thread"].join(timeout=HUNG_AFTER_S)
    assert "another migration holds the lock" in str(caught.value)
    assert caught.value.holder.get("pid"), caught.value.holder
    assert "softbee-runbook" in str(caught.value)
    if is_mysql(database_url):  # GET_LOCK's holder: its connection id, user and client
        user = sa.engine.make_url(database_url).username
        assert f"pid {caught.value.holder['pid']}, user {user}, client " in str(caught.value)
    assert recorded_while_held == INSPECTIONS, "the refused run changed nothing"
    assert "error" not in first, first.get("error")
    assert [s.revision for s in first["result"].steps][-1] == HEAD
    assert revision_of(database_url) == HEAD


def test_lock_wait_lets_the_second_run_go_after_the_first(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.engine import guards

    project_at(database_url, INSPECTIONS)
    entered, release = threading.Event(), threading.Event()
    first = _upgrade_in_thread(database_url, entered, release)
    assert entered.wait(timeout=HUNG_AFTER_S), "first upgrade never started"
    waits = []

    def while_the_second_waits(seconds: float) -> None:
        # The second run found the lock held and is waiting: only now let the first one finish.
        waits.append(seconds)
        release.set()
        first["thread"].join(timeout=HUNG_AFTER_S)

    monkeypatch.setattr(guards, "time", SimpleNamespace(monotonic=time.monotonic,
                                                       sleep=while_the_second_waits))
    second = run_migration(load_project(database_url=database_url), "upgrade", "head", lock_wait_s=20)
    assert not first["thread"].is_alive()
    assert "error" not in first, first.get("error")
    assert waits == [guards.POLL_SECONDS], "the second run waited once, then took the lock"
    assert second.steps == [], "the second run found the database already at head"
    assert revision_of(database_url) == HEAD


@pytest.mark.mysql
@each_mysql_driver
def test_lock_wait_on_mariadb_waits_in_get_lock_until_the_first_run_ends(mysql_url: str) -> None:
    """GET_LOCK waits on the server (no polling): the second run goes once the first lets go."""
    project_at(mysql_url, INSPECTIONS)
    entered, release = threading.Event(), threading.Event()
    first = _upgrade_in_thread(mysql_url, entered, release)
    assert entered.wait(timeout=HUNG_AFTER_S), "first upgrade never started"
    releaser = threading.Timer(1.0, release.set)  # the first run goes on while the second waits
    releaser.start()
    try:
        second = run_migration(load_project(database_url=mysql_url), "upgrade", "head",
                               lock_wait_s=HUNG_AFTER_S)
    finally:
        release.set()
        releaser.cancel()
        first["thread"].join(timeout=HUNG_AFTER_S)
    assert "error" not in first, first.get("error")
    assert [s.revision for s in first["result"].steps][-1] == HEAD
    assert second.steps == [], "the second run found the database already at head"
    assert revision_of(mysql_url) == HEAD


@pytest.mark.postgres
@each_pg_driver
def test_lock_timeout_fails_fast_naming_the_blocking_session(postgres_url: str) -> None:
    project_at(postgres_url, HIVE_HEALTH, rows=50)
    before = snapshot(postgres_url)
    reader = sa.create_engine(postgres_url, connect_args={"application_name": "long-reader"})
    with reader.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM users"))  # holds ACCESS SHARE until rollback
        with pytest.raises(MigrationFailed) as caught:
            run_migration(load_project(database_url=postgres_url), "upgrade", FULL_NAME,
                          lock_timeout_ms=300)
        blocker_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        conn.rollback()
    reader.dispose()
    message = str(caught.value)
    assert "lock_timeout (300 ms)" in message
    assert f"pid {blocker_pid}" in message and "long-reader" in message
    assert "users" in message
    assert snapshot(postgres_url) == before


@pytest.mark.postgres
@each_pg_driver
def test_a_session_holding_the_version_table_stops_even_the_first_read_within_lock_timeout(
    postgres_url: str,
) -> None:
    """Before the timeouts covered it, the plan's first read of alembic_version waited forever."""
    project_at(postgres_url, HIVE_HEALTH, rows=5)
    before = snapshot(postgres_url)
    holder = sa.create_engine(postgres_url, connect_args={"application_name": "version-holder"})
    with holder.connect() as conn:
        conn.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(MigrationFailed) as caught:
            run_migration(load_project(database_url=postgres_url), "upgrade", FULL_NAME,
                          lock_timeout_ms=300)
        conn.rollback()
    holder.dispose()
    message = str(caught.value)
    assert "lock_timeout (300 ms)" in message and "version-holder" in message, message
    assert snapshot(postgres_url) == before


@pytest.mark.mysql
@each_mysql_driver
def test_lock_wait_timeout_on_mariadb_names_the_open_transaction_and_changes_nothing(
    mysql_url: str,
) -> None:
    """The ALTER waits for the reader's metadata lock: one line, the reader named, nothing ran."""
    project_at(mysql_url, HIVE_HEALTH, rows=50)
    before = snapshot(mysql_url)
    reader = sa.create_engine(mysql_url)
    with reader.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM users"))  # holds a metadata lock until rollback
        reader_pid = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
        with pytest.raises(MigrationFailed) as caught:
            run_migration(load_project(database_url=mysql_url), "upgrade", FULL_NAME,
                          lock_timeout_ms=300)
        conn.rollback()
    reader.dispose()
    message = str(caught.value)
    assert not isinstance(caught.value, PartiallyApplied), message
    assert "\n" not in message
    assert "lock_wait_timeout (1 s) reached" in message and "ALTER TABLE users" in message
    assert f"pid {reader_pid} (user " in message and "transaction open since" in message
    assert f"nothing of it ran, database still at {HIVE_HEALTH}" in message
    assert snapshot(mysql_url) == before


@pytest.mark.mysql
@each_mysql_driver
def test_a_lock_wait_timeout_in_the_runbooks_own_count_on_mariadb_is_one_line(
    mysql_url: str,
) -> None:
    """Counting rows before the first revision waits on LOCK TABLES: named, database unchanged."""
    project_at(mysql_url, INSPECTIONS, rows=10)
    before = snapshot(mysql_url)
    locker = sa.create_engine(mysql_url)
    with locker.connect() as conn:
        conn.exec_driver_sql("LOCK TABLES inspections WRITE")
        locker_pid = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
        try:
            with pytest.raises(MigrationFailed) as caught:
                run_migration(load_project(database_url=mysql_url), "upgrade", "head",
                              lock_timeout_ms=1000)
        finally:
            conn.exec_driver_sql("UNLOCK TABLES")
    locker.dispose()
    message = str(caught.value)
    assert "\n" not in message
    assert "lock_wait_timeout (1 s) reached" in message and "inspections" in message
    assert f"pid {locker_pid} (user " in message
    assert f"database still at {INSPECTIONS}" in message and "rolled back" not in message
    assert snapshot(mysql_url) == before


@pytest.mark.postgres
@each_pg_driver
def test_statement_timeout_stops_a_slow_migration(postgres_url: str, tmp_path) -> None:
    # A revision that is slow by construction: the timeout must stop it, whatever the machine's
    # speed. (1 ms on a real revision was a race: on a busy machine the runbook's own re-plan
    # could exceed it, on an idle one every statement could finish within it.)
    migrations = migrations_with_extra_revision(
        tmp_path, "51000e000001", HEAD, upgrade='op.execute("SELECT pg_sleep(600)")')
    project = project_at(postgres_url, HEAD, rows=50, migrations_dir=migrations)
    before = snapshot(postgres_url)
    with pytest.raises(MigrationFailed, match=r"statement_timeout \(500 ms\)"):
        run_migration(project, "upgrade", "head", statement_timeout_ms=500)
    assert snapshot(postgres_url) == before
    # The pooled session got the run's statement timeout reset, and the project's own back
    # (every session the project opens is bounded: its default lock timeout, 5 s).
    with project.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"


@pytest.mark.mysql
@each_mysql_driver
def test_max_statement_time_on_mariadb_stops_a_slow_revision_in_one_line(
    mysql_url: str, tmp_path
) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "51000e000002", HEAD, upgrade='op.execute("SELECT SLEEP(600)")')
    project = project_at(mysql_url, HEAD, rows=50, migrations_dir=migrations)
    before = snapshot(mysql_url)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(project, "upgrade", "head", statement_timeout_ms=2000)
    message = str(caught.value)
    assert not isinstance(caught.value, PartiallyApplied), message
    assert "\n" not in message
    assert "max_statement_time (2 s) reached by 'SELECT SLEEP(600)'" in message
    assert f"nothing of it ran, database still at {HEAD}" in message
    assert snapshot(mysql_url) == before
    # The pooled session got the run's statement timeout reset, and the project's own back.
    with project.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@SESSION.max_statement_time").scalar() == 0
        assert conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar() == 5


@pytest.mark.postgres
@each_pg_driver
def test_a_timeout_in_the_runbooks_own_statements_is_one_line_too(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-plan after the lock is taken runs under lock_timeout: blocked, it is explained."""
    from softbee.runbook.engine import guards

    project_at(postgres_url, INSPECTIONS, rows=10)
    holder = sa.create_engine(postgres_url, connect_args={"application_name": "table-locker"})
    with holder.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:c, :o)"),
                     {"c": guards.LOCK_CLASS, "o": guards.LOCK_OBJECT})
        conn.commit()
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        waits = []

        def while_the_run_waits(_seconds: float) -> None:
            # The run has planned and now polls for the lock: lock the version table, let go.
            waits.append(_seconds)
            if len(waits) == 1:
                conn.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
                conn.execute(sa.text("SELECT pg_advisory_unlock(:c, :o)"),
                             {"c": guards.LOCK_CLASS, "o": guards.LOCK_OBJECT})

        monkeypatch.setattr(guards, "time", SimpleNamespace(monotonic=time.monotonic,
                                                           sleep=while_the_run_waits))
        with pytest.raises(MigrationFailed) as caught:
            run_migration(load_project(database_url=postgres_url), "upgrade", "head",
                          lock_wait_s=600, lock_timeout_ms=300)
        conn.rollback()
    holder.dispose()
    message = str(caught.value)
    assert waits == [guards.POLL_SECONDS], "the run took the lock on its second try"
    assert "lock_timeout (300 ms)" in message and "alembic_version" in message
    assert f"pid {pid}" in message and "table-locker" in message
    assert f"database still at {INSPECTIONS}" in message
    assert revision_of(postgres_url) == INSPECTIONS


@pytest.mark.parametrize("any_database_url", (*ALL_DATABASES, *DRIVER_DATABASES), indirect=True)
def test_downgrade_dropping_a_column_with_values_is_refused_and_changes_nothing(
    any_database_url: str,
) -> None:
    """Rolled back after the fact on SQLite and PostgreSQL; predicted and refused first on MariaDB."""
    database_url = any_database_url
    project = project_at(database_url, FULL_NAME, rows=100)
    before = snapshot(database_url)
    with pytest.raises(DataLossError) as caught:
        run_migration(project, "downgrade", "-1")
    assert [loss["object"] for loss in caught.value.losses] == ["users.full_name"]
    assert "allow_data_loss=True" in str(caught.value)
    if is_mysql(database_url):
        assert "nothing was run" in str(caught.value) and "rolled back" not in str(caught.value)
    assert snapshot(database_url) == before


def test_downgrade_with_allow_data_loss_applies_and_records_the_loss(any_database_url: str) -> None:
    database_url = any_database_url
    project = project_at(database_url, FULL_NAME, rows=100)
    users = snapshot(database_url)["users"]["rows"]
    result = run_migration(project, "downgrade", "-1", allow_data_loss=True)
    assert revision_of(database_url) == HIVE_HEALTH
    assert result.committed
    assert result.summary()["data_loss"][0]["object"] == "users.full_name"
    assert result.summary()["data_loss"][0]["lost"] == len(users)
    assert "full_name" not in [c[0] for c in snapshot(database_url)["users"]["columns"]]


def test_downgrade_to_base_with_rows_needs_allow_data_loss(any_database_url: str) -> None:
    database_url = any_database_url
    project = project_at(database_url, HEAD, rows=60)
    before = snapshot(database_url)
    with pytest.raises(DataLossError) as caught:
        run_migration(project, "downgrade", "base")
    assert {loss["kind"] for loss in caught.value.losses} >= {"table dropped"}
    assert snapshot(database_url) == before


@pytest.mark.parametrize("any_database_url", (*ALL_DATABASES, *DRIVER_DATABASES), indirect=True)
def test_rehearsal_leaves_schema_and_data_byte_for_byte_equal(any_database_url: str) -> None:
    """Rolled back on SQLite and PostgreSQL; on MariaDB run on a scratch copy, then dropped."""
    database_url = any_database_url
    project = project_at(database_url, INSPECTIONS, rows=200)
    before = dump(database_url)
    result = run_migration(project, "upgrade", "head", rehearse=True, round_trip=True)
    assert dump(database_url) == before
    assert result.rehearsal and not result.committed
    assert result.end == HEAD, "the rehearsal reports where the real run would end"
    assert [s.revision for s in result.steps][:4] == [HIVE_HEALTH, FULL_NAME, "7a6c1e3b8d07", HEAD]
    assert all(check["ok"] for check in result.checks)
    assert not result.schema_frame().empty
    if project.dialect == "postgresql":
        assert {"relation": "users", "mode": "AccessExclusiveLock"} in result.locks
    if is_mysql(database_url):
        assert scratch_databases(database_url) == []
        outcome = result.summary()["outcome"]
        assert "scratch copy" in outcome and "rolled back" not in outcome, outcome


def test_rehearsed_downgrade_reports_the_loss_without_raising_or_changing(
    any_database_url: str,
) -> None:
    database_url = any_database_url
    project = project_at(database_url, FULL_NAME, rows=40)
    before = dump(database_url)
    result = run_migration(project, "downgrade", "-1", rehearse=True)
    assert [loss["object"] for loss in result.losses] == ["users.full_name"]
    assert result.rehearsal and not result.committed
    assert dump(database_url) == before
    if is_mysql(database_url):
        assert scratch_databases(database_url) == []


def test_production_without_confirm_is_refused(
    any_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = any_database_url
    project_at(database_url, INSPECTIONS)
    project = production_project(database_url, monkeypatch)
    assert project.environment == "production"
    with pytest.raises(ConfirmationRequired, match="pass confirm="):
        run_migration(project, "upgrade", "head")
    with pytest.raises(ConfirmationRequired):
        run_migration(project, "upgrade", "head", confirm="some_other_database")
    assert revision_of(database_url) == INSPECTIONS
    run_migration(project, "upgrade", "head", confirm=project.database_name)
    assert revision_of(database_url) == HEAD


def test_production_parameter_overrides_a_development_environment(sqlite_url: str) -> None:
    project = project_at(sqlite_url, INSPECTIONS)
    assert project.environment == "development"
    with pytest.raises(ConfirmationRequired):
        run_migration(project, "upgrade", "head", production=True)
    assert revision_of(sqlite_url) == INSPECTIONS


def test_find_losses_names_lost_rows_dropped_tables_and_columns() -> None:
    before = Snapshot(rows={"a": 3, "b": 2, "c": 0}, values={"a": {"x": 3, "y": 0}, "b": {"z": 2}})
    after = Snapshot(rows={"a": 1}, values={"a": {}})
    kinds = {(loss["kind"], loss["object"], loss["lost"]) for loss in find_losses(before, after)}
    assert kinds == {("rows lost", "a", 2), ("column dropped", "a.x", 3), ("table dropped", "b", 2)}


@pytest.mark.postgres
def test_scheduled_run_fails_naming_the_holder_while_another_migration_holds_the_lock(
    postgres_url: str, tmp_path
) -> None:
    """Through ``softbee-runbook run``: exit 1, the holder named, nothing changed, run archived."""
    from softbee.runbook.engine.guards import LOCK_CLASS, LOCK_OBJECT
    from tests.helpers import assert_one_clear_line, run_cli

    project_at(postgres_url, INSPECTIONS, rows=30)
    before = snapshot(postgres_url)
    holder = sa.create_engine(postgres_url, connect_args={"application_name": "manual-migration"})
    with holder.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:c, :o)"), {"c": LOCK_CLASS, "o": LOCK_OBJECT})
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        result = run_cli("upgrade_downgrade", env={"DATABASE_URL": postgres_url},
                         archive=tmp_path / "archive")
    holder.dispose()
    assert result.returncode == 1
    assert_one_clear_line(result, "LockHeld", f"pid {pid}", "manual-migration")
    assert snapshot(postgres_url) == before
    (record,) = [json.loads(line) for line in (tmp_path / "archive" / "index.jsonl").read_text().splitlines()]
    assert record["status"] == "failed" and record["error"]["type"] == "LockHeld"


# -- what the review found: each guard holds at its edges -------------------------------------


@pytest.mark.postgres
@each_pg_driver
def test_estimated_counts_still_catch_rows_deleted_by_the_migration(postgres_url: str, tmp_path) -> None:
    """Statistics do not move inside a transaction: the guard adds the transaction's own deletes."""
    migrations = migrations_with_extra_revision(
        tmp_path, "de1e7e000001", HEAD, upgrade='op.execute("DELETE FROM inspections WHERE id % 2 = 0")')
    project = project_at(postgres_url, HEAD, rows=200, migrations_dir=migrations)
    with project.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    before = snapshot(postgres_url)
    with pytest.raises(DataLossError) as caught:
        run_migration(project, "upgrade", "head", count_mode="estimate")
    assert [(loss["object"], loss["lost"]) for loss in caught.value.losses] == [("inspections", 100)]
    assert snapshot(postgres_url) == before


@pytest.mark.postgres
@each_pg_driver
def test_estimated_counts_catch_a_truncated_table(postgres_url: str, tmp_path) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "de1e7e000002", HEAD, upgrade='op.execute("TRUNCATE treatments")')
    project = project_at(postgres_url, HEAD, rows=200, migrations_dir=migrations)
    before = snapshot(postgres_url)
    with pytest.raises(DataLossError, match="treatments"):
        run_migration(project, "upgrade", "head", count_mode="estimate")
    assert snapshot(postgres_url) == before


@pytest.mark.parametrize(
    ("start", "direction", "target"),
    [(None, "upgrade", "head"), (INSPECTIONS, "upgrade", "head"), (HEAD, "downgrade", INSPECTIONS)],
    ids=["from-base", "from-the-middle", "from-head"],
)
def test_round_trip_passes_from_base_the_middle_and_head(
    any_database_url: str, start: str | None, direction: str, target: str
) -> None:
    """The guide's first check: up and down both ways. An empty alembic_version after going
    down to base is the same state as none, so a round trip from base comes back equal."""
    database_url = any_database_url
    project = project_at(database_url, start, rows=0)
    result = run_migration(project, direction, target, round_trip=True)
    assert result.committed and [c["check"] for c in result.checks if not c["ok"]] == []
    assert len(result.checks) == 4
    assert revision_of(database_url) == (HEAD if target == "head" else target)


def test_round_trip_that_does_not_come_back_is_rolled_back(database_url: str, tmp_path) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "0eefa11ed001", HEAD, upgrade='op.execute("CREATE TABLE IF NOT EXISTS scales (id integer)")')
    project = project_at(database_url, HEAD, rows=20, migrations_dir=migrations)
    before = snapshot(database_url)
    with pytest.raises(RoundTripMismatch, match="schema back at start") as caught:
        run_migration(project, "upgrade", "head", round_trip=True)
    assert not all(check["ok"] for check in caught.value.checks)
    assert snapshot(database_url) == before


def test_a_round_trip_with_nothing_pending_says_so_and_claims_no_check(any_database_url: str) -> None:
    """Issue 18: at head, a round trip ran no downgrade, so it must not report four checks passed."""
    project = project_at(any_database_url, HEAD, rows=5)
    before = dump(any_database_url)

    result = run_migration(project, "upgrade", "head", round_trip=True)

    assert result.steps == [] and result.checks == []
    assert result.round_trip.startswith("nothing to round-trip: already at head"), result.round_trip
    facts = result.summary()
    assert facts["round_trip"] == result.round_trip and "nothing to round-trip" in facts["outcome"]
    assert [title for title, _ in result.review() if "Round trip" in title] == [
        f"**Round trip:** {result.round_trip}"]
    assert dump(any_database_url) == before


def test_a_round_trip_that_passes_says_so_in_its_summary(database_url: str) -> None:
    project = project_at(database_url, FULL_NAME, rows=5)
    result = run_migration(project, "upgrade", "head", round_trip=True)
    assert result.round_trip.startswith("passed: upgrade, downgrade, upgrade again over 2 revision(s)")
    assert result.summary()["outcome"].endswith(f"; round trip {result.round_trip}")


@pytest.mark.parametrize("downgrade, phase", [
    ("pass", "round trip, phase 3 of 3 (re-upgrade, after the downgrade): revision 0eefa11ed003"),
    ('op.execute("UPDATE no_such_table SET x = 1")',
     "round trip, phase 2 of 3 (downgrade, after the upgrade): revision 0eefa11ed003"),
])
def test_a_round_trip_failure_names_the_phase_it_happened_in(
    any_database_url: str, tmp_path, downgrade: str, phase: str
) -> None:
    """A downgrade that leaves the table: the re-upgrade's CREATE TABLE fails after the downgrade."""
    migrations = migrations_with_extra_revision(
        tmp_path, "0eefa11ed003", HEAD,
        upgrade='op.create_table("scales", sa.Column("id", sa.Integer(), primary_key=True))',
        downgrade=downgrade)
    project = project_at(any_database_url, HEAD, rows=5, migrations_dir=migrations)
    with pytest.raises(MigrationFailed) as failure:
        run_migration(project, "upgrade", "head", round_trip=True)
    assert str(failure.value).startswith(phase), str(failure.value)


@pytest.mark.mysql
def test_round_trip_that_does_not_come_back_on_mariadb_says_where_it_left_the_database(
    mysql_url: str, tmp_path
) -> None:
    """No rollback there: the mismatch is reported with the revision and tables really left."""
    migrations = migrations_with_extra_revision(
        tmp_path, "0eefa11ed002", HEAD, upgrade='op.execute("CREATE TABLE IF NOT EXISTS scales (id integer)")')
    project = project_at(mysql_url, HEAD, rows=20, migrations_dir=migrations)
    rows_before = {t: len(v["rows"]) for t, v in snapshot(mysql_url).items() if t != "alembic_version"}
    with pytest.raises(RoundTripMismatch, match="schema back at start") as caught:
        run_migration(project, "upgrade", "head", round_trip=True)
    message = str(caught.value)
    assert "NOT rolled back" in message and "the database is at 0eefa11ed002" in message
    assert "rolled back, nothing changed" not in message
    after = snapshot(mysql_url)
    assert revision_of(mysql_url) == "0eefa11ed002" and "scales" in after
    assert {t: len(v["rows"]) for t, v in after.items()
            if t not in ("alembic_version", "scales")} == rows_before


@pytest.mark.postgres
def test_autocommit_block_runs_as_an_online_phase_not_half_a_run(postgres_url: str, tmp_path) -> None:
    """Once refused; now the block is a phase of its own (tests/test_native_autocommit.py)."""
    migrations = migrations_with_extra_revision(
        tmp_path, "c0cc0ffee001", HEAD,
        upgrade="with op.get_context().autocommit_block(): op.create_index("
                "'ix_hives_queen_year', 'hives', ['queen_year'], postgresql_concurrently=True)")
    project = project_at(postgres_url, HEAD, rows=20, migrations_dir=migrations)
    before = snapshot(postgres_url)
    result = run_migration(project, "upgrade", "head")
    assert [p["runs"] for p in result.phases] == ["in the transaction", "online"]
    after = snapshot(postgres_url)
    assert revision_of(postgres_url) == "c0cc0ffee001"
    assert "ix_hives_queen_year" in str(after["hives"]) and "ix_hives_queen_year" not in str(before)


def test_production_false_cannot_overrule_flask_env_production(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_at(sqlite_url, INSPECTIONS)
    project = production_project(sqlite_url, monkeypatch)
    with pytest.raises(ConfirmationRequired):
        run_migration(project, "upgrade", "head", production=False)
    with pytest.raises(ConfirmationRequired):
        run_migration(project, "upgrade", "head", rehearse=True)
    assert revision_of(sqlite_url) == INSPECTIONS


@pytest.mark.parametrize("target", ["", "  "])
def test_empty_target_is_refused_not_read_as_head(sqlite_url: str, target: str) -> None:
    project = project_at(sqlite_url, INSPECTIONS)
    with pytest.raises(ParameterError, match="target is empty"):
        run_migration(project, "upgrade", target)
    assert revision_of(sqlite_url) == INSPECTIONS


@pytest.mark.parametrize("wait", [float("nan"), float("inf"), -1.0])
def test_lock_wait_must_be_a_finite_number_of_seconds(sqlite_url: str, wait: float) -> None:
    project = project_at(sqlite_url, INSPECTIONS)
    with pytest.raises(ParameterError, match="lock_wait_s"):
        run_migration(project, "upgrade", "head", lock_wait_s=wait)
    assert revision_of(sqlite_url) == INSPECTIONS


def test_column_dropped_and_re_added_under_its_name_is_loss(any_database_url: str, tmp_path) -> None:
    """Seen after the fact as values lost; on MariaDB predicted from the DROP COLUMN, before."""
    database_url = any_database_url
    migrations = migrations_with_extra_revision(
        tmp_path, "d20bada00001", HEAD,
        upgrade='op.drop_column("users", "username"); op.add_column("users", sa.Column("username", sa.String(80)))')
    project = project_at(database_url, HEAD, rows=100, migrations_dir=migrations)
    before = snapshot(database_url)
    with pytest.raises(DataLossError) as caught:
        run_migration(project, "upgrade", "head")
    kind = "column dropped" if is_mysql(database_url) else "values lost"
    assert [(loss["kind"], loss["object"]) for loss in caught.value.losses] == [(kind, "users.username")]
    assert snapshot(database_url) == before


def test_renamed_table_and_column_are_not_loss(any_database_url: str, tmp_path) -> None:
    database_url = any_database_url
    # MySQL's CHANGE restates the column, so Alembic needs its type and nullability there.
    migrations = migrations_with_extra_revision(
        tmp_path, "5e1ea5e00001", HEAD,
        upgrade='op.rename_table("treatments", "hive_treatments"); '
                'op.alter_column("users", "username", new_column_name="handle", '
                'existing_type=sa.String(80), existing_nullable=False)')
    project = project_at(database_url, HEAD, rows=100, migrations_dir=migrations)
    result = run_migration(project, "upgrade", "head")
    assert result.committed and result.losses == []
    tables = snapshot(database_url)
    assert "hive_treatments" in tables and "treatments" not in tables
    assert "handle" in [column[0] for column in tables["users"]["columns"]]


def test_lock_file_is_found_through_a_symlink_to_the_database(tmp_path) -> None:
    real = tmp_path / "real.sqlite3"
    project_at(f"sqlite:///{real}", INSPECTIONS)
    (tmp_path / "alias.sqlite3").symlink_to(real)
    entered, release = threading.Event(), threading.Event()
    first = _upgrade_in_thread(f"sqlite:///{real}", entered, release)
    assert entered.wait(timeout=HUNG_AFTER_S)
    try:
        with pytest.raises(LockHeld):
            run_migration(load_project(database_url=f"sqlite:///{tmp_path / 'alias.sqlite3'}"), "upgrade")
    finally:
        release.set()
        first["thread"].join(timeout=HUNG_AFTER_S)
    assert "error" not in first


def test_relative_sqlite_path_means_the_same_file_as_flask_db(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from softbee import create_app

    monkeypatch.chdir(tmp_path)
    app = create_app()
    project = load_project(database_url="sqlite:///relative-test.sqlite3", migrations_dir=str(MIGRATIONS))
    assert project.url.database == str(Path(app.instance_path) / "relative-test.sqlite3")
    Path(project.url.database).unlink(missing_ok=True)


@pytest.mark.postgres
@each_pg_driver
def test_statement_timeout_left_unset_keeps_the_databases_own_setting(postgres_url: str) -> None:
    from softbee.runbook.engine.guards import session_timeouts
    from softbee.runbook.util.options import Timeouts

    name = sa.engine.make_url(postgres_url).database
    project = project_at(postgres_url)
    with project.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET statement_timeout = \'30s\'')
        conn.commit()
    project.engine.dispose()  # new sessions pick up the database's setting
    with project.engine.connect() as conn, session_timeouts(conn, Timeouts(5000, None)):
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"


@pytest.mark.postgres
def test_rehearsal_names_the_sequences_it_advanced(postgres_url: str, tmp_path) -> None:
    migrations = migrations_with_extra_revision(
        tmp_path, "5e9ce0000001", HEAD,
        upgrade="op.execute(\"INSERT INTO users (email, username, password_hash, first_name, last_name, "
                "full_name) VALUES ('x@y.z', 'x', 'h', 'X', 'Y', 'X Y')\")")
    project = project_at(postgres_url, HEAD, rows=50, migrations_dir=migrations)
    result = run_migration(project, "upgrade", "head", rehearse=True)
    assert [moved["sequence"] for moved in result.sequences_moved] == ["users_id_seq"]
    assert revision_of(postgres_url) == HEAD


def test_a_run_with_nothing_to_do_neither_routes_env_py_nor_counts_twice(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At head, nothing runs in the transaction: the counts and schema taken once are the answer."""
    from softbee.runbook.engine import guards, migrate
    from softbee.runbook.project import routing

    project = project_at(database_url, HEAD, rows=5)
    before = dump(database_url)
    probes, snapshots = [], []
    real_probe, real_snapshot = routing.probe, guards.take_snapshot
    monkeypatch.setattr(routing, "probe", lambda *a, **k: probes.append(1) or real_probe(*a, **k))
    monkeypatch.setattr(migrate, "take_snapshot",
                        lambda *a, **k: snapshots.append(1) or real_snapshot(*a, **k))

    result = run_migration(project, "upgrade", "head")

    assert (result.steps, probes, snapshots) == ([], [], [1])
    assert result.after is result.before and result.schema_after == result.schema_before
    assert result.summary()["row_counts"] and not result.losses and result.committed
    assert dump(database_url) == before and revision_of(database_url) == HEAD
