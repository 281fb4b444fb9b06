"""Backfills that yield: to a lagging replica, to a VACUUM of their table, to an operator's pause.

Each runs the users.full_name revision (an online backfill) on PostgreSQL while the reason to
pause is real: a streaming replica whose replay is paused (``scripts/pg-replica.sh``), a
manual VACUUM slowed down by its cost delay, the pause file. The reason is taken away by the
test once the run has said it paused; the run must then finish with every row filled.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import MigrationFailed, ParameterError
from softbee.runbook.online.phases import Batches, PhaseRunner, in_progress
from softbee.runbook.online.throttle import Gate, Throttle, pause_backfills, resume_backfills
from softbee.runbook.project import load_project
from tests.helpers import (
    FULL_NAME,
    HIVE_HEALTH,
    HUNG_AFTER_S,
    add_users,
    cluster_down,
    cluster_up,
    project_at,
    revision_of,
)

REPLICA_URL = "postgresql://postgres@127.0.0.1:5433/postgres"
QUICK = {"poll_s": 0.1, "check_every_s": 0.0, "max_pause_s": 120.0}


@pytest.fixture(scope="module")
def streaming_replica() -> Iterator[str]:
    """The local streaming replica on port 5433, made by scripts/pg-replica.sh up.

    Stopped and dropped (``down``, its slot too) when this module's tests are done, so no
    standby is left to hold WAL or slow the other tests. Skipped when it cannot be made (no
    root, no postgresql-common, a remote test server); a failure under CI=true.
    """
    cluster_up("pg-replica.sh")
    try:
        yield REPLICA_URL
    finally:
        cluster_down("pg-replica.sh")


def _upgrade(url: str, throttle: Throttle, on_line: Callable[[str], None]) -> object:
    return run_migration(load_project(database_url=url), "upgrade", FULL_NAME,
                         progress=on_line, throttle=throttle)


def _all_filled(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM users WHERE full_name IS NULL")).scalar_one() == 0
    finally:
        engine.dispose()


def _when(said: list[str], words: str, then: Callable[[], None]) -> Callable[[str], None]:
    """A progress callback that records each line and calls ``then`` once, on ``words``."""
    done = threading.Event()

    def on_line(line: str) -> None:
        said.append(line)
        if words in line and not done.is_set():
            done.set()
            then()

    return on_line


def _replica_lag(conn: sa.Connection) -> float:
    """The standby's replay_lag as the throttle reads it (0 once it replayed all the WAL)."""
    lag = conn.execute(sa.text(
        "SELECT max(CASE WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0 "
        "THEN extract(epoch FROM replay_lag) ELSE 0 END) FROM pg_stat_replication")).scalar()
    return float(lag or 0)


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.postgres
def test_a_backfill_pauses_while_the_replica_lags_and_finishes_when_it_catches_up(
    postgres_url: str, streaming_replica: str,
) -> None:
    """Replay paused on the standby: its lag grows past the limit, the backfill waits; resumed, it goes."""
    limit = 3.0
    project_at(postgres_url, HIVE_HEALTH, rows=40)
    replica = sa.create_engine(streaming_replica, isolation_level="AUTOCOMMIT")
    primary = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def replay(action: str) -> None:
        with replica.connect() as conn:
            conn.execute(sa.text(f"SELECT pg_wal_replay_{action}()"))

    try:
        with primary.connect() as conn:
            # A machine so busy that its standby lags without help proves nothing: wait for a
            # calm moment (bounded), else say so.
            if not _wait_for(lambda: _replica_lag(conn) < 1.0, 180):
                message = f"the standby lags {_replica_lag(conn):.0f}s on its own (a busy machine)"
                if os.environ.get("CI") == "true":
                    pytest.fail(message)
                pytest.skip(message)
            replay("pause")

            def lagging() -> bool:  # WAL the paused standby cannot replay, until it lags enough
                conn.execute(sa.text("UPDATE users SET email = email WHERE id = 1"))
                return _replica_lag(conn) > limit + 1

            assert _wait_for(lagging, 60), "the paused standby's replay_lag never grew"
        said: list[str] = []
        _upgrade(postgres_url, Throttle(max_replica_lag_s=limit, poll_s=0.2, check_every_s=0.0,
                                        max_pause_s=240),
                 _when(said, "PAUSED: replica", lambda: replay("resume")))
    finally:
        replay("resume")
        replica.dispose()
        primary.dispose()
    paused = [line for line in said if "PAUSED: replica" in line]
    assert paused and f"max_replica_lag_s={limit:g}" in paused[0], said
    assert any("resumed after" in line for line in said), said
    assert revision_of(postgres_url) == FULL_NAME and _all_filled(postgres_url)


