"""The pure logic of benchmarks/bench_online.py: stalls, percentiles, the ETA check, the kill-state classifier.

No database: the schemas are ``schema_of``-shaped dicts written out by hand.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_online import (
    Progress,
    backfill_seconds,
    classify_state,
    decile_rates,
    describe_causes,
    eta_check,
    longest_batch_ms,
    percentile,
    progress_lines,
    stall_causes,
    stalls,
    wait_kind,
)
from softbee.runbook.online.phases import PHASE_TABLE, PhaseRecord

PARENT = {
    "alembic_version": {"version_num": "VARCHAR(32) NOT NULL"},
    "users": {"id": "INTEGER NOT NULL", "first_name": "VARCHAR(100) NOT NULL"},
}
CHILD = {
    "alembic_version": {"version_num": "VARCHAR(32) NOT NULL"},
    "users": {"id": "INTEGER NOT NULL", "first_name": "VARCHAR(100) NOT NULL",
              "full_name": "VARCHAR(200) NOT NULL", "index ix_users_full_name": "full_name"},
}
REFERENCES = {"a": PARENT, "b": CHILD}
CHILDREN = {"a": "b"}
MIDWAY = {"alembic_version": PARENT["alembic_version"],
          "users": {**PARENT["users"], "full_name": "VARCHAR(200)"}}


def phase(revision: str = "b", number: int = 2, state: str = "running",
          direction: str = "upgrade") -> PhaseRecord:
    return PhaseRecord(revision, direction, number, 3, "backfill", state, 430_000, 1_000_000)


def test_stalls_keep_the_window_and_count_unfinished_operations_until_its_end() -> None:
    ops = [(0.5, 0.6), (1.0, 1.01), (2.0, 5.0), (9.0, None), (11.0, 11.1)]
    assert stalls(ops, began=1.0, ended=10.0) == pytest.approx([0.01, 3.0, 1.0])


def test_stalls_cut_an_operation_that_finished_after_the_window_at_its_end() -> None:
    assert stalls([(8.0, 30.0)], began=0.0, ended=10.0) == [2.0]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 99) == 0.0


def test_a_revision_with_exactly_its_schema_and_no_phase_is_explained() -> None:
    verdict = classify_state("a", PARENT, [], REFERENCES, CHILDREN)
    assert verdict.explained
    assert verdict.state.startswith("a: at the revision")


def test_the_phase_table_itself_is_not_part_of_the_schema() -> None:
    with_table = {**PARENT, PHASE_TABLE: {"revision": "VARCHAR(64) NOT NULL"}}
    assert classify_state("a", with_table, [], REFERENCES, CHILDREN).explained


def test_a_schema_change_without_a_recorded_phase_is_unexplained() -> None:
    verdict = classify_state("a", MIDWAY, [], REFERENCES, CHILDREN)
    assert not verdict.explained
    assert "extra users.full_name" in verdict.state


def test_a_recorded_phase_of_the_next_revision_explains_a_schema_between_the_two() -> None:
    verdict = classify_state("a", MIDWAY, [phase(number=1, state="done"), phase()],
                             REFERENCES, CHILDREN)
    assert verdict.explained
    assert verdict.state == ("a, then revision b (upgrade): phase 2 of 3 (backfill) running, "
                             "430,000 / 1,000,000 rows")


def test_a_recorded_phase_explains_the_parent_schema_too() -> None:
    """Killed after the phase row was written, before its DDL committed."""
    assert classify_state("a", PARENT, [phase(number=1)], REFERENCES, CHILDREN).explained


def test_a_schema_beyond_the_next_revision_is_unexplained_even_with_a_phase() -> None:
    beyond = {**MIDWAY, "users": {**MIDWAY["users"], "nickname": "VARCHAR(50)"}}
    verdict = classify_state("a", beyond, [phase()], REFERENCES, CHILDREN)
    assert not verdict.explained
    assert "users.nickname in neither revision" in verdict.state


def test_a_schema_missing_part_of_the_revision_is_unexplained_even_with_a_phase() -> None:
    missing = {"alembic_version": PARENT["alembic_version"], "users": {"id": "INTEGER NOT NULL"}}
    assert not classify_state("a", missing, [phase()], REFERENCES, CHILDREN).explained


def test_phase_rows_of_another_revision_or_direction_are_unexplained() -> None:
    assert not classify_state("a", MIDWAY, [phase(revision="a")], REFERENCES, CHILDREN).explained
    assert not classify_state("a", MIDWAY, [phase(direction="downgrade")],
                              REFERENCES, CHILDREN).explained


def test_phase_rows_at_head_have_no_next_revision_to_explain_them() -> None:
    assert not classify_state("b", CHILD, [phase()], REFERENCES, CHILDREN).explained


def test_an_unknown_or_missing_revision_is_unexplained() -> None:
    assert not classify_state("zzz", PARENT, [], REFERENCES, CHILDREN).explained
    assert not classify_state(None, PARENT, [], REFERENCES, CHILDREN).explained


PRINTED = """      users.full_name
      1,000 / 1,000,000 rows (0%), 9,000 rows/s, ETA 110s
      98,000 / 1,000,000 rows (10%), 98,000 rows/s, ETA 9s
      120,000 / 1,000,000 rows (12%), 100,000 rows/s, ETA 9s
      1,000,000 / 1,000,000 rows (100%), 90,000 rows/s, longest batch 87 ms
