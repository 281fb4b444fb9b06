"""The lint of what will run: squawk (the real binary) plus Soft-Bee's own checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from softbee.runbook.review import lint, lint_squawk
from softbee.runbook.review.lint import FINDING_COLUMNS, has_errors, lint_diff, lint_sql

LARGE = {"users": 500_000}
SMALL = {"users": 10}
EMPTY = {"users": 0}

OFFLINE_SQL = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> a1

CREATE TABLE hives (
    id SERIAL NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO alembic_version (version_num) VALUES ('a1') RETURNING alembic_version.version_num;

-- Running upgrade a1 -> b2

ALTER TABLE users ADD COLUMN full_name TEXT;

UPDATE users SET full_name = first_name || ' ' || last_name;

ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;

UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';

-- Running upgrade b2 -> c3

ALTER TABLE users DROP COLUMN legacy_name;

UPDATE alembic_version SET version_num='c3' WHERE alembic_version.version_num = 'b2';

COMMIT;
"""


def rules(findings: pd.DataFrame, source: str = "softbee") -> set[str]:
    """The rules reported by one source."""
    return set(findings.loc[findings["source"] == source, "rule"])


def only(findings: pd.DataFrame, rule: str) -> dict[str, Any]:
    """The one finding of a rule, as a dict."""
    rows = findings[findings["rule"] == rule]
    assert len(rows) == 1, findings[["severity", "source", "rule", "object"]]
    return rows.iloc[0].to_dict()


def diff(*rows: tuple[str, str, str | None, str]) -> pd.DataFrame:
    """An autogenerate diff table from (operation, table, column, detail) rows."""
    destructive = {"remove_table", "remove_column", "remove_fk", "remove_index"}
    return pd.DataFrame(
        [
            {"operation": o, "table": t, "column": c, "detail": d, "destructive": o in destructive}
            for o, t, c, d in rows
        ]
    )


# --- shape -----------------------------------------------------------------------------------


def test_findings_have_exactly_the_documented_columns_in_order() -> None:
    findings = lint_sql("ALTER TABLE users DROP COLUMN old;")
    assert tuple(findings.columns) == FINDING_COLUMNS
    assert set(findings["severity"]) <= {"error", "warning", "info"}
    assert set(findings["source"]) == {"squawk", "softbee"}
    assert all(fix and "\n" not in fix for fix in findings["fix"])


def test_nothing_to_report_gives_an_empty_frame_with_the_columns() -> None:
    for findings in (lint_sql(""), lint_sql("SELECT 1;"), lint_diff(diff())):
        assert findings.empty
        assert tuple(findings.columns) == FINDING_COLUMNS
        assert not has_errors(findings)


def test_errors_are_sorted_first() -> None:
    findings = lint_sql(OFFLINE_SQL, row_counts=SMALL)
    ranks = findings["severity"].map({"error": 0, "warning": 1, "info": 2}).tolist()
    assert ranks == sorted(ranks)
    assert findings.iloc[0]["severity"] == "error"
    assert has_errors(findings)


def test_statements_name_an_excerpt_of_the_sql() -> None:
    finding = only(lint_sql("ALTER TABLE users DROP COLUMN old;"), "drop-column")
    assert "ALTER TABLE users DROP COLUMN old" in finding["message"]
    assert finding["object"] == "users.old"


# --- revisions and bookkeeping -----------------------------------------------------------------


def test_findings_are_attributed_to_the_revision_whose_upgrade_runs() -> None:
    findings = lint_sql(OFFLINE_SQL, row_counts=SMALL)
    assert only(findings, "drop-column")["revision"] == "c3"
    assert only(findings, "set-not-null-after-backfill")["revision"] == "b2"
    hives = findings[findings["object"] == "hives"]
    assert not hives.empty and set(hives["revision"]) == {"a1"}


