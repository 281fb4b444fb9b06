"""Splitting SQL text into statements, as lint and recover read it."""

from __future__ import annotations

from softbee.runbook.util.sqltext import split_sql


def test_semicolons_inside_quotes_dollar_quotes_and_comments_do_not_split() -> None:
    sql = (
        "INSERT INTO t VALUES ('a;b', 'it''s;');\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "/* a; comment */ SELECT 2; -- trailing; comment\n"
    )
    texts = [s.text for s in split_sql(sql)]
    assert texts == [
        "INSERT INTO t VALUES ('a;b', 'it''s;')",
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        "SELECT 2",
    ]


def test_each_statement_remembers_the_revision_alembic_marked() -> None:
    sql = (
        "CREATE TABLE a (id int);\n"
        "-- Running upgrade 111 -> 222\n\nALTER TABLE a ADD COLUMN b int;\n"
        "-- Running downgrade 333 -> 222\n\nALTER TABLE a DROP COLUMN b;\n"
    )
    assert [s.revision for s in split_sql(sql)] == [None, "222", "333"]


def test_code_blanks_string_contents_for_pattern_matching() -> None:
    (statement,) = split_sql("UPDATE t SET note = 'DROP TABLE users'")
    assert "DROP TABLE" not in statement.code and statement.code.startswith("UPDATE t SET note")
