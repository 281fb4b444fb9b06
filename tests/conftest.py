"""Shared fixtures: fresh SQLite, PostgreSQL and MariaDB databases, created and dropped per test.

Two parametrised fixtures, on purpose:

- ``database_url``: SQLite and PostgreSQL, the databases with transactional DDL, for tests
  of what is promised with one transaction (a loss or a round trip rolled back after the
  fact, a timeout that rolls everything back, a rehearsal by rollback). Where MariaDB keeps
  a different promise (docs/guarantees.md, "What each database guarantees": the loss refused before
  anything runs, a half-applied revision reported, a rehearsal on a scratch copy), such a
  test has a MariaDB counterpart (``mysql_url``) asserting that promise.
- ``any_database_url``: SQLite, PostgreSQL and MariaDB, for every test whose promise holds on
  all three: Soft-Bee's migration history and seed data, and the runbook and guard tests
  whose outcome is the same everywhere (a refused loss changes nothing, a lock holder is
  named, a rehearsal leaves the database as it was).

The parameter lists are the constants ``RUNBOOK_DATABASES`` and ``ALL_DATABASES``.

Drivers are a dimension too: ``postgres_url`` and ``mysql_url`` run on psycopg2 and PyMySQL
unless a test parametrises them with ``PG_DRIVERS`` (psycopg2, psycopg 3) or ``MYSQL_DRIVERS``
(PyMySQL, mysqlclient), as the marks ``each_pg_driver`` and ``each_mysql_driver`` do: the
tests of what reads a driver's errors (guards, timeout messages, online retries, recovery)
run under each, the rest on one, so ``make test`` covers every driver without doubling.
A kind of ``database_url``/``any_database_url`` may name its driver too
(``"postgresql+psycopg"``; ``DRIVER_DATABASES`` lists the second driver of each server).
A missing driver skips its tests, and fails them under CI=true, like a missing server
(psycopg 3 always skips on SQLAlchemy 1.4, which has no dialect for it: ``make test-oldest``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.urls import normalise_url, redact_text

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306"

# Database kinds the parametrised fixtures run on (see the module docstring). A test can
# narrow ``any_database_url`` with ``@pytest.mark.parametrize("any_database_url",
# TRANSACTIONAL_DDL_DATABASES, indirect=True)`` when it needs DDL inside a transaction.
SQLITE = "sqlite"
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgres)
MYSQL = pytest.param("mysql", marks=pytest.mark.mysql)
TRANSACTIONAL_DDL_DATABASES = (SQLITE, POSTGRESQL)
RUNBOOK_DATABASES = (SQLITE, POSTGRESQL)
ALL_DATABASES = (SQLITE, POSTGRESQL, MYSQL)

# The drivers each server is tested on (SQLAlchemy's driver names), the default first.
PG_DRIVERS = ("psycopg2", "psycopg")
MYSQL_DRIVERS = ("pymysql", "mysqldb")
each_pg_driver = pytest.mark.parametrize("postgres_url", PG_DRIVERS, indirect=True)
each_mysql_driver = pytest.mark.parametrize("mysql_url", MYSQL_DRIVERS, indirect=True)
# The second driver of each server, as kinds of ``database_url``/``any_database_url``.
POSTGRESQL_PSYCOPG = pytest.param("postgresql+psycopg", marks=pytest.mark.postgres)
MYSQL_MYSQLCLIENT = pytest.param("mysql+mysqldb", marks=pytest.mark.mysql)
DRIVER_DATABASES = (POSTGRESQL_PSYCOPG, MYSQL_MYSQLCLIENT)
# What each driver is imported as, and the package that brings it.
DRIVER_MODULES = {
    "psycopg2": ("psycopg2", "psycopg2-binary"),
    "psycopg": ("psycopg", "psycopg[binary]"),
    "pymysql": ("pymysql", "PyMySQL"),
    "mysqldb": ("MySQLdb", "mysqlclient, built by `make setup` when libmariadb-dev and "
                            "pkg-config are installed"),
}


def require_driver(driver: str) -> None:
    """Skip when ``driver`` is not installed; under CI=true fail instead (like a missing server)."""
    module, package = DRIVER_MODULES[driver]
    if driver == "psycopg" and int(sa.__version__.split(".")[0]) < 2:
        pytest.skip(f"psycopg 3 needs SQLAlchemy 2.0; this stack has {sa.__version__}")
    try:
        __import__(module)
    except ImportError as exc:
        reason = f"driver {driver} not installed ({package}): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: driver tests may not skip)")
        pytest.skip(reason)


def with_driver(url: str, driver: str | None) -> str:
    """``url`` on ``driver`` (None: the driver it names), e.g. ``postgresql+psycopg://...``."""
    if driver is None:
        return url
    require_driver(driver)
    parsed = make_url(url)
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
        hide_password=False
    )