def test_downgrade_findings_name_the_revision_being_downgraded() -> None:
    sql = "-- Running downgrade c3 -> b2\n\nALTER TABLE users DROP COLUMN full_name;\n"
    assert only(lint_sql(sql), "drop-column")["revision"] == "c3"


def test_sql_without_running_comments_has_no_revision() -> None:
    assert only(lint_sql("DROP TABLE old;"), "drop-table")["revision"] is None


def test_alembic_version_bookkeeping_is_ignored() -> None:
    findings = lint_sql(OFFLINE_SQL, row_counts=SMALL)
    assert not findings["object"].astype(str).str.contains("alembic_version").any()
    assert not findings["message"].str.contains("alembic_version").any()


def test_sql_inside_string_literals_and_comments_is_not_linted() -> None:
    sql = (
        "-- DROP TABLE users;\n"
        "/* ALTER TABLE users DROP COLUMN email; */\n"
        "UPDATE notes SET body = 'DROP TABLE users; ALTER TABLE users DROP COLUMN x';\n"
    )
    assert rules(lint_sql(sql)) == set()


# --- squawk ------------------------------------------------------------------------------------


def test_squawk_is_found_next_to_the_running_python() -> None:
    found = lint.find_squawk()
    assert found is not None and Path(found).name.startswith("squawk")


def test_squawk_findings_carry_a_fix_from_squawk_help() -> None:
    sql = "ALTER TABLE hives ADD CONSTRAINT fk FOREIGN KEY (apiary_id) REFERENCES apiaries (id);"
    finding = only(lint_sql(sql), "adding-foreign-key-constraint")
    assert finding["source"] == "squawk"
    assert finding["severity"] == "warning"
    assert finding["object"] == "hives"
    assert "NOT VALID" in finding["fix"]


def test_timeout_findings_are_info_because_the_runbook_sets_timeouts() -> None:
    findings = lint_sql("ALTER TABLE users ADD COLUMN nickname TEXT;")
    timeouts = findings[findings["rule"].str.startswith("require-") & findings["rule"].str.endswith(
        "-timeout"
    )]
    assert len(timeouts) == 2
    assert set(timeouts["severity"]) == {"info"}
    assert timeouts["message"].str.contains("runbook sets lock_timeout").all()
    assert not has_errors(findings)


def test_missing_squawk_gives_an_info_finding_and_our_checks_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lint_squawk, "find_squawk", lambda: None)
    findings = lint_sql("ALTER TABLE users DROP COLUMN old;")
    missing = only(findings, "squawk-unavailable")
    assert missing["severity"] == "info" and "not installed" in missing["message"]
    assert rules(findings) == {"drop-column"}


def test_failing_squawk_gives_an_info_finding_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "squawk"
    broken.write_text("#!/bin/sh\necho 'boom' >&2\nexit 2\n")
    broken.chmod(0o755)
    monkeypatch.setattr(lint_squawk, "find_squawk", lambda: str(broken))
    finding = only(lint_sql("ALTER TABLE users DROP COLUMN old;"), "squawk-unavailable")
    assert finding["severity"] == "info" and "exit 2" in finding["message"]


def test_squawk_duplicates_of_our_checks_are_dropped() -> None:
    findings = lint_sql("ALTER TABLE users DROP COLUMN old;")
    assert "ban-drop-column" not in rules(findings, "squawk")


# --- our SQL checks: each fires, and its safe counterpart does not ------------------------------


def test_drop_table_is_a_data_loss_error() -> None:
    finding = only(lint_sql("DROP TABLE hives;", row_counts={"hives": 12}), "drop-table")
    assert finding["severity"] == "error" and "12 rows" in finding["message"]
    assert "drop-table" not in rules(lint_sql("CREATE TABLE hives (id BIGINT PRIMARY KEY);"))


