"""``archive verify --database``: the archive and a database's history checked against each other.

Each test makes real runs on a real database (their rows are the database's), archives a
record with the facts those runs recorded, then tampers with one side in a way the chain
alone does not catch (a record deleted and the chain rebuilt, a record rewritten and the
chain rebuilt) or with the database (a history row deleted), and asserts the other side
names it. One test goes end to end: ``softbee-runbook run`` twice, then ``archive verify
--database`` and ``--targets`` from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from softbee.runbook.archive.chain import HEAD_NAME, INDEX_NAME, append_record, read_index, verify_archive
from softbee.runbook.cli import main
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import RunbookError
from softbee.runbook.history import recorder
from softbee.runbook.history.vouch import verify_database
from softbee.runbook.project import load_project
from softbee.runbook.util.history_name import HISTORY_TABLE, RUN_ID_ENV
from tests.helpers import FULL_NAME, HEAD, MIGRATIONS, VARROA, history_rows, project_at, run_cli


def archived_run(archive: Path, url: str, run_id: str, monkeypatch: pytest.MonkeyPatch,
                 target: str, direction: str = "upgrade") -> dict[str, Any]:
    """Migrate ``url`` as run ``run_id`` and archive its record with the facts it recorded."""
    facts: dict[str, Any] = {}
    monkeypatch.setattr(recorder, "notebook_facts", lambda **kw: facts.update(kw))
    monkeypatch.setenv(RUN_ID_ENV, run_id)
    project = load_project(database_url=url, migrations_dir=str(MIGRATIONS))
    with project.connect() as conn:
        before = ",".join(conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                          .scalars()) if sa.inspect(conn).has_table("alembic_version") else ""
    status = "passed"
    try:
        run_migration(project, direction, target)
    except RunbookError:
        status = "failed"
    finally:
        project.engine.dispose()
    return append_record(archive, {
        "run_id": run_id, "runbook": "upgrade_downgrade", "status": status,
        "revision_before": before or "base", "database": project.identity(),
        "extra_facts": {"history": facts["history"]}})


def rebuild_chain(archive: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole chain as someone covering their tracks would: every hash recomputed."""
    (archive / INDEX_NAME).unlink()
    (archive / HEAD_NAME).unlink()
    for record in records:
        append_record(archive, record)
    assert verify_archive(archive) == []  # the chain alone holds


@pytest.fixture
def two_runs(any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "archive"
    archived_run(archive, any_database_url, "aaaa00000001", monkeypatch, FULL_NAME)
    archived_run(archive, any_database_url, "bbbb00000002", monkeypatch, "head")
    assert verify_database(archive, any_database_url).problems == []
    return archive, any_database_url


def test_two_runs_and_their_rows_agree(two_runs: tuple[Path, str]) -> None:
    archive, url = two_runs
    found = verify_database(archive, url)
    assert found.runs_checked == 2 and found.line().endswith(
        f"OK, 2 run(s) agree with the archive (database {found.database_id})")


def test_a_deleted_archive_record_is_caught_by_the_database(two_runs: tuple[Path, str]) -> None:
    archive, url = two_runs
    rebuild_chain(archive, [r for r in read_index(archive) if r["run_id"] != "bbbb00000002"])

    [problem] = verify_database(archive, url).problems
    assert "run bbbb00000002" in str(problem) and "no archived record" in str(problem)
    assert f"{VARROA} -> {HEAD} applied" in str(problem)


def test_a_rewritten_chain_is_caught_by_the_database(two_runs: tuple[Path, str]) -> None:
    archive, url = two_runs
    records = read_index(archive)
    rewritten = json.loads(json.dumps(records))
    rewritten[1]["extra_facts"]["history"]["rows"] = 1
    rewritten[1]["revision_before"] = VARROA
    rebuild_chain(archive, rewritten)  # one of its two revisions "never happened"

    problems = [str(p) for p in verify_database(archive, url).problems]
    assert len(problems) == 2 and all("run bbbb00000002" in p for p in problems)
    assert "says it wrote 1 history row(s)" in problems[0] and "the database has 2" in problems[0]
    assert f"archived as starting at {VARROA}" in problems[1]


def test_a_deleted_history_row_is_caught_by_the_archive(two_runs: tuple[Path, str]) -> None:
    archive, url = two_runs
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        last = max(row.id for row in history_rows(url))
        conn.execute(sa.text(f"DELETE FROM {HISTORY_TABLE} WHERE id = :id"), {"id": last})
    engine.dispose()

    [problem] = verify_database(archive, url).problems
    assert "run bbbb00000002" in str(problem)
    assert "says it wrote 2 history row(s)" in str(problem) and "the database has 1" in str(problem)


@pytest.mark.parametrize("any_database_url", ["sqlite"], indirect=True)
def test_every_row_of_a_run_deleted_is_caught_and_a_rolled_back_run_agrees(
    two_runs: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.seed import seed_database

    archive, url = two_runs
    engine = sa.create_engine(url)
    seed_database(engine, rows=5, seed=7)
    engine.dispose()
    archived_run(archive, url, "cccc00000003", monkeypatch, "base", direction="downgrade")
    assert history_rows(url)[-1].outcome == "rolled back"  # the loss guard refused it
    assert verify_database(archive, url).problems == []
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {HISTORY_TABLE} WHERE run_id = 'cccc00000003'"))
    engine.dispose()

    [problem] = verify_database(archive, url).problems
    assert "run cccc00000003" in str(problem) and "deleted by hand" in str(problem)


@pytest.mark.notebook
def test_archive_verify_database_and_targets_from_the_command_line(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    for target in (FULL_NAME, "head"):
        done = run_cli("upgrade_downgrade", "-p", "database_url", sqlite_url,
                       "-p", "target", target, archive=archive)
        assert done.returncode == 0, done.stderr
    rows = history_rows(sqlite_url)
    assert {r.run_id for r in rows} == {r["run_id"] for r in read_index(archive)}
    targets = tmp_path / "targets.yml"
    targets.write_text(f"targets:\n  - name: tenant-a\n    url: {sqlite_url}\n")

    code = main(["archive", "verify", "--archive-dir", str(archive), "--database", sqlite_url,
                 "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK, 2 run(s) agree with the archive" in out and "tenant-a: OK" in out

    first, second = read_index(archive)
    for key in ("notebook", "html"):  # the second run deleted, files and all
        (archive / second[key]).unlink()
    rebuild_chain(archive, [first])
    code = main(["archive", "verify", "--archive-dir", str(archive), "--database", sqlite_url])
    out = capsys.readouterr().out
    assert code == 1 and f"run {second['run_id']}" in out and "no archived record" in out


@pytest.mark.postgres
def test_reading_a_locked_history_is_bounded_and_said_in_one_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softbee.runbook.errors import DatabaseError
    from softbee.runbook.history import vouch

    project_at(postgres_url, FULL_NAME)
    monkeypatch.setattr(vouch, "READ_TIMEOUT_MS", 300)
    holder = sa.create_engine(postgres_url)
    try:
        with holder.connect() as conn:
            conn.exec_driver_sql(f"LOCK TABLE {HISTORY_TABLE} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(DatabaseError) as refused:
                verify_database(tmp_path / "archive", postgres_url)
            conn.rollback()
    finally:
        holder.dispose()
    message = str(refused.value)
    assert "lock timeout" in message and "\n" not in message