@pytest.mark.postgres
def test_a_backfill_yields_to_a_vacuum_of_its_table(postgres_url: str) -> None:
    """A slow VACUUM starts after the first batch (before, it would hold off the ADD COLUMN)."""
    project_at(postgres_url, HIVE_HEALTH, rows=40)
    add_users(postgres_url, 3000)
    vacuumer = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                connect_args={"application_name": "slow-vacuum"})
    watcher = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    started, state = threading.Event(), {}

    def vacuum() -> None:
        with vacuumer.connect() as conn:
            state["pid"] = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            conn.execute(sa.text("UPDATE users SET email = email"))  # dead rows to vacuum
            # The longest sleep per page read (400 ms): this VACUUM takes a minute or more.
            for setting in ("vacuum_cost_delay = 100", "vacuum_cost_page_hit = 10000",
                            "vacuum_cost_page_miss = 10000", "vacuum_cost_limit = 1"):
                conn.execute(sa.text(f"SET {setting}"))
            started.set()
            try:
                conn.execute(sa.text("VACUUM users"))
            except sa.exc.DBAPIError as exc:
                state["ended"] = str(exc).splitlines()[0]  # cancelled by the test

    thread = threading.Thread(target=vacuum)

    def start_vacuum() -> None:
        thread.start()
        assert started.wait(HUNG_AFTER_S)
        with watcher.connect() as conn:  # until it shows in pg_stat_progress_vacuum (bounded)
            deadline = time.monotonic() + 60
            while not conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_progress_vacuum WHERE pid = :p"),
                    {"p": state["pid"]}).scalar_one():
                assert time.monotonic() < deadline, f"the VACUUM never showed: {state}"
                time.sleep(0.05)

    def cancel() -> None:
        if "pid" in state:
            with watcher.connect() as conn:
                conn.execute(sa.text("SELECT pg_cancel_backend(:p)"), {"p": state["pid"]})

    said: list[str] = []
    after_first_batch = _when(said, " rows (", start_vacuum)
    on_pause = _when([], "PAUSED: VACUUM", cancel)
    try:
        _upgrade(postgres_url, Throttle(yield_to_vacuum=True, max_replica_lag_s=None, **QUICK),
                 lambda line: (after_first_batch(line), on_pause(line)))
    finally:
        cancel()
        if thread.is_alive():
            thread.join(HUNG_AFTER_S)
        vacuumer.dispose()
        watcher.dispose()
    assert any("PAUSED: VACUUM is working on users" in line for line in said), said
    assert revision_of(postgres_url) == FULL_NAME and _all_filled(postgres_url)


@pytest.mark.postgres
def test_an_operator_pauses_a_backfill_with_the_pause_file_and_it_shows_as_paused(
    postgres_url: str, tmp_path: Path,
) -> None:
    project_at(postgres_url, HIVE_HEALTH, rows=40)
    flag = pause_backfills(tmp_path / "softbee-runbook.pause")
    recorded: list[str] = []

    def look_then_resume() -> None:
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            recorded.extend(in_progress(conn))
        engine.dispose()
        resume_backfills(flag)

    said: list[str] = []
    _upgrade(postgres_url, Throttle(pause_file=flag, max_replica_lag_s=None, **QUICK),
             _when(said, "PAUSED: paused by the operator", look_then_resume))
    assert any(str(flag) in line for line in said if "PAUSED" in line), said
    assert any("backfill users.full_name) paused" in line for line in recorded), recorded
    assert revision_of(postgres_url) == FULL_NAME and _all_filled(postgres_url)


