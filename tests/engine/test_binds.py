"""Issue 23: a multi-database project (Flask-Migrate's --multidb template), every bind guarded.

The example ``tests/examples/multidb_twin_hives`` keeps its hives in the default database
and its audit events in the ``audit`` bind, a database of its own: two PostgreSQL databases,
or PostgreSQL and SQLite. Each test creates and drops its own databases.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.binds import partly_migrated_line, run_binds
from softbee.runbook.engine.recover import recover
from softbee.runbook.errors import BindsPartlyMigrated, ConfigError, DataLossError, GuardError
from softbee.runbook.project import Project, load_project
from softbee.runbook.project.binds import bind_projects
from softbee.runbook.review.drift import check_drift
from softbee.runbook.util.secrets import SECRETS_ENV, hide
from tests.multidb import APP, HEAD, assemble, execute, forget_app, recorded, tables, two_databases

AUDIT_KINDS = [pytest.param("postgres", marks=pytest.mark.postgres, id="pg+pg"),
               pytest.param("sqlite", marks=pytest.mark.postgres, id="pg+sqlite")]


@pytest.fixture(params=AUDIT_KINDS)
def urls(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[tuple[str, str]]:
    """A copy of the example as the current directory; its default and audit database URLs."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_app adds the project root
    monkeypatch.chdir(assemble(tmp_path / "twin"))
    with two_databases(request.param, tmp_path) as found:
        monkeypatch.setenv("AUDIT_DATABASE_URL", found[1])
        yield found


def load(default_url: str) -> Project:
    forget_app()
    return load_project(APP, "migrations", default_url)


def test_each_bind_is_migrated_on_its_own_database_with_its_own_history(urls: tuple[str, str]) -> None:
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    assert [side.bind for side in sides] == ["default", "audit"]
    lines: list[str] = []
    results = run_binds(sides, "upgrade", "head", progress=lines.append)
    assert [(r.bind, r.result.end, r.result.committed) for r in results] == [
        ("default", HEAD, True), ("audit", HEAD, True)]
    assert recorded(default_url) == recorded(audit_url) == HEAD
    assert {"hives", "hive_tags"} <= tables(default_url)
    assert not {"audit_events", "audit_archive"} & tables(default_url)
    assert {"audit_events", "audit_archive"} <= tables(audit_url)
    assert not {"hives", "hive_tags"} & tables(audit_url)
    assert lines[0].startswith("bind default (postgresql") and any(
        line.startswith("bind audit (") for line in lines)
    for url in (default_url, audit_url):  # each database's history table has its own rows
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            moved = conn.execute(sa.text(
                "SELECT revision_to FROM softbee_runbook_history WHERE direction = 'upgrade' "
                "ORDER BY id")).scalars().all()
        engine.dispose()
        assert moved == ["a1000000001a", "a1000000002b", "a1000000003c", HEAD]
    # each bind's drift check compares with its own tables (the expected schema cached per bind)
    drifts = [check_drift(side) for side in sides]
    assert [d.drifted for d in drifts] == [False, False], [d.message() for d in drifts]
    execute(audit_url, "CREATE TABLE stray (id INTEGER)")
    assert [check_drift(side).drifted for side in sides] == [False, True]


def test_production_confirmation_is_asked_of_every_bind_before_the_first_commits(
        urls: tuple[str, str]) -> None:
    """Before: each bind checked ``confirm`` in its own run, so naming one database committed
    the default bind and then refused the audit one: a half migration by construction."""
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    default_name, audit_name = (side.database_name for side in sides)
    with pytest.raises(GuardError) as refused:
        run_binds(sides, "upgrade", "head", production=True, confirm=default_name)
    assert str(refused.value).startswith("bind audit: ") and "\n" not in str(refused.value)
    assert recorded(default_url) == recorded(audit_url) == "base"  # nothing committed
    results = run_binds(sides, "upgrade", "head", production=True,
                        confirm=f"{default_name}, {audit_name}")
    assert [r.result.end for r in results] == [HEAD, HEAD]


