"""Production's sizes: exported from a real database (no rows, no password), read back, refused when bad."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.runbook.cli import main
from softbee.runbook.errors import ReviewError
from softbee.runbook.premerge.stats import STATS_VERSION, load_stats
from tests.helpers import HEAD, project_at


def _seed_users(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n in range(rows):
            conn.execute(sa.text(
                "INSERT INTO users (email, username, password_hash, first_name, last_name, full_name, "
                "email_verified, created_at, updated_at) VALUES (:e, 'u', 'secret-hash-value', 'Ann', "
                "'Bee', 'Ann Bee', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"e": f"u{n}@x.org"})
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE users"))
    engine.dispose()


def _export(url: str, tmp_path, capsys) -> dict:
    out = tmp_path / "stats.json"
    code = main(["stats", "export", "--database-url", url, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert "secret-hash-value" not in text and "u0@x.org" not in text  # no row leaves the database
    return json.loads(text)


def test_sqlite_stats_count_every_table_and_read_back(sqlite_url, tmp_path, capsys):
    project_at(sqlite_url, HEAD).engine.dispose()
    _seed_users(sqlite_url, 3)

    data = _export(sqlite_url, tmp_path, capsys)

    assert data["version"] == STATS_VERSION and data["dialect"] == "sqlite"
    assert data["tables"]["users"]["rows"] == 3 and data["tables"]["hives"]["rows"] == 0
    assert "alembic_version" not in data["tables"]
    assert data["tables"]["users"]["columns"]["email"] == "VARCHAR(255)"
    assert "ix_hives_apiary_id" in data["tables"]["hives"]["indexes"]
    assert load_stats(tmp_path / "stats.json").table("USERS").rows == 3


@pytest.mark.postgres
def test_postgresql_stats_are_estimates_with_bytes_and_no_password(postgres_url, tmp_path, capsys):
    project_at(postgres_url, HEAD).engine.dispose()
    _seed_users(postgres_url, 5)
    with_password = make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)

    data = _export(with_password, tmp_path, capsys)

    users = data["tables"]["users"]
    assert users["rows"] == 5 and users["table_bytes"] > 0 and users["index_bytes"] > 0
    assert users["indexes"]["uq_users_email"]["bytes"] > 0
    assert "s3cret-pw" not in (tmp_path / "stats.json").read_text()
    assert data["database"] == make_url(postgres_url).database


@pytest.mark.mysql
def test_mariadb_stats_come_from_information_schema(mysql_url, tmp_path, capsys):
    project_at(mysql_url, HEAD).engine.dispose()
    _seed_users(mysql_url, 2)

    data = _export(mysql_url, tmp_path, capsys)

    assert data["dialect"] in ("mysql", "mariadb")
    assert data["tables"]["users"]["table_bytes"] > 0 and data["tables"]["users"]["rows"] >= 0


def test_without_a_database_the_export_is_a_usage_error(monkeypatch, tmp_path, capsys):
    assert main(["stats", "export", "-o", str(tmp_path / "s.json")]) == 2
    assert "pass --database-url or set DATABASE_URL" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    ("{not json", "cannot be read"),
    ('{"version": 99, "tables": {}}', "format version 99"),
    ('{"tables": {"users": {"rows": -4}}}', "has -4 where a count"),
    ('{"tables": []}', 'has no "tables" mapping'),
])
def test_a_bad_stats_file_is_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "stats.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ReviewError, match=message) as refused:
        load_stats(path)
    assert "\n" not in str(refused.value)


def test_a_hand_written_file_needs_only_rows_or_bytes(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text('{"tables": {"Users": {"rows": 40000000, "bytes": 1024}}}')

    users = load_stats(path).table("public.users")

    assert (users.rows, users.table_bytes, users.index_bytes) == (40_000_000, 1024, None)
