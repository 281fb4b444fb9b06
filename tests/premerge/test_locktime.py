"""Lock time estimated from production's sizes, and the rules that read it."""

from __future__ import annotations

import pytest

from softbee.runbook.premerge.locktime import (
    LockModel,
    estimate_revision,
    human_bytes,
    human_seconds,
    is_post_deploy,
    lock_findings,
)
from softbee.runbook.premerge.stats import Stats, TableStats

GB = 1024 ** 3
STATS = Stats("postgresql", {
    "users": TableStats(rows=40_000_000, table_bytes=12 * GB, index_bytes=3 * GB),
    "hives": TableStats(rows=5_000, table_bytes=2 * 1024 ** 2),
    "events": TableStats(rows=500_000, table_bytes=400 * 1024 ** 2),
})
MODEL = LockModel()


def rules(sql: str, post_deploy: bool = False, model: LockModel = MODEL) -> dict[str, str]:
    locks = estimate_revision(sql, STATS, model, post_deploy)
    return {f.rule: f.severity for f in lock_findings("r1", locks, STATS, model)}


def test_a_full_table_update_on_forty_million_rows_is_an_error_naming_the_online_fix():
    locks = estimate_revision("UPDATE users SET first_name = trim(first_name);", STATS, MODEL)
    found = lock_findings("r1", locks, STATS, MODEL)

    assert locks.seconds == pytest.approx(40_000_000 / MODEL.rows_per_s)
    update = next(f for f in found if f.rule == "large-table-update")
    assert update.severity == "error" and update.message.startswith("UPDATE users: 40,000,000 rows:")
    assert "online.backfill" in update.fix
    assert {f.rule for f in found} == {"large-table-update", "lock-time-over-threshold"}


def test_an_index_built_without_concurrently_on_twelve_gigabytes_is_an_error():
    [index, total] = lock_findings("r1", estimate_revision(
        "CREATE INDEX ix_users_email ON users (email);", STATS, MODEL), STATS, MODEL)

    assert index.message.startswith("CREATE INDEX without CONCURRENTLY on users: 12 GB: about 10 min")
    assert "online.create_index" in index.fix and total.rule == "lock-time-over-threshold"
    assert rules("CREATE INDEX CONCURRENTLY ix_users_email ON users (email);") == {}
    innodb = Stats("mariadb", STATS.tables)  # InnoDB builds it online
    assert estimate_revision("CREATE INDEX ix ON users (email);", innodb, MODEL).statements == ()


def test_each_kind_of_statement_is_estimated_its_own_way():
    sql = ("ALTER TABLE users ALTER COLUMN email TYPE TEXT;\n"
           "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
           "ALTER TABLE users ADD CONSTRAINT ck CHECK (email <> '') NOT VALID;\n"
           "ALTER TABLE users ADD COLUMN nickname VARCHAR(40);\n"
           "INSERT INTO _alembic_tmp_hives SELECT * FROM hives;\n")

    locks = estimate_revision(sql, STATS, MODEL)

    assert [(e.kind, e.table) for e in locks.statements] == [
        ("rewrite", "users"), ("scan", "users"), ("rewrite", "hives")]
    assert locks.statements[0].seconds == pytest.approx(15 * GB / MODEL.rewrite_bytes_per_s)
    assert locks.statements[1].seconds == pytest.approx(12 * GB / MODEL.scan_bytes_per_s)


def test_a_small_table_says_nothing_and_a_large_one_under_the_threshold_warns():
    assert rules("UPDATE hives SET hive_type = 'x';") == {}
    assert rules("UPDATE events SET kind = 'x' WHERE kind IS NULL;") == {"large-table-update": "warning"}
    assert rules("DELETE FROM users;")["large-table-delete"] == "error"


def test_online_phases_hold_no_lock_of_the_migration():
    sql = ("-- softbee-runbook phase 2/3 (online on PostgreSQL): backfill users.full_name\n\n"
           "UPDATE users SET full_name = first_name WHERE full_name IS NULL;\n\n"
           "-- softbee-runbook phases end\n\n")

    assert estimate_revision(sql, STATS, MODEL).statements == ()


def test_a_post_deploy_revision_gets_the_ten_minute_threshold_and_thresholds_are_configurable():
    sql = "UPDATE events SET kind = 'x';\n" * 7  # 7 x 50 s = about 6 minutes
    assert rules(sql)["lock-time-over-threshold"] == "error"
    assert "lock-time-over-threshold" not in rules(sql, post_deploy=True)
    assert "lock-time-over-threshold" not in rules(sql, model=LockModel(regular_s=600))
    assert is_post_deploy("# runbook: post-deploy\nrevision = 'x'\n")
    assert not is_post_deploy("revision = 'x'\n")


def test_sizes_and_durations_read_as_a_person_says_them():
    assert [human_seconds(s) for s in (0.25, 45, 614, 4000)] == ["0.2 s", "45 s", "10 min", "1 h 7 min"]
    assert [human_bytes(b) for b in (12 * GB, 1.5 * GB, 2048, None)] == [
        "12 GB", "1.5 GB", "2 KB", "size unknown"]