def _pg_admin_url() -> str:
    """The server tests create their databases on (``TEST_DATABASE_URL``'s server, else local)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return DEFAULT_PG_ADMIN_URL
    return make_url(normalise_url(url)).set(database="postgres").render_as_string(
        hide_password=False
    )


def _pg_unavailable_reason() -> str | None:
    engine = sa.create_engine(_pg_admin_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return f"PostgreSQL not reachable: {str(exc.orig).strip().splitlines()[0]}"
    finally:
        engine.dispose()


_PG_REASON: list[str | None] = []


def require_postgres() -> None:
    """Skip when PostgreSQL is down; under CI=true fail instead."""
    if not _PG_REASON:
        _PG_REASON.append(_pg_unavailable_reason())
    reason = _PG_REASON[0]
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests may not skip)")
    pytest.skip(reason)


def create_pg_database() -> str:
    """Create an empty PostgreSQL database and return its URL."""
    require_postgres()
    name = f"softbee_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by :func:`create_pg_database`, closing its sessions first."""
    name = make_url(url).database
    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _mysql_admin_url() -> str:
    """The MySQL/MariaDB server tests create their databases on (``TEST_MYSQL_URL``, else local)."""
    url = os.environ.get("TEST_MYSQL_URL")
    if not url:
        return DEFAULT_MYSQL_ADMIN_URL
    server = make_url(normalise_url(url))
    # URL.set(database=None) keeps the database: build the URL without one instead.
    return sa.engine.URL.create(
        server.drivername,
        username=server.username,
        password=server.password,
        host=server.host,
        port=server.port,
        query=server.query,
    ).render_as_string(hide_password=False)


def _mysql_unavailable_reason() -> str | None:
    engine = sa.create_engine(_mysql_admin_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return f"MySQL/MariaDB not reachable: {redact_text(str(exc.orig).strip().splitlines()[0])}"
    finally:
        engine.dispose()


_MYSQL_REASON: list[str | None] = []


def require_mysql() -> None:
    """Skip when the MySQL/MariaDB server is down; under CI=true fail instead."""
    if not _MYSQL_REASON:
        _MYSQL_REASON.append(_mysql_unavailable_reason())
    reason = _MYSQL_REASON[0]
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: MySQL/MariaDB tests may not skip)")
    pytest.skip(reason)


def create_mysql_database() -> str:
    """Create an empty utf8mb4 MySQL/MariaDB database and return its URL."""
    require_mysql()
    name = f"softbee_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_mysql_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    return make_url(_mysql_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_mysql_database(url: str) -> None:
    """Drop a database made by :func:`create_mysql_database`, killing its sessions first.

    A session left inside a transaction holds metadata locks that make ``DROP DATABASE``
    wait (for ``lock_wait_timeout``, a year by default); like PostgreSQL's ``WITH (FORCE)``,
    killing them first lets the drop go through.
    """
    name = make_url(url).database
    admin = sa.create_engine(_mysql_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            sessions = conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist"
                    " WHERE db = :name AND id <> CONNECTION_ID()"
                ),
                {"name": name},
            ).scalars()
            for session in list(sessions):
                try:
                    conn.execute(sa.text(f"KILL {int(session)}"))
                except sa.exc.OperationalError:
                    pass  # it ended by itself in the meantime
            # A bound instead of the server's year-long default, should a lock still be held.
            conn.execute(sa.text("SET SESSION lock_wait_timeout = 60"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind`` (sqlite, postgresql or mysql, optionally
    ``+driver``: ``postgresql+psycopg``), dropped afterwards.

    The database is created and dropped on the default driver; the URL handed to the test
    names ``driver``, so everything the test runs goes through it.
    """
    backend, _, driver = kind.partition("+")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'softbee.sqlite3'}"
        return
    create, drop = {
        "postgresql": (create_pg_database, drop_pg_database),
        "mysql": (create_mysql_database, drop_mysql_database),
    }[backend]
    if driver:
        require_driver(driver)
    url = create()
    try:
        yield with_driver(url, driver or None)
    finally:
        drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'softbee.sqlite3'}"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards; on psycopg2 unless the test
    parametrises it with a driver (``each_pg_driver``)."""
    kind = "postgresql" + (f"+{request.param}" if hasattr(request, "param") else "")
    with fresh_database(kind, tmp_path) as url:
        yield url


@pytest.fixture
def mysql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database, dropped afterwards (mark the test ``mysql``); on
    PyMySQL unless the test parametrises it with a driver (``each_mysql_driver``)."""
    kind = "mysql" + (f"+{request.param}" if hasattr(request, "param") else "")
    with fresh_database(kind, tmp_path) as url:
        yield url


@pytest.fixture(params=RUNBOOK_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: once on SQLite, once on PostgreSQL (transactional DDL)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=ALL_DATABASES)
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on SQLite, PostgreSQL and MariaDB: for promises kept on all three."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's DATABASE_URL, FLASK_ENV and archive out of the tests."""
    for name in ("DATABASE_URL", "FLASK_ENV", "RUNBOOK_ARCHIVE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNBOOK_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("SOFTBEE_CACHE_DIR", str(tmp_path / "schema-cache"))  # expected schemas


@pytest.fixture
def git_project(tmp_path: Path) -> tuple[Path, str]:
    """A project directory that is a git repository with one commit."""
    project = tmp_path / "project"
    project.mkdir()
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=project, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    return project, head


@pytest.fixture
def beeyard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Load the oldest_stack example (beeyard) on a database, from a copy of its root."""
    import sys

    from softbee.runbook.project import load_project
    from tests.helpers import BEEYARD_APP, assemble_oldest_stack

    monkeypatch.setattr(sys, "path", list(sys.path))  # import_app adds the project root
    root = assemble_oldest_stack(tmp_path / "oldest_stack")
    monkeypatch.chdir(root)

    def load(url: str, app: str = BEEYARD_APP):
        for name in [m for m in sys.modules if m == "beeyard" or m.startswith("beeyard.")]:
            del sys.modules[name]
        return load_project(app=app, migrations_dir="migrations", database_url=url)

    load.root = root  # type: ignore[attr-defined]
    return load


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the ``lab`` tests (a real JupyterLab, over a minute) unless ``-m`` names them.

    ``make test-lab`` runs them (``-m lab``), and ``.ci/run`` calls it after ``make test``.
    """
    if "lab" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("lab") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("lab")])
        items[:] = kept