def test_drop_column_is_a_data_loss_error() -> None:
    finding = only(lint_sql('ALTER TABLE users DROP COLUMN "Legacy";'), "drop-column")
    assert finding["severity"] == "error" and finding["object"] == "users.Legacy"
    assert rules(lint_sql("ALTER TABLE users DROP CONSTRAINT uq_email;")) == set()


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users RENAME COLUMN name TO full_name;",
        "ALTER TABLE users RENAME name TO full_name;",  # Alembic: new_column_name=
    ],
)
def test_column_rename_is_a_warning_for_running_app_code(sql: str) -> None:
    finding = only(lint_sql(sql), "rename-column")
    assert finding["severity"] == "warning" and finding["object"] == "users.name"
    assert "rename-column" not in rules(lint_sql("ALTER TABLE users RENAME CONSTRAINT a TO b;"))


def test_drop_and_add_column_in_one_revision_is_a_rename_seen_as_drop_add() -> None:
    sql = (
        "-- Running upgrade a1 -> b2\n"
        "ALTER TABLE users ADD COLUMN full_name VARCHAR(200);\n"
        "ALTER TABLE users DROP COLUMN name;\n"
    )
    finding = only(lint_sql(sql), "rename-as-drop-add")
    assert finding["severity"] == "error"
    assert (finding["object"], finding["revision"]) == ("users.name", "b2")
    assert "full_name" in finding["message"]


def test_drop_and_add_in_different_revisions_or_tables_is_not_a_rename() -> None:
    sql = (
        "-- Running upgrade a1 -> b2\nALTER TABLE users ADD COLUMN full_name VARCHAR(200);\n"
        "ALTER TABLE hives DROP COLUMN name;\n"
        "-- Running upgrade b2 -> c3\nALTER TABLE users DROP COLUMN name;\n"
    )
    assert "rename-as-drop-add" not in rules(lint_sql(sql))


def test_add_not_null_column_without_default_fails_on_a_table_with_rows() -> None:
    sql = "ALTER TABLE users ADD COLUMN full_name VARCHAR(200) NOT NULL;"
    finding = only(lint_sql(sql, row_counts=SMALL), "not-null-without-default")
    assert finding["severity"] == "error" and "10 existing rows" in finding["message"]
    unknown = only(lint_sql(sql), "not-null-without-default")
    assert unknown["severity"] == "warning" and "if users has rows" in unknown["message"]
    assert "not-null-without-default" not in rules(lint_sql(sql, row_counts=EMPTY))


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN full_name VARCHAR(200);",
        "ALTER TABLE users ADD COLUMN full_name VARCHAR(200) DEFAULT '' NOT NULL;",
        "ALTER TABLE users ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY NOT NULL;",
    ],
)
def test_nullable_or_defaulted_new_columns_are_safe(sql: str) -> None:
    assert not has_errors(lint_sql(sql, row_counts=LARGE))
    assert "not-null-without-default" not in rules(lint_sql(sql, row_counts=LARGE))


def test_set_not_null_without_backfill_fails_on_a_table_with_rows() -> None:
    sql = "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;"
    assert only(lint_sql(sql, row_counts=SMALL), "set-not-null")["severity"] == "error"
    assert "if users has rows" in only(lint_sql(sql), "set-not-null")["message"]
    assert "set-not-null" not in rules(lint_sql(sql, row_counts=EMPTY))


def test_set_not_null_after_a_backfill_or_default_is_not_an_error() -> None:
    backfilled = (
        "ALTER TABLE users ADD COLUMN full_name TEXT;\n"
        "UPDATE users SET full_name = 'x';\n"
        "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;\n"
    )
    after_backfill = only(lint_sql(backfilled, row_counts=SMALL), "set-not-null-after-backfill")
    assert after_backfill["severity"] == "info"
    defaulted = (
        "ALTER TABLE users ADD COLUMN full_name TEXT DEFAULT 'x';\n"
        "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;\n"
    )
    for sql in (backfilled, defaulted):
        assert not has_errors(lint_sql(sql, row_counts=SMALL))