"""


def test_progress_lines_are_read_with_their_eta_and_the_last_line_with_the_longest_batch() -> None:
    assert progress_lines(PRINTED) == [Progress(1_000, 1_000_000, 110.0),
                                       Progress(98_000, 1_000_000, 9.0),
                                       Progress(120_000, 1_000_000, 9.0)]
    assert longest_batch_ms(PRINTED) == 87 and longest_batch_ms("no such line") is None


def test_the_eta_check_takes_the_first_line_at_ten_percent_and_the_first_moment_all_rows_are_done() -> None:
    timeline = [(0.5, 1_000, 1_000_000), (2.0, 98_000, 1_000_000), (3.0, 120_000, 1_000_000),
                (9.0, 600_000, 1_000_000), (14.0, 1_000_000, 1_000_000)]
    check = eta_check(progress_lines(PRINTED), timeline)
    assert check is not None and check.line.done == 120_000  # 98,000 is under 10 %
    assert check.actual_s == pytest.approx(11.0) and check.error == pytest.approx(9 / 11 - 1)
    assert "error -18.2 % (within 20 %)" in check.describe()


def test_no_eta_check_without_a_line_past_ten_percent_or_an_end() -> None:
    assert eta_check([Progress(1_000, 1_000_000, 110.0)], [(1.0, 1_000_000, 1_000_000)]) is None
    assert eta_check(progress_lines(PRINTED), [(3.0, 120_000, 1_000_000)]) is None


def test_decile_rates_interpolate_the_moment_each_tenth_is_crossed() -> None:
    timeline = [(0.0, 0, 100), (1.0, 50, 100), (3.0, 100, 100)]  # 50 rows/s, then 25 rows/s
    assert decile_rates(timeline) == pytest.approx([50.0] * 5 + [25.0] * 5)
    assert decile_rates(timeline[:1]) == []


def test_the_backfill_is_timed_from_its_first_record_to_its_last_row() -> None:
    assert backfill_seconds([(2.0, 1, 100), (3.0, 50, 100), (7.5, 100, 100), (8.0, 100, 100)]) == 5.5
    assert backfill_seconds([(2.0, 1, 100)]) is None


# -- what a stall is put down to ----------------------------------------------------------------


def test_wait_events_are_put_down_to_a_lock_the_wal_flush_data_io_or_running() -> None:
    assert wait_kind("Lock", "transactionid") == "lock"
    assert wait_kind("IO", "WALSync") == wait_kind("LWLock", "WALWrite") == "WAL"
    assert wait_kind("IO", "DataFileRead") == "data file I/O"
    assert wait_kind(None, None) == "running"
    assert wait_kind("Client", "ClientRead") == "Client/ClientRead"


def test_a_stall_is_put_down_to_the_wait_its_session_showed_most() -> None:
    ops = [(1.0, 1.2), (2.0, 2.05), (3.0, None), (0.5, 0.7)]  # 200 ms, 50 ms, unfinished, warm-up
    samples = [(1.05, "writer", "WAL"), (1.1, "writer", "WAL"), (1.15, "writer", "lock"),
               (1.1, "reader", "lock"), (3.05, "writer", "running")]
    causes = stall_causes(ops, samples, "writer", began=0.9, ended=3.5)
    # Longest first; the unfinished one lasts until the end and had no wait sampled.
    assert causes == [(0.5, "client side"), (pytest.approx(0.2), "WAL")]
    assert describe_causes(causes) == "2 over 100 ms (client side 1, WAL 1), none on a lock"
    assert describe_causes([(0.3, "lock"), (0.12, "lock")]).endswith("longest on a lock 300 ms")
    assert describe_causes([]) == "none over 100 ms"