def test_downgrade_that_loses_values_is_refused_then_allowed(urls: tuple[str, str]) -> None:
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    run_binds(sides, "upgrade", "head")
    execute(default_url, "INSERT INTO hives (name, region) VALUES ('h1', 'north')")
    execute(audit_url, "INSERT INTO audit_events (hive_name, action, note) VALUES ('h1', 'made', 'n')")
    with pytest.raises(DataLossError, match=r"^bind default: downgrade would lose data"):
        run_binds(sides, "downgrade", "a1000000001a")
    assert recorded(default_url) == recorded(audit_url) == HEAD  # the first bind refused: none moved
    results = run_binds(sides, "downgrade", "a1000000001a", allow_data_loss=True)
    assert [r.result.end for r in results] == ["a1000000001a", "a1000000001a"]
    assert recorded(default_url) == recorded(audit_url) == "a1000000001a"


def test_round_trip_and_rehearsal_run_per_bind(urls: tuple[str, str]) -> None:
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    rehearsed = run_binds(sides, "upgrade", "head", rehearse=True)
    assert [(r.result.rehearsal, r.result.committed) for r in rehearsed] == [(True, False)] * 2
    assert recorded(default_url) == recorded(audit_url) == "base"  # every bind rolled back
    assert "hives" not in tables(default_url) and "audit_events" not in tables(audit_url)
    trips = run_binds(sides, "upgrade", "head", round_trip=True)
    assert all(r.result.checks and all(c["ok"] for c in r.result.checks) for r in trips)
    assert recorded(default_url) == recorded(audit_url) == HEAD


def test_second_bind_failing_after_the_first_committed_says_so_and_is_recovered(
        urls: tuple[str, str]) -> None:
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    run_binds(sides, "upgrade", "a1000000003c")
    # made by hand, as a1000000004d would make it: the audit bind's create_table fails
    serial = "SERIAL" if audit_url.startswith("postgresql") else "INTEGER NOT NULL"
    execute(audit_url, f"CREATE TABLE audit_archive (id {serial} PRIMARY KEY, "
                       "event_id INTEGER NOT NULL)")
    with pytest.raises(BindsPartlyMigrated) as failed:
        run_binds(sides, "upgrade", "head")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(
        f"bind default committed at {HEAD}; bind audit rolled back at a1000000003c: rerun "
        "upgrade_downgrade to finish, or fix by hand and run recover_stamp with binds=['audit']")
    assert (failed.value.committed, failed.value.failed) == (["default"], "audit")
    assert "rolled back, nothing" not in message  # never "rolled back" for the whole run
    assert (recorded(default_url), recorded(audit_url)) == (HEAD, "a1000000003c")
    # Recovery: the hand-made table is what the revision makes, so stamping the audit bind
    # verifies; the default bind is not touched.
    audit = bind_projects(load(default_url), binds=["audit"])
    assert [side.bind for side in audit] == ["audit"]
    recovery = recover(audit[0], stamp_revision="head", dry_run=False)
    assert recovery.succeeded and recovery.applied, recovery.verification.differences.to_dict("records")
    assert (recorded(default_url), recorded(audit_url)) == (HEAD, HEAD)
    again = run_binds(bind_projects(load(default_url)), "upgrade", "head")  # a rerun: nothing left
    assert [r.result.steps for r in again] == [[], []]


def test_a_rerun_finishes_a_run_the_second_bind_failed(urls: tuple[str, str]) -> None:
    default_url, audit_url = urls
    sides = bind_projects(load(default_url))
    run_binds(sides, "upgrade", "a1000000003c")
    execute(audit_url, "CREATE TABLE audit_archive (stray INTEGER)")
    with pytest.raises(BindsPartlyMigrated):
        run_binds(sides, "upgrade", "head")
    execute(audit_url, "DROP TABLE audit_archive")  # fixed by hand
    results = run_binds(sides, "upgrade", "head")
    assert [(r.bind, len(r.result.steps)) for r in results] == [("default", 0), ("audit", 1)]
    assert recorded(default_url) == recorded(audit_url) == HEAD