def test_a_table_created_in_the_same_sql_counts_as_empty() -> None:
    sql = (
        "CREATE TABLE frames (id BIGINT PRIMARY KEY);\n"
        "ALTER TABLE frames ADD COLUMN hive_id BIGINT NOT NULL;\n"
        "CREATE INDEX ix_frames_hive_id ON frames (hive_id);\n"
    )
    findings = lint_sql(sql, row_counts={"frames": 1_000_000})
    assert rules(findings) == set()
    assert not has_errors(findings)


def test_create_index_on_a_large_table_without_concurrently_is_a_warning() -> None:
    sql = "CREATE INDEX ix_users_email ON users (email);"
    finding = only(lint_sql(sql, row_counts=LARGE), "create-index-not-concurrently")
    assert finding["severity"] == "warning" and "online.create_index" in finding["fix"]


def test_create_index_concurrently_or_on_a_small_table_is_fine() -> None:
    concurrently = lint_sql("CREATE INDEX CONCURRENTLY ix ON users (email);", row_counts=LARGE)
    assert "create-index-not-concurrently" not in rules(concurrently)
    small = lint_sql("CREATE INDEX ix_users_email ON users (email);", row_counts=SMALL)
    assert "create-index-not-concurrently" not in rules(small)
    assert only(small, "require-concurrent-index-creation")["severity"] == "info"
    assert lint_sql("CREATE INDEX ix ON users (email);", large_table_rows=5, row_counts=SMALL)[
        "rule"
    ].eq("create-index-not-concurrently").any()


def test_alter_column_type_is_a_warning() -> None:
    findings = lint_sql("ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(50);")
    finding = only(findings, "alter-column-type")
    assert finding["severity"] == "warning" and "VARCHAR(50)" in finding["message"]
    set_default = lint_sql("ALTER TABLE users ALTER COLUMN email SET DEFAULT '';")
    assert "alter-column-type" not in rules(set_default)


# --- MySQL's SQL (dialect="mysql"): our checks alone, reading MODIFY and CHANGE ----------------

# What `alembic upgrade --sql` renders for MySQL from Soft-Bee's full_name revision.
MYSQL_BACKFILL = """-- Running upgrade b1 -> c2

ALTER TABLE users ADD COLUMN full_name VARCHAR(200);

UPDATE users SET full_name=(concat(users.first_name, ' ', users.last_name));

ALTER TABLE users MODIFY full_name VARCHAR(200) NOT NULL;

UPDATE alembic_version SET version_num='c2' WHERE alembic_version.version_num = 'b1';
"""
# The live definitions, as migrate.schema_of reads them from MariaDB.
LIVE_USERS = {"users": {"id": "INTEGER NOT NULL", "email": "VARCHAR(255) NOT NULL",
                        "username": "VARCHAR(80) NOT NULL", "nickname": "VARCHAR(40)",
                        "index uq_users_email": "email"}}


def test_mysql_sql_skips_squawk_with_a_note_instead_of_reporting_syntax_errors() -> None:
    findings = lint_sql(MYSQL_BACKFILL, row_counts=SMALL, dialect="mysql")
    assert rules(findings, "squawk") == {"squawk-skipped"}
    skipped = only(findings, "squawk-skipped")
    assert skipped["severity"] == "info" and "PostgreSQL only" in skipped["message"]
    assert lint_sql("", dialect="mysql").empty  # nothing to lint: nothing to say either


def test_mysql_backfill_then_modify_not_null_is_the_guides_pattern_as_on_postgresql() -> None:
    findings = lint_sql(MYSQL_BACKFILL, row_counts=SMALL, dialect="mysql", columns=LIVE_USERS)
    assert rules(findings) == {"set-not-null-after-backfill"}
    assert only(findings, "set-not-null-after-backfill")["object"] == "users.full_name"
    assert not has_errors(findings)


