"""fleet: every target's alembic_version placed against the scripts, read without a kernel."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from softbee.runbook import cli
from softbee.runbook.fleet.status import (
    AHEAD,
    AT_HEAD,
    BEHIND,
    SEVERAL,
    UNKNOWN,
    UNREACHABLE,
    fleet_status,
    status_rows,
)
from softbee.runbook.fleet.targets import load_targets
from tests.conftest import PG_DRIVERS, create_pg_database, drop_pg_database, with_driver
from tests.helpers import FULL_NAME, HEAD, MIGRATIONS, VARROA


def stamped_sqlite(path: Path, *revisions: str, table: bool = True) -> str:
    """A SQLite file whose alembic_version records ``revisions`` (no table when ``table`` is False)."""
    with sqlite3.connect(path) as conn:
        if table:
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            conn.executemany("INSERT INTO alembic_version VALUES (?)", [(r,) for r in revisions])
    return f"sqlite:///{path}"


def targets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]) -> Path:
    """A targets file with one target per entry, its URL in TARGET_<n>_URL."""
    lines = ["targets:"]
    for number, (name, url) in enumerate(urls.items()):
        monkeypatch.setenv(f"TARGET_{number}_URL", url)
        lines.append(f"  - {{name: {name}, url_env: TARGET_{number}_URL}}")
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def mixed_fleet(tmp_path, monkeypatch) -> Path:
    return targets_file(tmp_path, monkeypatch, {
        "head-1": stamped_sqlite(tmp_path / "h1.db", HEAD),
        "head-2": stamped_sqlite(tmp_path / "h2.db", HEAD),
        "one-behind": stamped_sqlite(tmp_path / "b1.db", VARROA),
        "empty": stamped_sqlite(tmp_path / "empty.db", table=False),
        "stranger": stamped_sqlite(tmp_path / "u.db", "deadbeef0000"),
        "branched": stamped_sqlite(tmp_path / "s.db", HEAD, FULL_NAME),
        "gone": f"sqlite:///{tmp_path / 'no-such-file.db'}",
        "refused": "postgresql://postgres:not-this-one@127.0.0.1:1/x",
    })


def test_each_state_is_named_with_its_distance(mixed_fleet):
    status = fleet_status(load_targets(mixed_fleet), MIGRATIONS)
    by_name = {t.name: t for t in status.targets}
    assert status.heads == (HEAD,)
    assert (by_name["head-1"].state, by_name["head-1"].revision) == (AT_HEAD, HEAD)
    assert (by_name["one-behind"].label, by_name["one-behind"].revision) == ("behind by 1", VARROA)
    assert (by_name["empty"].label, by_name["empty"].revision) == ("behind by 8", "base")
    assert by_name["stranger"].state == UNKNOWN
    assert by_name["branched"].state == SEVERAL
    assert by_name["gone"].state == UNREACHABLE and "no SQLite file" in by_name["gone"].detail
    assert by_name["refused"].state == UNREACHABLE
    assert "not-this-one" not in json.dumps(status.to_json())
    assert not status.all_at_head


def test_ahead_is_measured_against_a_chosen_revision(mixed_fleet):
    status = fleet_status(load_targets(mixed_fleet), MIGRATIONS, to=VARROA)
    by_name = {t.name: t for t in status.targets}
    assert (by_name["head-1"].state, by_name["head-1"].steps) == (AHEAD, 1)
    assert by_name["one-behind"].state == AT_HEAD


def test_identical_states_collapse_into_one_row(mixed_fleet):
    rows = status_rows(fleet_status(load_targets(mixed_fleet), MIGRATIONS))
    assert rows[0] == ("2", "at head", HEAD, "head-1, head-2")
    assert [row[1] for row in rows] == [
        "at head", "behind by 1", "behind by 8", "several heads", "unknown revision",
        "unreachable"]


def test_cli_table_summary_and_exit_code(mixed_fleet, capsys):
    assert cli.main(["fleet", "status", str(mixed_fleet), "--migrations-dir", str(MIGRATIONS)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        f"8 target(s), head {HEAD}: 2 at head, 2 behind, 1 several heads, 1 unknown revision, "
        "2 unreachable")
    assert "unreachable: refused: " in out and "not-this-one" not in out


def test_cli_json_and_exit_0_when_all_at_head(tmp_path, monkeypatch, capsys):
    path = targets_file(tmp_path, monkeypatch, {
        f"t{n}": stamped_sqlite(tmp_path / f"t{n}.db", HEAD) for n in range(3)})
    assert cli.main(["fleet", "status", str(path), "--json",
                     "--migrations-dir", str(MIGRATIONS)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["all_at_head"] is True and data["counts"] == {"at head": 3}


def test_a_missing_migrations_folder_is_one_line(mixed_fleet, tmp_path, capsys):
    code = cli.main(["fleet", "status", str(mixed_fleet), "--migrations-dir", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_postgresql_targets_are_read_and_grouped_by_server(tmp_path, monkeypatch, driver):
    """psycopg2 reads directly (a missing version table is base), psycopg 3 through SQLAlchemy."""
    import sqlalchemy as sa

    created = [create_pg_database() for _ in range(2)]
    urls = [with_driver(url, driver) for url in created]
    try:
        engine = sa.create_engine(urls[0])
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            conn.execute(sa.text(f"INSERT INTO alembic_version VALUES ('{HEAD}')"))
        engine.dispose()
        path = targets_file(tmp_path, monkeypatch, {"pg-head": urls[0], "pg-empty": urls[1]})
        status = fleet_status(load_targets(path), MIGRATIONS, per_server=1)
        by_name = {t.name: t for t in status.targets}
        assert by_name["pg-head"].state == AT_HEAD
        assert by_name["pg-empty"].state == BEHIND and by_name["pg-empty"].revision == "base"
        assert by_name["pg-head"].server == by_name["pg-empty"].server
    finally:
        for url in created:
            drop_pg_database(url)


@pytest.mark.notebook
def test_the_fleet_runbook_shows_the_table_the_chart_and_the_failures(tmp_path, monkeypatch):
    from softbee.runbook.archive import append_record
    from softbee.runbook.run.execute import run_runbook

    path = targets_file(tmp_path, monkeypatch, {
        "t-head": stamped_sqlite(tmp_path / "a.db", HEAD),
        "t-behind": stamped_sqlite(tmp_path / "b.db", VARROA)})
    archive_dir = tmp_path / "archive"
    append_record(archive_dir, {
        "kind": "fleet", "run_id": "f00000000001", "fleet_id": "f00000000001",
        "runbook": "upgrade_downgrade", "status": "stopped", "stopped": "failure limit reached",
        "targets": [
            {"name": "t-head", "stage": "wave 1", "status": "passed", "run_id": "r1",
             "revision_before": VARROA, "revision_after": HEAD},
            {"name": "t-behind", "stage": "wave 1", "status": "failed", "run_id": "r2",
             "revision_before": VARROA, "revision_after": VARROA,
             "error": "DataLossError: would drop rows", "html": "/archive/r2.html"}]})
    run = run_runbook("fleet", values={"targets_file": str(path),
                                       "migrations_dir": str(MIGRATIONS)},
                      archive_dir=archive_dir, cwd=tmp_path)
    assert run.passed, run.record.get("error")
    text = run.notebook.read_text()
    assert "2 target(s), head " in text and "1 at head, 1 behind" in text
    assert "Fleet run `f00000000001`" in text
    assert "DataLossError: would drop rows" in text and "/archive/r2.html" in text
    assert "image/png" in text


def test_a_target_ahead_is_not_at_head_and_fails_the_cli(tmp_path, monkeypatch, capsys):
    path = targets_file(tmp_path, monkeypatch, {
        "at-release": stamped_sqlite(tmp_path / "r.db", VARROA),
        "past-release": stamped_sqlite(tmp_path / "p.db", HEAD),
    })
    status = fleet_status(load_targets(path), MIGRATIONS, to=VARROA)
    assert not status.all_at_head and status.counts() == {"at head": 1, "ahead": 1}
    assert cli.main(["fleet", "status", str(path), "--json", "--to", VARROA,
                     "--migrations-dir", str(MIGRATIONS)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["all_at_head"] is False and data["counts"] == {"at head": 1, "ahead": 1}
