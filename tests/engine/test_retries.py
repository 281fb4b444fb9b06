"""Lock retries: a statement that loses its lock to a real reader is tried again, within a budget.

The reader is a second connection in a thread holding a lock the migration's ``ALTER TABLE``
conflicts with (ACCESS SHARE on PostgreSQL, a metadata lock on MariaDB). It lets go either
once the run has reported its first retry (the run must then finish), or never before the
run gives up (the run must fail in one line, at a recorded revision).
"""

from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.engine.retries import NO_RETRIES, LockRetries
from softbee.runbook.errors import MigrationFailed, ParameterError
from softbee.runbook.project import load_project
from tests.conftest import each_mysql_driver, each_pg_driver
from tests.helpers import HIVE_HEALTH, HUNG_AFTER_S, project_at, revision_of, snapshot

START = "3c2e7a9d4f03"  # before inspections (4d3f...) and the hives change (5e4a...)
QUICK = LockRetries(retries=3, pause_s=0.05, budget_s=20)
SHORT_BUDGET = LockRetries(retries=5, pause_s=0.05, budget_s=1.5)


class Reader:
    """A second session holding a read of ``hives`` open until :meth:`release`."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, connect_args=(
            {"application_name": "busy-reader"} if url.startswith("postgresql") else {}))
        self.holding, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)
        self.thread.start()
        assert self.holding.wait(HUNG_AFTER_S)

    def _hold(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM hives")).scalar()  # the lock, until rollback
            self.holding.set()
            self.released.wait(HUNG_AFTER_S)
            conn.rollback()

    def release(self) -> None:
        self.released.set()
        self.thread.join(HUNG_AFTER_S)
        self.engine.dispose()


def _upgrade(url: str, reader: Reader, policy: LockRetries, release_on_retry: bool,
             said: list[str]) -> object:
    def progress(message: str) -> None:
        said.append(message)
        if release_on_retry and "retry 1/" in message:
            reader.release()

    return run_migration(load_project(database_url=url), "upgrade", HIVE_HEALTH,
                         lock_timeout_ms=200, progress=progress, lock_retries=policy)


@pytest.mark.postgres
@each_pg_driver
def test_a_statement_that_loses_its_lock_is_retried_and_the_run_keeps_what_it_did(
    postgres_url: str,
) -> None:
    """The hives ALTER loses to the reader; inspections, created before it, survives the retry."""
    project_at(postgres_url, START)
    reader = Reader(postgres_url)
    said: list[str] = []
    try:
        result = _upgrade(postgres_url, reader, QUICK, release_on_retry=True, said=said)
    finally:
        reader.release()
    assert revision_of(postgres_url) == HIVE_HEALTH
    with sa.create_engine(postgres_url).connect() as conn:
        assert sa.inspect(conn).has_table("inspections")  # revision 4's work was kept
        assert "health_status" in {c["name"] for c in sa.inspect(conn).get_columns("hives")}
    retries = result.lock_retries  # type: ignore[attr-defined]
    assert retries and "hives" in retries[0]["statement"], retries
    # The first try waited 50 ms only (the application queues no longer behind it), then x2.
    assert (retries[0]["lost_after_ms"], retries[0]["next_timeout_ms"]) == (50, 100)
    assert "busy-reader" in retries[0]["blockers"]
    assert result.summary()["lock_retries"] == retries  # type: ignore[attr-defined]
    # Two short tries (50, 100 ms) below the run's 200 ms, then the policy's 3 retries.
    assert any("retry 1/5" in line and "busy-reader" in line for line in said), said


@pytest.mark.postgres
def test_without_a_short_first_try_the_first_wait_is_the_runs_lock_timeout(postgres_url: str) -> None:
    """The counterpart of the 50 ms first try: ``first_lock_timeout_ms=0`` waits lock_timeout_ms."""
    project_at(postgres_url, START)
    reader = Reader(postgres_url)
    said: list[str] = []
    try:
        result = _upgrade(postgres_url, reader, LockRetries(retries=3, pause_s=0.05, budget_s=20,
                                                            first_lock_timeout_ms=0),
                          release_on_retry=True, said=said)
    finally:
        reader.release()
    retries = result.lock_retries  # type: ignore[attr-defined]
    assert (retries[0]["lost_after_ms"], retries[0]["next_timeout_ms"]) == (200, 400), retries


@pytest.mark.postgres
def test_without_retries_the_same_reader_fails_the_run(postgres_url: str) -> None:
    """The counterpart: no retries, the first lost lock ends the run, rolled back."""
    project_at(postgres_url, START)
    before = snapshot(postgres_url)
    reader = Reader(postgres_url)
    try:
        with pytest.raises(MigrationFailed) as caught:
            _upgrade(postgres_url, reader, NO_RETRIES, release_on_retry=True, said=[])
    finally:
        reader.release()
    assert "tried" not in str(caught.value)
    assert snapshot(postgres_url) == before


@pytest.mark.postgres
def test_a_lock_held_past_the_budget_fails_in_one_line_naming_the_wait(postgres_url: str) -> None:
    project_at(postgres_url, START)
    before = snapshot(postgres_url)
    reader = Reader(postgres_url)
    said: list[str] = []
    try:
        with pytest.raises(MigrationFailed) as caught:
            _upgrade(postgres_url, reader, SHORT_BUDGET, release_on_retry=False, said=said)
    finally:
        reader.release()
    message = str(caught.value)
    assert "\n" not in message
    assert "ALTER TABLE hives" in message and "busy-reader" in message, message
    tried = re.search(r"tried (\d+) time\(s\), lock_timeout growing to (\d+) ms, ([\d.]+) s "
                      r"waited in all, budget 1.5 s", message)
    assert tried, message
    assert 2 <= int(tried[1]) <= SHORT_BUDGET.retries + 1 + 2  # + the 50 and 100 ms short tries
    assert f"database still at {START}" in message
    assert revision_of(postgres_url) == START and snapshot(postgres_url) == before
    assert sum("retry " in line for line in said) == int(tried[1]) - 1


@pytest.mark.mysql
@each_mysql_driver
def test_on_mariadb_a_ddl_statement_that_loses_its_metadata_lock_is_run_again(
    mysql_url: str,
) -> None:
    """MariaDB commits each DDL itself: the ALTER is simply retried, under a longer wait."""
    project_at(mysql_url, START)
    reader = Reader(mysql_url)
    said: list[str] = []
    try:
        result = _upgrade(mysql_url, reader, QUICK, release_on_retry=True, said=said)
    finally:
        reader.release()
    assert revision_of(mysql_url) == HIVE_HEALTH
    retries = result.lock_retries  # type: ignore[attr-defined]
    assert retries and "hives" in retries[0]["statement"] and retries[0]["next_timeout_ms"] == 2000


@pytest.mark.parametrize("bad", [{"retries": -1}, {"budget_s": float("inf")}, {"growth": 0.5},
                                 {"first_lock_timeout_ms": -5}, {"first_lock_timeout_ms": 0.5}])
def test_a_retry_policy_out_of_bounds_is_refused(bad: dict) -> None:
    with pytest.raises(ParameterError):
        LockRetries(**bad)