@pytest.mark.parametrize(
    ("statement", "rule", "severity"),
    [
        ("ALTER TABLE users MODIFY email VARCHAR(50) NOT NULL", "narrowing-type", "error"),
        ("ALTER TABLE users MODIFY email VARCHAR(400) NOT NULL", "alter-column-type", "warning"),
        ("ALTER TABLE users MODIFY nickname VARCHAR(40) NOT NULL", "set-not-null", "error"),
    ],
    ids=["narrowed", "widened", "made-not-null"],
)
def test_mysql_modify_is_read_against_the_live_definition(statement: str, rule: str, severity: str) -> None:
    finding = only(lint_sql(f"{statement};", row_counts=SMALL, dialect="mysql", columns=LIVE_USERS), rule)
    assert finding["severity"] == severity and finding["source"] == "softbee"


def test_mysql_modify_restating_the_same_definition_is_no_finding() -> None:
    sql = "ALTER TABLE users MODIFY email VARCHAR(255) NOT NULL DEFAULT '';"
    assert rules(lint_sql(sql, row_counts=SMALL, dialect="mysql", columns=LIVE_USERS)) == set()


def test_mysql_modify_without_the_live_definition_warns_and_never_errors() -> None:
    findings = lint_sql("ALTER TABLE users MODIFY email VARCHAR(50) NOT NULL;", row_counts=SMALL,
                        dialect="mysql")
    assert only(findings, "set-not-null")["severity"] == "warning"
    assert "not known here" in only(findings, "set-not-null")["message"]
    assert not has_errors(findings)


def test_mysql_change_with_a_new_name_is_a_rename() -> None:
    sql = "ALTER TABLE users CHANGE username handle VARCHAR(80) NOT NULL;"
    findings = lint_sql(sql, row_counts=SMALL, dialect="mysql", columns=LIVE_USERS)
    assert rules(findings) == {"rename-column"}
    assert only(findings, "rename-column")["object"] == "users.username"


@pytest.mark.parametrize("action", ["DROP INDEX uq_users_email", "DROP KEY uq_users_email",
                                    "DROP FOREIGN KEY fk_users_x", "ADD INDEX ix (email)"])
def test_mysql_index_and_key_clauses_are_not_columns(action: str) -> None:
    """``DROP INDEX`` (MySQL's drop of a unique constraint) is no column drop, nor a data loss."""
    sql = f"ALTER TABLE users {action};"
    assert rules(lint_sql(sql, row_counts=SMALL, dialect="mysql")) == set()
    assert lint.destructive_statements(sql) == []


def test_mysql_index_builds_are_not_asked_for_concurrently() -> None:
    """InnoDB builds a secondary index without blocking writes; CONCURRENTLY is PostgreSQL's."""
    sql = "CREATE INDEX ix_users_email ON users (email);"
    assert "create-index-not-concurrently" not in rules(lint_sql(sql, row_counts=LARGE, dialect="mysql"))
    assert "create-index-not-concurrently" in rules(lint_sql(sql, row_counts=LARGE))


# --- autogenerate diff -------------------------------------------------------------------------


def test_diff_removals_are_data_loss_errors() -> None:
    findings = lint_diff(
        diff(("remove_table", "hives", None, ""), ("remove_column", "users", "legacy", "TEXT")),
        row_counts={"hives": 3},
    )
    assert only(findings, "drop-table")["severity"] == "error"
    assert "3 rows" in only(findings, "drop-table")["message"]
    assert only(findings, "drop-column")["object"] == "users.legacy"
    assert only(findings, "drop-column")["revision"] is None
    additions = diff(("add_table", "hives", None, ""), ("add_column", "users", "x", "TEXT"))
    assert rules(lint_diff(additions)) == set()


