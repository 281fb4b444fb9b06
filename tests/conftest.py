"""Shared fixtures: fresh SQLite and PostgreSQL databases, created and dropped per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.urls import normalise_url

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'softbee.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'softbee.sqlite3'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's DATABASE_URL, FLASK_ENV and archive out of the tests."""
    for name in ("DATABASE_URL", "FLASK_ENV", "RUNBOOK_ARCHIVE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNBOOK_ARCHIVE_DIR", str(tmp_path / "archive"))


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
def beeyard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - returns a loader
    """Load the oldest_stack example (beeyard) on a database, from a copy of its root."""
    import sys

    from softbee.runbook.project import load_project
    from tests.helpers import BEEYARD_APP, assemble_oldest_stack

    monkeypatch.setattr(sys, "path", list(sys.path))  # import_app adds the project root
    root = assemble_oldest_stack(tmp_path / "oldest_stack")
    monkeypatch.chdir(root)

    def load(url: str, app: str = BEEYARD_APP):  # noqa: ANN202
        for name in [m for m in sys.modules if m == "beeyard" or m.startswith("beeyard.")]:
            del sys.modules[name]
        return load_project(app=app, migrations_dir="migrations", database_url=url)

    load.root = root  # type: ignore[attr-defined]
    return load
