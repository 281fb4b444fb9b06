"""Loading a Flask-Migrate project: app, migrations, database, and clear errors for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.errors import ConfigError, DatabaseError
from softbee.runbook.project import load_project
from tests.helpers import MIGRATIONS, REPO_ROOT


def test_database_url_parameter_overrides_the_app_config(sqlite_url: str) -> None:
    project = load_project(database_url=sqlite_url)
    assert str(project.url) == sqlite_url
    assert project.dialect == "sqlite"
    assert project.migrations_dir == MIGRATIONS


def test_database_comes_from_database_url_in_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert str(load_project().url) == sqlite_url


def test_driverless_postgresql_url_runs_on_psycopg2() -> None:
    project = load_project(database_url="postgresql://someone:pw@127.0.0.1:5432/softbee")
    assert project.url.drivername == "postgresql+psycopg2"
    assert "pw" not in project.safe_url and "***" in project.safe_url
    assert project.identity() == {"dialect": "postgresql", "host": "127.0.0.1", "port": 5432,
                                  "database": "softbee"}


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql+psycopg://someone:pw@127.0.0.1:5432/softbee", "psycopg"),
    ("postgresql+psycopg2://someone:pw@127.0.0.1:5432/softbee", "psycopg2"),
    ("mysql+mysqldb://someone:pw@127.0.0.1:3306/softbee", "mysqldb"),
    ("mariadb+pymysql://someone:pw@127.0.0.1:3306/softbee", "pymysql"),
])
def test_a_url_naming_its_driver_runs_on_that_driver(url: str, driver: str) -> None:
    """SQLAlchemy 2's postgresql+psycopg:// is psycopg 3: used as written, never psycopg2."""
    from tests.conftest import require_driver

    require_driver(driver)
    project = load_project(database_url=url)
    assert project.url.drivername == url.partition("://")[0]
    assert project.engine.dialect.driver == driver


CONNECTION_DRIVERS = [
    pytest.param("postgresql", "psycopg2", marks=pytest.mark.postgres),
    pytest.param("postgresql", "psycopg", marks=pytest.mark.postgres),
    pytest.param("mysql", "pymysql", marks=pytest.mark.mysql),
    pytest.param("mysql", "mysqldb", marks=pytest.mark.mysql),
]
CONNECTION_FAILURES = {
    # what is wrong with the URL: (how to make it so, the hint every driver must give)
    "refused": ({"port": 1}, "is the server running, and are host and port right?"),
    "no database": ({"database": "softbee_no_such_db"},
                    "create the database or fix its name in DATABASE_URL"),
    "no user": ({"username": "softbee_no_such_user", "password": "pw"},
                "the user or password in DATABASE_URL is wrong"),
}


@pytest.mark.parametrize("failure", CONNECTION_FAILURES)
@pytest.mark.parametrize(("backend", "driver"), CONNECTION_DRIVERS)
def test_a_refused_connection_gets_the_same_hint_on_every_driver(
    backend: str, driver: str, failure: str
) -> None:
    """mysqlclient says "Can't connect ... (115)" where PyMySQL says "Connection refused": the
    hint is read from the error's code where it has one, so the driver does not change it."""
    from sqlalchemy.engine import make_url

    import tests.conftest as fixtures

    (fixtures.require_postgres if backend == "postgresql" else fixtures.require_mysql)()
    admin = fixtures._pg_admin_url() if backend == "postgresql" else fixtures._mysql_admin_url()
    changes, hint = CONNECTION_FAILURES[failure]
    url = make_url(fixtures.with_driver(admin, driver)).set(
        **{"database": "postgres" if backend == "postgresql" else "mysql", **changes})
    project = load_project(database_url=url.render_as_string(hide_password=False))
    with pytest.raises(DatabaseError) as caught:
        project.connect().close()
    message = str(caught.value)
    assert message.endswith(f"({hint})") and "\n" not in message, message
    assert "pw@" not in message


def test_malformed_url_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match="malformed database URL") as caught:
        load_project(database_url="not a url at all")
    assert "\n" not in str(caught.value)


