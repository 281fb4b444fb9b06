"""fleet drift on targets with binds (issue 23): each bind's database against its own revision.

The two-database example (``tests/examples/multidb_twin_hives``) as a fleet of two targets:
``tenant-a`` (two PostgreSQL databases, its audit bind one revision behind, both clean) and
``tenant-b`` (PostgreSQL + SQLite, a table made by hand in its audit database). Every database
is created and dropped by the test; the URLs carry a password the server never checks, looked
for in everything shown.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from softbee.runbook import cli
from softbee.runbook.engine.binds import run_binds
from softbee.runbook.fleet.drift import SKIPPED_DRIFT, drifted_targets, skip_drifted
from softbee.runbook.fleet.fleet_run import PASSED, plan, run_fleet
from softbee.runbook.fleet.status import AT_HEAD, BEHIND, fleet_status
from softbee.runbook.fleet.targets import load_targets
from softbee.runbook.project import load_project
from softbee.runbook.project.binds import bind_projects
from softbee.runbook.review.drift_many import FleetDrift
from tests.conftest import create_pg_database, drop_pg_database
from tests.multidb import APP, HEAD, assemble, execute, forget_app

PASSWORD = "s3cret-drift-bind-pw"
BEHIND_REVISION = "a1000000003c"


def _with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def _migrate(default: str, audit: str, audit_to: str = "head") -> None:
    forget_app()
    project = load_project(APP, "migrations", default)
    default_side, audit_side = bind_projects(project, bind_urls={"audit": audit})
    run_binds([default_side], "upgrade", "head")
    run_binds([audit_side], "upgrade", audit_to)
    for side in (default_side, audit_side):
        side.engine.dispose()


@pytest.fixture
def twin_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example as the current directory, two targets migrated, and their targets file."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(assemble(tmp_path / "twin"))
    monkeypatch.setenv("AUDIT_DATABASE_URL", "sqlite:///never-used.sqlite3")  # bind URLs win
    made = [create_pg_database() for _ in range(3)]
    try:
        a, a_audit, b = (_with_password(url) for url in made)
        b_audit = f"sqlite:///{tmp_path / 'b_audit.sqlite3'}"
        _migrate(a, a_audit, BEHIND_REVISION)
        _migrate(b, b_audit)
        execute(b_audit, "CREATE TABLE stray (id INTEGER)")
        for name, value in {"A_URL": a, "A_AUDIT_URL": a_audit, "B_URL": b,
                            "B_AUDIT_URL": b_audit}.items():
            monkeypatch.setenv(name, value)
        path = tmp_path / "targets.yaml"
        path.write_text(
            "targets:\n"
            "  - {name: tenant-a, url_env: A_URL, bind_url_env: {audit: A_AUDIT_URL}}\n"
            "  - {name: tenant-b, url_env: B_URL, bind_url_env: {audit: B_AUDIT_URL}}\n")
        yield path
    finally:
        for url in made:
            drop_pg_database(url)


@pytest.mark.postgres
def test_fleet_status_drift_checks_each_bind_against_its_own_revision(twin_fleet, capsys):
    check = FleetDrift(APP, "migrations")
    status = fleet_status(load_targets(twin_fleet), "migrations", drift=check)
    a, b = status.targets

    assert a.state == BEHIND and a.drifted is False  # its audit bind is behind, and clean
    assert [(s.bind, s.drifted) for s in a.binds] == [("default", False), ("audit", False)]
    assert a.drift == (f"bind default: no drift: the schema is what revision {HEAD} produces; "
                       f"bind audit: no drift: the schema is what revision {BEHIND_REVISION} "
                       "produces")
    assert b.state == AT_HEAD and b.drifted is True
    assert [(s.bind, s.drifted) for s in b.binds] == [("default", False), ("audit", True)]
    assert b.binds[1].drift == (f"drift from revision {HEAD} in 1 place(s): table stray not in "
                                "any revision")
    assert "1 drifted" in status.summary() and "not checked" not in status.summary()
    # one expected schema per dialect, bind and revision: the binds' tables differ
    assert set(check._expected) == {("postgresql", "default", HEAD),
                                    ("postgresql", "audit", BEHIND_REVISION),
                                    ("sqlite", "audit", HEAD)}
    capsys.readouterr()

    code = cli.main(["fleet", "status", str(twin_fleet), "--migrations-dir", "migrations",
                     "--app", APP, "--drift"])
    captured = capsys.readouterr()
    assert code == 1
    assert (f"drift: tenant-b: bind default: no drift: the schema is what revision {HEAD} "
            f"produces; bind audit: drift from revision {HEAD} in 1 place(s): table stray not "
            "in any revision") in captured.out
    assert "drift: tenant-a" not in captured.out
    assert PASSWORD not in captured.out + captured.err


@pytest.mark.postgres
def test_the_fleet_run_gate_skips_a_target_whose_one_bind_drifted(twin_fleet):
    fleet = load_targets(twin_fleet)
    urls = {t.name: t.resolve_url() for t in fleet.targets}
    bind_urls = {t.name: t.resolve_bind_urls() for t in fleet.targets}
    check = FleetDrift(APP, "migrations")

    stages, skipped = skip_drifted(plan(fleet), urls, check, allow_drift=False, gated=True,
                                   bind_urls=bind_urls)
    assert [t.name for s in stages for t in s.targets] == ["tenant-a"]
    assert list(skipped) == ["tenant-b"]
    assert "bind audit: drift from revision" in skipped["tenant-b"].message
    assert PASSWORD not in skipped["tenant-b"].message
    # without the other binds' URLs a bind is not checked, and said so: never a silent pass
    found = drifted_targets(fleet.targets, urls, check)
    assert found["tenant-a"].drifted is None
    assert "bind audit: drift not checked: no URL for bind audit" in found["tenant-a"].message


@pytest.mark.postgres
@pytest.mark.notebook
def test_fleet_run_checks_each_bind_before_it_runs_a_gated_runbook(
        twin_fleet, tmp_path, monkeypatch):
    from tests.helpers import EXAMPLES

    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "fleet_runbooks"))
    result = run_fleet("toy_binds_gated", load_targets(twin_fleet), archive_dir=tmp_path / "ar",
                       cwd=Path.cwd(), drift=FleetDrift(APP, "migrations"))

    assert [(t.name, t.status) for t in result.targets] == [("tenant-a", PASSED),
                                                            ("tenant-b", SKIPPED_DRIFT)]
    assert "bind audit: drift from revision" in (result.targets[1].error or "")
    assert PASSWORD not in (result.targets[1].error or "")