@pytest.mark.postgres
def test_a_pause_longer_than_max_pause_fails_in_one_line_at_a_recorded_phase(
    postgres_url: str, tmp_path: Path,
) -> None:
    project_at(postgres_url, HIVE_HEALTH, rows=40)
    flag = pause_backfills(tmp_path / "softbee-runbook.pause")
    throttle = Throttle(pause_file=flag, max_replica_lag_s=None, poll_s=0.1, max_pause_s=0.5)
    with pytest.raises(MigrationFailed) as caught:
        _upgrade(postgres_url, throttle, lambda _line: None)
    message = str(caught.value)
    assert "\n" not in message
    assert "backfill of users paused" in message and "max_pause_s=0.5" in message, message
    assert f"revision {HIVE_HEALTH}" in message and "phase 2 of 3" in message, message
    assert "run upgrade_downgrade again to resume" in message, message
    assert revision_of(postgres_url) == HIVE_HEALTH
    resume_backfills(flag)
    _upgrade(postgres_url, throttle, lambda _line: None)  # the re-run finishes the job
    assert revision_of(postgres_url) == FULL_NAME and _all_filled(postgres_url)


class _Timed(PhaseRunner):
    """A runner whose every batch takes ``seconds``: what Batches measures."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.say = seconds, lambda _line: None

    def execute(self, connection, statement, before_retry=None) -> int:  # type: ignore[override]
        time.sleep(self.seconds)
        return 10


@pytest.mark.parametrize(("seconds", "batch_ms", "grows"), [(0.0, 1000, True), (0.05, 5, False)])
def test_the_batch_size_follows_the_measured_batch_time(seconds: float, batch_ms: int,
                                                        grows: bool) -> None:
    batches = Batches(_Timed(seconds), total=100, batch_ms=batch_ms, pause_ms=0)
    first = batches.size
    batches.run(None, "UPDATE")  # type: ignore[arg-type]
    assert (batches.size > first) if grows else (batches.size < first)


@pytest.mark.parametrize("bad", [{"max_pause_s": -1}, {"poll_s": float("nan")},
                                 {"max_replica_lag_s": True}])
def test_a_throttle_out_of_bounds_is_refused(bad: dict) -> None:
    with pytest.raises(ParameterError):
        Throttle(**bad)


def test_pause_and_resume_make_and_remove_the_flag(tmp_path: Path) -> None:
    flag = pause_backfills(tmp_path / "deep" / "x.pause")
    assert flag.exists()
    resume_backfills(flag)
    assert not flag.exists()
    resume_backfills(flag)  # resuming twice is harmless


class _NoQueries:
    """A connection that fails the test if anything is asked of it."""

    def execute(self, *_args: object, **_kwargs: object) -> None:
        raise AssertionError("the gate queried the database")


def test_by_default_the_gate_never_looks_at_standbys(tmp_path: Path) -> None:
    """Replica lag is read only when a run gives max_replica_lag_s: a standby elsewhere never slows a run."""
    throttle = Throttle(pause_file=tmp_path / "none.pause", check_every_s=0.0)
    assert throttle.max_replica_lag_s is None
    gate = Gate(throttle, "users", lambda _line: None)
    assert gate.reasons(_NoQueries(), fresh=True) == []  # type: ignore[arg-type]


def test_after_a_slow_batch_the_next_is_cut_to_the_budget_at_once() -> None:
    """A batch 5x over budget: the next is a fifth (not half), so the stall is not repeated."""
    batches = Batches(_Timed(0.05), total=100_000, batch_ms=10, pause_ms=0)
    batches.run(None, "UPDATE")  # type: ignore[arg-type]
    assert batches.size <= Batches.FIRST_SIZE * 0.25
    assert batches.longest_s >= 0.05


def test_after_a_fast_batch_the_next_grows_by_a_quarter_at_most() -> None:
    batches = Batches(_Timed(0.0), total=100_000, batch_ms=1000, pause_ms=0)
    batches.run(None, "UPDATE")  # type: ignore[arg-type]
    assert batches.size == int(Batches.FIRST_SIZE * Batches.GROW_AT_MOST)


class _Paused:
    paused_s = 10.0


def test_the_rate_and_eta_leave_out_the_time_paused_and_the_last_line_says_the_longest_batch() -> None:
    lines: list[str] = []
    runner = _Timed(0.0)
    runner.say = lines.append
    batches = Batches(runner, total=3000, batch_ms=100, pause_ms=0)
    batches.gate = _Paused()  # type: ignore[assignment]
    batches.started -= 20.0  # 20 s ago, 10 of them paused
    batches.done = 1000
    batches._show(None)
    assert lines[-1].strip().startswith("1,000 / 3,000 rows (33%), 100 rows/s, ETA 20s"), lines
    batches.done, batches.longest_s = 3000, 0.042
    batches.finish(None)  # type: ignore[arg-type]
    assert lines[-1].endswith(", longest batch 42 ms"), lines
