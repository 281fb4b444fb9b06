"""An online statement's tries for its lock: 50 ms first for what queues the application, not
for what does not (``CONCURRENTLY``, ``VALIDATE CONSTRAINT``).

A second session holds a lock on the table for 300 ms (under the session's 2 s lock timeout)
while the statement runs.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from softbee.runbook.online.tries import execute_with_tries

HELD_S = 0.3


def _hold(url: str, held: threading.Event) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE frames IN SHARE ROW EXCLUSIVE MODE")
            held.set()
            time.sleep(HELD_S)
            conn.rollback()
    finally:
        held.set()
        engine.dispose()


def _run_behind_a_holder(url: str, statement: str) -> list[str]:
    """``statement`` run while another session holds the table for HELD_S; what it said."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    said: list[str] = []
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE frames (id int PRIMARY KEY, weight int)")
            conn.exec_driver_sql("SET lock_timeout = 2000")
            held = threading.Event()
            holder = threading.Thread(target=_hold, args=(url, held))
            holder.start()
            assert held.wait(30)
            try:
                execute_with_tries(conn, statement, said.append)
            finally:
                holder.join(30)
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "2s"  # restored
    finally:
        engine.dispose()
    return said


@pytest.mark.postgres
def test_a_statement_that_queues_the_application_tries_50_ms_first(postgres_url: str) -> None:
    said = _run_behind_a_holder(postgres_url, "ALTER TABLE frames ADD COLUMN frame_no int")
    assert said and "within 50 ms" in said[0], said


@pytest.mark.postgres
def test_an_index_built_concurrently_waits_the_sessions_lock_timeout_from_its_first_try(
    postgres_url: str,
) -> None:
    """Its wait queues nobody, and a lost try would throw the build away: no short try."""
    said = _run_behind_a_holder(postgres_url, "CREATE INDEX CONCURRENTLY ix_frames_weight "
                                              "ON frames (weight)")
    assert said == []