def test_binds_chooses_binds_in_the_fixed_order_and_bind_urls_override_the_app(
        urls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default_url, audit_url = urls
    monkeypatch.setenv("AUDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'not-this-one.sqlite3'}")
    project = load(default_url)
    sides = bind_projects(project, binds=["audit", "default"], bind_urls={"audit": audit_url})
    assert [side.bind for side in sides] == ["default", "audit"]
    only = bind_projects(project, binds=["audit"], bind_urls={"audit": audit_url})
    run_binds(only, "upgrade", "head")
    assert (recorded(default_url), recorded(audit_url)) == ("base", HEAD)
    assert not (tmp_path / "not-this-one.sqlite3").exists()


@pytest.mark.postgres
def test_a_masked_bind_url_is_revealed_from_the_kernel_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(assemble(tmp_path / "twin"))
    with two_databases("postgres", tmp_path) as (default_url, audit_url):
        secret = sa.engine.make_url(audit_url).set(password="s3cret-pw")  # trust: any password
        hidden = hide({"bind_urls": {"audit": secret.render_as_string(hide_password=False)}})
        assert "s3cret-pw" not in str(hidden.parameters)  # what papermill writes
        monkeypatch.setenv(SECRETS_ENV, hidden.environ[SECRETS_ENV])
        side = bind_projects(load(default_url), bind_urls=hidden.parameters["bind_urls"])[1]
        assert side.url.password == "s3cret-pw" and "s3cret-pw" not in side.safe_url
        run_binds([side], "upgrade", "head")
        assert recorded(audit_url) == HEAD


def test_refusals_are_one_line(urls: tuple[str, str]) -> None:
    default_url, _audit_url = urls
    project = load(default_url)
    with pytest.raises(ConfigError, match=r"^binds names \['hivelog'\], not a bind"):
        bind_projects(project, binds=["hivelog"])
    with pytest.raises(ConfigError, match=r"^bind_urls names \['default'\].*database_url"):
        bind_projects(project, bind_urls={"default": default_url})
    project.app.config["SQLALCHEMY_BINDS"] = {"default": default_url, **project.app.config[
        "SQLALCHEMY_BINDS"]}
    with pytest.raises(ConfigError, match=r"^SQLALCHEMY_BINDS has a bind named 'default'"):
        bind_projects(project)


@pytest.mark.postgres
def test_binds_on_one_database_are_one_project_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(assemble(tmp_path / "twin"))
    with two_databases("postgres", tmp_path) as (default_url, _):
        monkeypatch.setenv("AUDIT_DATABASE_URL", default_url)
        project = load(default_url)
        assert bind_projects(project) == [project]
        with pytest.raises(ConfigError, match=r"^binds=\['audit'\]: every bind of this app is"):
            bind_projects(project, binds=["audit"])
        results = run_binds([project], "upgrade", "head")  # today's one transaction
        assert results[0].result.committed and results[0].heading == ""
        assert "hives" in tables(default_url) and recorded(default_url) == HEAD


def test_steps_that_take_one_database_refuse_a_multi_database_project_in_one_line(
        urls: tuple[str, str]) -> None:
    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.errors import NotRoutable
    from softbee.runbook.review.revision import generate_revision

    default_url, audit_url = urls
    project = load(default_url)
    with pytest.raises(ConfigError, match=r"^generate_revision is not supported for "
                                          r"multi-database projects yet \(binds \['audit'\]"):
        generate_revision(project, "add hive weights")
    with pytest.raises(NotRoutable, match=r"^migrations/env.py migrates bind 'audit' on .*"
                                          r"nothing was run; upgrade_downgrade"):
        run_migration(project, "upgrade", "head")  # the whole project on one connection: refused
    assert recorded(default_url) == recorded(audit_url) == "base"


@pytest.mark.postgres
@pytest.mark.mysql
def test_a_mariadb_bind_beside_postgresql_keeps_its_own_dialects_guarantees(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB commits DDL as it runs: its bind runs stepwise, predicts loss, rehearses on a copy."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(assemble(tmp_path / "twin"))
    with two_databases("mariadb", tmp_path) as (default_url, audit_url):
        monkeypatch.setenv("AUDIT_DATABASE_URL", audit_url)
        sides = bind_projects(load(default_url))
        assert [side.dialect for side in sides] == ["postgresql", "mysql"]
        rehearsed = run_binds(sides, "upgrade", "head", rehearse=True)
        assert [r.result.rehearsal for r in rehearsed] == [True, True]
        assert recorded(default_url) == recorded(audit_url) == "base"
        run_binds(sides, "upgrade", "head")
        assert recorded(default_url) == recorded(audit_url) == HEAD
        execute(default_url, "INSERT INTO hives (name, region) VALUES ('h1', 'north')")
        execute(audit_url, "INSERT INTO audit_events (hive_name, action, note) VALUES ('h1', 'm', 'n')")
        # MariaDB cannot roll a loss back: it is predicted from the revisions' SQL and refused
        with pytest.raises(GuardError, match=r"^bind audit: ") as refused:
            run_binds([sides[1]], "downgrade", "a1000000001a")
        assert isinstance(refused.value, DataLossError), refused.value
        assert recorded(audit_url) == HEAD
        results = run_binds(sides, "downgrade", "a1000000001a", allow_data_loss=True)
        assert [r.result.end for r in results] == ["a1000000001a", "a1000000001a"]
        assert recorded(default_url) == recorded(audit_url) == "a1000000001a"
        # the MariaDB bind failing after the PostgreSQL one committed: never "rolled back"
        execute(audit_url, "CREATE TABLE audit_archive (stray INTEGER)")
        with pytest.raises(BindsPartlyMigrated) as failed:
            run_binds(sides, "upgrade", "head")
        assert str(failed.value).startswith(
            f"bind default committed at {HEAD}; bind audit stopped at a1000000003c (it was at "
            "a1000000001a; its DDL commits as it runs): rerun upgrade_downgrade to finish")


def test_an_env_py_without_upgrade_tokens_is_routed_by_database(urls: tuple[str, str]) -> None:
    """A hand-edited multi-database env.py that passes no upgrade_token: each configure's database says its bind."""
    default_url, audit_url = urls
    env_py = Path("migrations/env.py")
    text = env_py.read_text()
    for token in ('upgrade_token="%s_upgrades" % name,', 'downgrade_token="%s_downgrades" % name,'):
        assert token in text
        text = text.replace(token, "")
    env_py.write_text(text)
    results = run_binds(bind_projects(load(default_url)), "upgrade", "head")
    assert [(r.bind, r.result.end) for r in results] == [("default", HEAD), ("audit", HEAD)]
    assert "hives" in tables(default_url) and "hives" not in tables(audit_url)
    assert "audit_events" in tables(audit_url) and "audit_events" not in tables(default_url)


def test_a_failed_bind_with_a_committed_phase_is_never_said_rolled_back() -> None:
    committed = [SimpleNamespace(bind="default", result=SimpleNamespace(end="a1000000004d"))]
    cause = RuntimeError("lost the connection")

    rolled_back = partly_migrated_line(committed, "audit", "a1000000002b", "a1000000002b", cause)
    with_phase = partly_migrated_line(
        committed, "audit", "a1000000002b", "a1000000002b", cause,
        in_progress=["a1000000003c upgrade: phase 2 of 3 (backfill) running, 1,500 / 20,000 rows"])

    assert "bind audit rolled back at a1000000002b" in rolled_back
    assert "rolled back" not in with_phase
    assert "bind audit stopped at a1000000002b with a1000000003c upgrade: phase 2 of 3" in with_phase
    assert with_phase.startswith("bind default committed at a1000000004d; ")
