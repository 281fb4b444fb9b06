"""Issue 23 through the runbooks: a two-database app, one section per bind, each bind guarded.

The engine's own tests (tests/engine/test_binds.py) cover every case on both pairs of
databases; these run the notebooks headless on the example ``multidb_twin_hives`` to show
what a person sees: a section per bind, the one-line failure, and the recovery of one bind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softbee.runbook.archive.summary import read_summary
from tests.multidb import APP, HEAD, assemble, execute, forget_app, recorded, two_databases
from tests.notebooks import run_failing_runbook, run_runbook, step_outputs

pytestmark = pytest.mark.postgres


@pytest.fixture
def twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example; the kernel imports its app from there."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    forget_app()
    return assemble(tmp_path / "twin")


@pytest.fixture
def pg_and_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    with two_databases("sqlite", tmp_path) as urls:
        monkeypatch.setenv("AUDIT_DATABASE_URL", urls[1])
        yield urls


@pytest.fixture
def two_pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    with two_databases("postgres", tmp_path) as urls:
        monkeypatch.setenv("AUDIT_DATABASE_URL", "sqlite:///never-used.sqlite3")  # bind_urls wins
        yield urls


def _headings(nb, step: str) -> list[str]:
    return [o.data["text/markdown"] for o in step_outputs(nb, step)
            if "text/markdown" in o.get("data", {}) and o.data["text/markdown"].startswith("### Bind")]


def test_upgrade_runbook_shows_a_section_per_bind_and_migrates_both_databases(
        twin: Path, pg_and_sqlite: tuple[str, str], tmp_path: Path) -> None:
    default_url, audit_url = pg_and_sqlite
    nb = run_runbook("upgrade_downgrade", tmp_path, cwd=twin, app=APP, migrations_dir="migrations",
                     database_url=default_url)
    assert recorded(default_url) == recorded(audit_url) == HEAD
    for step in ("## 1. Preflight", "## 2. Row counts before", "## 3. Migrate"):
        headings = _headings(nb, step)
        assert [h.split("`")[1] for h in headings] == ["default", "audit"], step
    assert "(sqlite," in _headings(nb, "## 3. Migrate")[1]
    summary = read_summary(nb)
    assert summary["binds"]["audit"]["revision_after"] == HEAD
    assert summary["binds"]["default"]["revision_before"] == "base"


def test_second_bind_failing_stops_the_runbook_with_one_line_and_recover_stamp_finishes_it(
        twin: Path, two_pg: tuple[str, str], tmp_path: Path) -> None:
    default_url, audit_url = two_pg
    bind_urls = {"audit": audit_url}
    run_runbook("upgrade_downgrade", tmp_path, cwd=twin, app=APP, migrations_dir="migrations",
                database_url=default_url, bind_urls=bind_urls, target="a1000000003c")
    execute(audit_url, "CREATE TABLE audit_archive (id SERIAL PRIMARY KEY, event_id INTEGER NOT NULL)")
    # check_drift per bind sees the table made by hand in the audit database
    error, _nb = run_failing_runbook("upgrade_downgrade", tmp_path, cwd=twin, app=APP,
                                     migrations_dir="migrations", database_url=default_url,
                                     bind_urls=bind_urls)
    assert error.ename == "DriftError" and error.evalue.startswith("bind audit: ")
    assert "audit_archive" in error.evalue
    assert recorded(default_url) == recorded(audit_url) == "a1000000003c"  # refused: none moved
    error, _nb = run_failing_runbook("upgrade_downgrade", tmp_path, cwd=twin, app=APP,
                                     migrations_dir="migrations", database_url=default_url,
                                     bind_urls=bind_urls, allow_drift=True)
    assert error.ename == "BindsPartlyMigrated"
    assert error.evalue.startswith(
        f"bind default committed at {HEAD}; bind audit rolled back at a1000000003c: rerun "
        "upgrade_downgrade to finish, or fix by hand and run recover_stamp with binds=['audit']")
    nb = run_runbook("recover_stamp", tmp_path, cwd=twin, app=APP, migrations_dir="migrations",
                     database_url=default_url, bind_urls=bind_urls, binds=["audit"],
                     stamp_revision="head", dry_run=False)
    assert (recorded(default_url), recorded(audit_url)) == (HEAD, HEAD)
    assert read_summary(nb)["binds"] == {"audit": read_summary(nb)["binds"]["audit"]}
    assert read_summary(nb)["binds"]["audit"]["revision_after"] == HEAD


def test_inspect_diff_and_check_drift_show_each_binds_plan_sql_and_drift(
        twin: Path, pg_and_sqlite: tuple[str, str], tmp_path: Path) -> None:
    default_url, audit_url = pg_and_sqlite
    run_runbook("upgrade_downgrade", tmp_path, cwd=twin, app=APP, migrations_dir="migrations",
                database_url=default_url, target="a1000000003c")
    nb = run_runbook("inspect_diff", tmp_path, cwd=twin, app=APP, migrations_dir="migrations",
                     database_url=default_url)
    assert [h.split("`")[1] for h in _headings(nb, "## 4. The SQL")] == ["default", "audit"]
    sql = [o.data.get("text/markdown", "") + o.data.get("text/plain", "")
           for o in step_outputs(nb, "## 4. The SQL") if "data" in o]
    default_part, audit_part = "\n".join(sql).split("### Bind `audit`")
    assert "CREATE TABLE hive_tags" in default_part and "audit_archive" not in default_part
    assert "CREATE TABLE audit_archive" in audit_part and "hive_tags" not in audit_part
    summary = read_summary(nb)
    assert set(summary["binds"]) == {"default", "audit"}
    # The SQL comes to the review, not into the template's offline <bind>.sql files (which
    # its env.py still opens, so they exist, empty).
    assert all(path.read_text() == "" for path in twin.glob("*.sql"))
    execute(audit_url, "CREATE TABLE stray (id INTEGER)")
    error, nb = run_failing_runbook("check_drift", tmp_path, cwd=twin, app=APP,
                                    migrations_dir="migrations", database_url=default_url)
    assert error.ename == "DriftError" and error.evalue.startswith("bind audit: ")
    assert "stray" in error.evalue
    drift = read_summary(nb)["binds"]
    assert "stray" not in str(drift["default"]["drift"]) and "stray" in str(drift["audit"]["drift"])


def test_a_fleet_of_multi_database_targets_runs_upgrade_downgrade_per_bind(
        twin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23 points 1 and 4 together: the fleet hands each target's bind_urls to this runbook."""
    from sqlalchemy.engine import make_url

    from softbee.runbook.cli import main
    from tests.conftest import create_pg_database, drop_pg_database

    made = [create_pg_database() for _ in range(3)]
    try:
        a, a_audit, b = (make_url(url).set(password="fleet-pw").render_as_string(hide_password=False)
                         for url in made)  # the test server trusts: any password connects
        b_audit = f"sqlite:///{tmp_path / 'b-audit.sqlite3'}"
        for name, url in {"TA": a, "TA_AUDIT": a_audit, "TB": b, "TB_AUDIT": b_audit}.items():
            monkeypatch.setenv(f"{name}_URL", url)
        (twin / "targets.yaml").write_text(
            "targets:\n"
            "  - {name: tenant-a, url_env: TA_URL, bind_url_env: {audit: TA_AUDIT_URL}}\n"
            "  - {name: tenant-b, url_env: TB_URL, bind_url_env: {audit: TB_AUDIT_URL}}\n")
        monkeypatch.chdir(twin)
        code = main(["fleet", "run", "upgrade_downgrade", "targets.yaml", "-p", "app", APP,
                     "-p", "migrations_dir", "migrations", "--archive-dir", str(tmp_path / "archive")])
        out = capsys.readouterr().out
        assert code == 0, out
        assert {recorded(url) for url in (a, a_audit, b, b_audit)} == {HEAD}
        archived = "".join(p.read_text() for p in (tmp_path / "archive").rglob("*.ipynb"))
        assert "fleet-pw" not in out + archived and "Bind `audit`" in archived
    finally:
        for url in made:
            drop_pg_database(url)