def test_diff_drop_and_add_of_a_compatible_type_is_a_possible_rename() -> None:
    findings = lint_diff(
        diff(
            ("remove_column", "users", "name", "VARCHAR(100)"),
            ("add_column", "users", "full_name", "TEXT"),
        )
    )
    finding = only(findings, "rename-as-drop-add")
    assert finding["severity"] == "error" and "possible rename" in finding["message"]
    incompatible = lint_diff(
        diff(
            ("remove_column", "users", "name", "VARCHAR(100)"),
            ("add_column", "users", "age", "INTEGER"),
        )
    )
    assert "rename-as-drop-add" not in rules(incompatible)


def test_diff_add_not_null_column_without_server_default_fails_on_rows() -> None:
    required = ("add_column", "users", "full_name", "VARCHAR(200) NOT NULL")
    assert only(lint_diff(diff(required), LARGE), "not-null-without-default")["severity"] == "error"
    defaulted = ("add_column", "users", "full_name", "VARCHAR(200) NOT NULL DEFAULT ''")
    assert rules(lint_diff(diff(defaulted), LARGE)) == set()


def test_diff_modify_nullable_to_not_null_fails_on_a_table_with_rows() -> None:
    to_not_null = diff(("modify_nullable", "users", "email", "True -> False"))
    assert only(lint_diff(to_not_null, SMALL), "set-not-null")["severity"] == "error"
    assert only(lint_diff(to_not_null), "set-not-null")["severity"] == "warning"
    assert rules(lint_diff(to_not_null, EMPTY)) == set()
    to_nullable = diff(("modify_nullable", "users", "email", "False -> True"))
    assert rules(lint_diff(to_nullable, SMALL)) == set()


def test_diff_add_index_on_a_large_table_is_a_warning() -> None:
    index = diff(("add_index", "users", "email", "ix_users_email"))
    finding = only(lint_diff(index, LARGE), "create-index-not-concurrently")
    assert finding["severity"] == "warning" and "online.create_index" in finding["fix"]
    assert rules(lint_diff(index, SMALL)) == set()
    new_table = diff(("add_table", "users", None, ""), ("add_index", "users", "email", "ix"))
    assert rules(lint_diff(new_table, LARGE)) == set()


@pytest.mark.parametrize(
    "detail",
    [
        "VARCHAR(200) -> VARCHAR(50)",
        "TEXT -> VARCHAR(50)",
        "NUMERIC(10, 2) -> INTEGER",
        "BIGINT -> INTEGER",
        "FLOAT -> INTEGER",
        "NUMERIC(12, 4) -> NUMERIC(12, 2)",
        "VARCHAR(20) -> INTEGER",
        "String(length=200) -> String(length=50)",
    ],
)
def test_diff_narrowing_type_change_is_an_error(detail: str) -> None:
    finding = only(lint_diff(diff(("modify_type", "users", "col", detail))), "narrowing-type")
    assert finding["severity"] == "error" and detail in finding["message"]


@pytest.mark.parametrize(
    "detail",
    [
        "VARCHAR(50) -> VARCHAR(200)",
        "VARCHAR(50) -> TEXT",
        "INTEGER -> BIGINT",
        "INTEGER -> NUMERIC(12, 2)",
        "TIMESTAMP WITHOUT TIME ZONE -> TIMESTAMP WITH TIME ZONE",
        "MYSTERY -> ???",
    ],
)
def test_diff_widening_or_unreadable_type_change_is_only_a_warning(detail: str) -> None:
    findings = lint_diff(diff(("modify_type", "users", "col", detail)))
    assert only(findings, "alter-column-type")["severity"] == "warning"
    assert not has_errors(findings)


def test_diff_other_destructive_operations_are_warnings() -> None:
    findings = lint_diff(
        diff(("remove_fk", "hives", None, "fk_hives_apiary"), ("add_fk", "hives", None, "fk"))
    )
    assert only(findings, "destructive-operation")["severity"] == "warning"
    assert "fk_hives_apiary" in only(findings, "destructive-operation")["message"]
