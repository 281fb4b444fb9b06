"""An autovacuum in a migration's way is cancelled as the server would, after a short first try.

Real autovacuums, on a cluster of their own whose autovacuum starts within a second
(``scripts/pg-autovacuum-cluster.sh``): a table with dead rows and a vacuum slowed to a
crawl (``autovacuum_vacuum_cost_delay`` 100 ms, cost limit 1) holds SHARE UPDATE EXCLUSIVE
for as long as a test needs, which every ``ALTER TABLE`` waits for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.online import tries
from softbee.runbook.online.phases import PhaseRunner
from tests.conftest import PG_DRIVERS, with_driver
from tests.helpers import HIVE_HEALTH, cluster_down, cluster_up, project_at, revision_of

CLUSTER = "pg-autovacuum-cluster.sh"
# One worker for the whole module (make test runs --dist loadgroup): the cluster is made and
# dropped by a module fixture, which another worker's teardown would drop under these tests.
pytestmark = pytest.mark.xdist_group("autovacuum_cluster")
START = "3c2e7a9d4f03"  # hives exists; HIVE_HEALTH alters it
STARTS_WITHIN_S = 30  # autovacuum_naptime is 1 s there: a worker comes within a few
CRAWL = ("autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1, "
         "autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0")


@pytest.fixture(scope="module")
def autovacuum_server() -> Iterator[str]:
    """The base URL of cluster 15/autovacuum (port 5436), stopped and dropped afterwards.

    Skipped when it cannot be made (no root, no postgresql-common, a remote test server);
    a failure under CI=true.
    """
    url = cluster_up(CLUSTER)
    try:
        yield url
    finally:
        cluster_down(CLUSTER)


@pytest.fixture(params=PG_DRIVERS)
def av_url(request: pytest.FixtureRequest, autovacuum_server: str) -> Iterator[str]:
    """A fresh database on the autovacuum cluster, on each PostgreSQL driver; dropped afterwards."""
    url = with_driver(autovacuum_server, request.param)  # skips (fails under CI) without it
    name = f"softbee_av_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{autovacuum_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def vacuum_crawling(url: str, table: str, fill: str, owner: str | None = None) -> None:
    """Fill ``table`` with ``fill`` (owned by ``owner``), slow its vacuum down, leave dead rows;
    return once a real autovacuum of it is running (bounded wait)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(fill)
            if owner is not None:  # before the vacuum: its ACCESS EXCLUSIVE lock would cancel it
                conn.exec_driver_sql(f"ALTER TABLE {table} OWNER TO {owner}")
            conn.exec_driver_sql(f"ALTER TABLE {table} SET ({CRAWL})")
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE mod(id, 2) = 0")
            deadline = time.monotonic() + STARTS_WITHIN_S
            while time.monotonic() < deadline:
                running = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                    "AND datname = current_database() AND query LIKE :q"),
                    {"q": f"%VACUUM%{table}%"}).scalar_one()
                if running:
                    return
                time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError(f"no autovacuum of {table} started within {STARTS_WITHIN_S} s")


def test_an_online_statement_cancels_the_autovacuum_holding_its_table(av_url: str) -> None:
    vacuum_crawling(av_url, "frames", "CREATE TABLE frames AS SELECT g AS id, repeat('x', 200) "
                    "AS note FROM generate_series(1, 20000) g")
    said: list[str] = []
    runner = PhaseRunner(None, "r1", "upgrade", said.append)  # type: ignore[arg-type]
    engine = sa.create_engine(av_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = 2000")
            runner.execute(conn, "ALTER TABLE frames ADD COLUMN weight integer")
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "2s"  # restored
            assert "weight" in {c["name"] for c in sa.inspect(conn).get_columns("frames")}
    finally:
        engine.dispose()
    assert said and "within 50 ms" in said[0], said  # the first try queued the table 50 ms at most
    assert "cancelled autovacuum of frames (pid" in said[0], said


@pytest.mark.parametrize("av_url", ["psycopg2"], indirect=True)  # the branch, on one driver
def test_a_role_that_may_not_cancel_it_says_so_and_does_not_get_the_lock(
    av_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The counterpart: the same statement, by a role that may not cancel an autovacuum.

    (A role without ``pg_read_all_stats`` does not even see that the holder is an autovacuum:
    its lines then name no autovacuum at all.)
    """
    monkeypatch.setattr(tries, "RETRIES", 2)  # 50, 100 and 200 ms: long before the vacuum ends
    role = f"softbee_av_{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(av_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role}")  # it sees the vacuum, may not signal it
        conn.exec_driver_sql(f"GRANT pg_read_all_stats TO {role}")
    vacuum_crawling(av_url, "frames", "CREATE TABLE frames AS SELECT g AS id, repeat('x', 200) "
                    "AS note FROM generate_series(1, 20000) g", owner=role)
    said: list[str] = []
    runner = PhaseRunner(None, "r1", "upgrade", said.append)  # type: ignore[arg-type]
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SET ROLE {role}")
            conn.exec_driver_sql("SET lock_timeout = 2000")
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                runner.execute(conn, "ALTER TABLE frames ADD COLUMN weight integer")
            conn.exec_driver_sql("RESET ROLE")
            conn.exec_driver_sql(f"ALTER TABLE frames OWNER TO postgres; DROP ROLE {role}")
    finally:
        engine.dispose()
    assert len(said) == 2 and all("this role may not cancel it" in line for line in said), said


def test_a_migration_statement_cancels_the_autovacuum_after_its_50_ms_first_try(av_url: str) -> None:
    """The same through a run's lock retries (engine/retries.py), inside its transaction."""
    project = project_at(av_url, START)
    vacuum_crawling(av_url, "hives", (
        "INSERT INTO users (id, email, username, password_hash, first_name, last_name) "
        "VALUES (1, 'a@example.org', 'a', 'x', 'A', 'B'); "
        "INSERT INTO apiaries (id, owner_id, name) VALUES (1, 1, 'north'); "
        "INSERT INTO hives (id, apiary_id, hive_number) "
        "SELECT g, 1, g FROM generate_series(1, 20000) g"))
    said: list[str] = []
    result = run_migration(project, "upgrade", HIVE_HEALTH, lock_timeout_ms=2000,
                           progress=said.append)
    assert revision_of(av_url) == HIVE_HEALTH
    first = result.lock_retries[0]  # type: ignore[attr-defined]
    # CREATE TABLE inspections, whose foreign key locks hives, is the first to meet the vacuum.
    assert "inspections" in first["statement"] and first["lost_after_ms"] == 50, first
    assert first["autovacuum"].startswith("cancelled autovacuum of hives (pid"), first
    assert "autovacuum: VACUUM" in first["blockers"], first  # the holder named: the vacuum
    assert any("cancelled autovacuum of hives" in line for line in said), said
