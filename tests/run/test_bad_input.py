"""Bad input through ``softbee-runbook run``: one line, non-zero exit, database unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_postgres
from tests.helpers import (
    FULL_NAME,
    HEAD,
    VARROA,
    assert_one_clear_line,
    migrations_with_extra_revision,
    project_at,
    run_cli,
    snapshot,
)

pytestmark = pytest.mark.notebook


# (runbook, parameters, words the error line must contain): these reach the database,
# so they run on SQLite and on PostgreSQL.
DATABASE_CASES = {
    "unknown revision": ("upgrade_downgrade", ["-p", "target", "nope"], ["Can't locate", "nope"]),
    "downgrade below base": ("upgrade_downgrade", ["-p", "direction", "downgrade", "-p", "target", "-9"],
                             ["cannot downgrade 9 step(s)"]),
    "fix_sql syntax error": ("recover_stamp", ["-p", "fix_sql", "ALTR TABLE users", "-p", "dry_run", "false"],
                             ["fix_sql statement 1", "nothing changed"]),
    "stamp unknown revision": ("recover_stamp", ["-p", "stamp_revision", "0badc0ffee00", "-p", "dry_run",
                                                 "false"], ["0badc0ffee00"]),
}
# These fail before any connection is made: one database is enough to show nothing changed.
PROJECT_CASES = {
    "wrong parameter type": ("upgrade_downgrade", ["-p", "round_trip", "maybe"], ["round_trip", "bool"]),
    "missing migrations dir": ("upgrade_downgrade", ["-p", "migrations_dir", "no_such_dir"], ["env.py missing"]),
    "app does not import": ("upgrade_downgrade", ["-p", "app", "no_such_pkg_xyz:app"], ["did not load"]),
    "not a Flask app": ("upgrade_downgrade", ["-p", "app", "softbee.urls:MASK"], ["valid Flask application"]),
}


def _check_case(case: tuple[str, list[str], list[str]], url: str, tmp_path: Path) -> None:
    runbook, params, needles = case
    project_at(url, FULL_NAME, rows=30)
    before = snapshot(url)
    result = run_cli(runbook, *params, env={"DATABASE_URL": url}, archive=tmp_path / "archive")
    assert_one_clear_line(result, *needles)
    assert snapshot(url) == before


@pytest.mark.parametrize("case", list(DATABASE_CASES))
def test_bad_input_is_one_line_and_changes_nothing(case: str, database_url: str, tmp_path: Path) -> None:
    _check_case(DATABASE_CASES[case], database_url, tmp_path)


@pytest.mark.parametrize("case", list(PROJECT_CASES))
def test_bad_project_input_is_one_line_and_changes_nothing(case: str, sqlite_url: str, tmp_path: Path) -> None:
    _check_case(PROJECT_CASES[case], sqlite_url, tmp_path)


def test_ambiguous_revision_is_refused(database_url: str, tmp_path: Path) -> None:
    migrations = migrations_with_extra_revision(tmp_path, HEAD[:4] + "ffff0009", HEAD)
    project_at(database_url, VARROA, rows=20, migrations_dir=migrations)
    before = snapshot(database_url)
    result = run_cli("upgrade_downgrade", "-p", "migrations_dir", str(migrations), "-p", "target", HEAD[:4],
                     env={"DATABASE_URL": database_url}, archive=tmp_path / "archive")
    assert_one_clear_line(result, "ambiguous")
    assert snapshot(database_url) == before


def test_several_heads_are_refused_with_the_merge_command(database_url: str, tmp_path: Path) -> None:
    migrations = migrations_with_extra_revision(tmp_path, "feedface0001", FULL_NAME)
    project_at(database_url, FULL_NAME, rows=20, migrations_dir=migrations)
    before = snapshot(database_url)
    result = run_cli("upgrade_downgrade", "-p", "migrations_dir", str(migrations),
                     env={"DATABASE_URL": database_url}, archive=tmp_path / "archive")
    assert_one_clear_line(result, "2 heads", "flask db merge")
    assert snapshot(database_url) == before


def test_malformed_url_is_refused(tmp_path: Path) -> None:
    result = run_cli("inspect_diff", env={"DATABASE_URL": "postgresql://u:hunter2@host:notaport/db"},
                     archive=tmp_path / "archive")
    assert_one_clear_line(result)
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.postgres
def test_unreachable_host_is_refused_without_the_password(tmp_path: Path) -> None:
    require_postgres()
    result = run_cli("upgrade_downgrade", env={"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/softbee"},
                     archive=tmp_path / "archive")
    assert_one_clear_line(result, "cannot connect", "Connection refused")
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.postgres
def test_bad_credentials_are_refused_and_change_nothing(postgres_url: str, tmp_path: Path) -> None:
    # The local server trusts every password, so an unknown role stands in for wrong credentials.
    from sqlalchemy.engine import make_url

    project_at(postgres_url, FULL_NAME, rows=10)
    before = snapshot(postgres_url)
    bad = make_url(postgres_url).set(username="no_such_role", password="hunter2")
    result = run_cli("upgrade_downgrade", env={"DATABASE_URL": bad.render_as_string(hide_password=False)},
                     archive=tmp_path / "archive")
    assert_one_clear_line(result, "no_such_role")
    assert "hunter2" not in result.stdout + result.stderr
    assert snapshot(postgres_url) == before


def test_a_password_in_fix_sql_reaches_neither_the_terminal_nor_the_archive(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The real recover_stamp runbook, a fix that fails while setting a role's password."""
    secret = "S3cretPW99"
    project_at(sqlite_url, FULL_NAME)
    archive = tmp_path / "archive"
    result = run_cli("recover_stamp", "-p", "fix_sql",
                     f"CREATE ROLE r LOGIN PASSWORD '{secret}' VALID UNTILL 'x'",
                     env={"DATABASE_URL": sqlite_url}, archive=archive)
    assert_one_clear_line(result, "fix_sql statement 1", "PASSWORD '***'")
    assert secret not in result.stdout + result.stderr
    files = [p for p in archive.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".ipynb", ".html", ".jsonl"}
    assert not [p for p in files if secret.encode() in p.read_bytes()]