@pytest.mark.postgres
def test_unreachable_host_names_the_problem_without_the_password() -> None:
    project = load_project(database_url="postgresql://u:s3cretpw@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as caught:
        project.connect()
    message = str(caught.value)
    assert "Connection refused" in message and "s3cretpw" not in message and "\n" not in message


@pytest.mark.postgres
def test_unknown_role_is_reported_with_a_hint(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(username="no_such_role_xyz", password="pw123456")
    project = load_project(database_url=url.render_as_string(hide_password=False))
    with pytest.raises(DatabaseError, match="no_such_role_xyz") as caught:
        project.connect()
    assert "pw123456" not in str(caught.value)


def test_missing_migrations_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="env.py missing"):
        load_project(migrations_dir=str(tmp_path / "nope"))


def test_app_path_that_does_not_import_is_refused() -> None:
    with pytest.raises(ConfigError, match="did not load"):
        load_project(app="no_such_package_xyz:app")


def test_object_that_is_not_a_flask_app_is_refused() -> None:
    with pytest.raises(ConfigError, match="valid Flask application"):
        load_project(app="softbee.urls:MASK")


def test_relative_migrations_dir_resolves_against_softbee_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTBEE_PROJECT_ROOT", str(REPO_ROOT))
    assert load_project(database_url=sqlite_url).migrations_dir == MIGRATIONS


def test_project_root_is_found_upward_from_the_runbooks_folder(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    """A notebook's kernel starts in runbooks/: migrations/ is found one folder up, as git finds .git."""
    monkeypatch.delenv("SOFTBEE_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(REPO_ROOT / "runbooks")
    project = load_project(database_url=sqlite_url)
    assert project.migrations_dir == MIGRATIONS


def test_no_project_root_names_every_folder_looked_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    monkeypatch.delenv("SOFTBEE_PROJECT_ROOT", raising=False)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with pytest.raises(ConfigError) as refused:
        load_project(database_url=sqlite_url)
    message = str(refused.value)
    assert "\n" not in message and "SOFTBEE_PROJECT_ROOT" in message
    for folder in (deep, deep.parent, tmp_path, Path("/")):
        assert str(folder) in message


def test_softbee_project_root_wins_over_the_search(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    """The override is looked in alone: a wrong one is reported, not silently searched past."""
    monkeypatch.chdir(REPO_ROOT / "runbooks")
    monkeypatch.setenv("SOFTBEE_PROJECT_ROOT", str(tmp_path))
    with pytest.raises(ConfigError, match=f"SOFTBEE_PROJECT_ROOT.*looked in {tmp_path}"):
        load_project(database_url=sqlite_url)


def test_the_scripts_graph_is_read_once_and_again_when_a_revision_is_added(
    sqlite_url: str, tmp_path: Path
) -> None:
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    project = load_project(migrations_dir=str(migrations), database_url=sqlite_url)
    first = project.script()
    head = first.get_current_head()

    assert project.script() is first  # no second reading of every revision file
    (migrations / "versions" / "ffff00000001_later.py").write_text(
        f'"""later"""\nrevision = "ffff00000001"\ndown_revision = "{head}"\n'
        "branch_labels = None\ndepends_on = None\n\n"
        "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n"
    )
    assert project.script() is not first
    assert project.script().get_current_head() == "ffff00000001"


def test_revision_scripts_that_read_current_app_at_import_load_and_migrate(
    database_url, tmp_path, monkeypatch
):
    """As under `flask db`, the scripts are imported inside the app's context."""
    import shutil
    import sys

    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.review.state import get_state
    from tests.helpers import EXAMPLES, revision_of

    monkeypatch.setattr(sys, "path", list(sys.path))
    root = shutil.copytree(EXAMPLES / "revision_reads_current_app", tmp_path / "broodbox_project")
    monkeypatch.chdir(root)
    for name in [m for m in sys.modules if m == "broodbox" or m.startswith("broodbox.")]:
        monkeypatch.delitem(sys.modules, name)

    project = load_project(app="broodbox:create_app", migrations_dir="migrations",
                           database_url=database_url)
    assert get_state(project).heads == ("d0000000003c",)

    run_migration(project, "upgrade", "head")

    assert revision_of(database_url) == "d0000000003c"
