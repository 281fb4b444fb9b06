"""Test helpers: migrate a fresh database to a revision, seed it, and capture its full state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.project import Project, load_project
from softbee.runbook.util.history_name import HISTORY_TABLE, is_history_table

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO_ROOT / "migrations"

# How long a test waits for a subprocess or a thread before calling it hung. It catches hangs
# only; it is no measure of speed. A correct CLI run took 118 s on the 2-core machine under the
# other engineers' load (against the 120 s the tests used to allow), so it sits just under
# pytest-timeout's 300 s per test: a hung child is killed and reported with its output.
HUNG_AFTER_S = 240

# The revisions the tests lean on, by the story they tell.
INSPECTIONS = "4d3f8b0e5a04"  # Create inspections table for hive health checks
HIVE_HEALTH = "5e4a9c1f6b05"  # Add health status, queen year and hive type to hives
FULL_NAME = "6f5b0d2a7c06"  # Add users.full_name backfilled from first and last name
VARROA = "7a6c1e3b8d07"  # Add varroa mite count per 100 bees to inspections (batch)
HEAD = "8b7d2f4c9e08"  # Create treatments table for varroa and disease treatments


def project_at(url: str, revision: str | None = None, rows: int = 0, **kwargs: Any) -> Project:
    """A project on ``url``, upgraded to ``revision`` and seeded with ``rows``."""
    project = load_project(database_url=url, migrations_dir=str(kwargs.pop("migrations_dir", MIGRATIONS)))
    if revision is not None:
        run_migration(project, "upgrade", revision)
    if rows:
        from softbee.seed import seed_database  # the Soft-Bee app: not on the oldest stack

        seed_database(project.engine, rows=rows, seed=7)
    return project


def production_project(url: str, monkeypatch: Any) -> Project:
    """The project as a production deployment loads it: FLASK_ENV=production, DATABASE_URL=url."""
    monkeypatch.setenv("FLASK_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", url)
    return load_project(migrations_dir=str(MIGRATIONS))


def snapshot(url: str) -> dict[str, Any]:
    """Everything a test compares: tables, columns, indexes, version and every row."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            state: dict[str, Any] = {}
            for table in sorted(inspector.get_table_names()):
                if is_history_table(table):  # the runbooks' record, not the database's state
                    continue
                columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)]
                indexes = sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table))
                quoted = conn.dialect.identifier_preparer.quote(table)
                rows = sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {quoted}"))), key=repr)
                state[table] = {"columns": columns, "indexes": indexes, "rows": rows}
            return state
    finally:
        engine.dispose()


def dump(url: str) -> bytes:
    """A byte-exact dump: ``pg_dump`` for PostgreSQL, ``mariadb-dump`` for MySQL, ``iterdump`` for SQLite.

    The runbooks' history table is left out: a refused run records itself there
    (``history_rows`` reads it), and "nothing changed" is about the rest.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
        assert binary, "mariadb-dump or mysqldump is needed to compare MySQL/MariaDB databases"
        env = {**os.environ, **({"MYSQL_PWD": parsed.password} if parsed.password else {})}
        return subprocess.run(
            [binary, "--skip-dump-date", "--skip-comments", "--protocol=tcp",
             "-h", parsed.host or "127.0.0.1", "-P", str(parsed.port or 3306),
             "-u", parsed.username or "root", f"--ignore-table={parsed.database}.{HISTORY_TABLE}",
             parsed.database],
            check=True, capture_output=True, env=env,
        ).stdout
    if parsed.get_backend_name() == "postgresql":
        assert shutil.which("pg_dump"), "pg_dump is needed to compare PostgreSQL databases"
        out = subprocess.run(
            ["pg_dump", "--no-owner", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
             "-U", parsed.username or "postgres", f"--exclude-table={HISTORY_TABLE}",
             parsed.database],
            check=True, capture_output=True,
        ).stdout
        # pg_dump >= 15.14 brackets its output with \restrict <random key>: not part of the data.
        return b"\n".join(line for line in out.splitlines() if not line.startswith((b"\\restrict", b"\\unrestrict")))
    import sqlite3

    with sqlite3.connect(parsed.database) as conn:
        return "\n".join(line for line in conn.iterdump() if HISTORY_TABLE not in line).encode()


def history_rows(url: str) -> list[Any]:
    """The database's history rows, oldest first (none when it has no history table)."""
    from softbee.runbook.history.table import read_rows

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return read_rows(conn, HISTORY_TABLE)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    """The revision recorded in alembic_version (None when absent or empty)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def migrations_with_extra_revision(
    tmp_path: Path, revision: str, down: str, upgrade: str = "pass", downgrade: str = "pass"
) -> Path:
    """A copy of migrations/ plus one revision ``revision`` on top of ``down``.

    ``upgrade`` and ``downgrade`` are the bodies of its functions (one line each; ``op`` and
    ``sa`` are imported).
    """
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / f"{revision}_extra.py").write_text(
        f'"""Add an extra revision for the test\n\nRevision ID: {revision}\n"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        f"depends_on = None\n\n\ndef upgrade():\n    {upgrade}\n\n\ndef downgrade():\n    {downgrade}\n"
    )
    return target


def cluster_up(script: str, timeout_s: float = 240) -> str:
    """``scripts/<script> up``: a PostgreSQL cluster of the tests' own; its last line of output.

    Skipped when it cannot be made (``TEST_DATABASE_URL`` names a remote server, no root, no
    postgresql-common); a failure under CI=true, where a missing server never skips.
    """
    import pytest

    reason, made = "", None
    if os.environ.get("TEST_DATABASE_URL"):
        reason = "TEST_DATABASE_URL names a server this machine cannot add a cluster beside"
    else:
        try:
            made = subprocess.run([str(REPO_ROOT / "scripts" / script), "up"],
                                  capture_output=True, text=True, timeout=timeout_s)
            if made.returncode != 0:
                said = (made.stdout + made.stderr).strip().splitlines()[-1:] or ["failed"]
                reason = f"scripts/{script} up failed: {said[0]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"scripts/{script} up failed: {exc}"
    if reason or made is None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""


def cluster_down(script: str, timeout_s: float = 120) -> None:
    """``scripts/<script> down``: that cluster stopped and dropped (bounded)."""
    subprocess.run([str(REPO_ROOT / "scripts" / script), "down"], capture_output=True, text=True,
                   timeout=timeout_s)


def is_mysql(url: str) -> bool:
    """True for a MySQL/MariaDB URL: DDL commits as it runs there."""
    return sa.engine.make_url(url).get_backend_name() in ("mysql", "mariadb")


def scratch_databases(url: str) -> list[str]:
    """Rehearsal copies of ``url``'s database left on its MySQL/MariaDB server (there should be none)."""
    name = sa.engine.make_url(url).database
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SHOW DATABASES LIKE :name"),
                                     {"name": f"{name}_rehearsal_%"}).scalars())
    finally:
        engine.dispose()


def run_cli(*args: str, env: dict[str, str] | None = None, archive: Path) -> subprocess.CompletedProcess[str]:
    """``softbee-runbook run ...`` from the repo root, as a scheduled job would call it."""
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "softbee.runbook", "run", *args, "--archive-dir", str(archive)],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=HUNG_AFTER_S,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, no traceback, and exactly one ``softbee-runbook:`` line naming the problem."""
    assert result.returncode != 0, result.stdout
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.startswith("softbee-runbook:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the env.py shape corpus (tests/examples/envpy_*) ----------------------------------------

EXAMPLES = Path(__file__).resolve().parent / "examples"
ENVPY_COMMON = EXAMPLES / "envpy_common"
# Shapes the runbook routes onto its guarded connection, by the public template they follow.
ROUTABLE_SHAPES = (
    "alembic_generic",
    "flask_migrate_2x",
    "flask_migrate_3x",
    "flask_migrate_4x",
    "flask_migrate_4x_multidb",
    "cookbook_connection",
    "no_offline_branch",
    "engine_begin",
)
# The hivelog history, oldest first.
HIVELOG_REVISIONS = ("e1000000001a", "e1000000002b", "e1000000003c")


def assemble_envpy_project(shape: str, destination: Path) -> Path:
    """A project in ``destination``: hivelog, its migrations, and the shape's own env.py.

    The common parts (``envpy_common``) come first; whatever the shape's ``migrations/``
    holds (its env.py, and for some its script.py.mako and versions/) replaces them.
    """
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ENVPY_COMMON / "hivelog", destination / "hivelog", ignore=ignore)
    migrations = destination / "migrations"
    shutil.copytree(ENVPY_COMMON / "versions", migrations / "versions", ignore=ignore)
    for name in ("alembic.ini", "script.py.mako"):
        shutil.copy(ENVPY_COMMON / name, migrations / name)
    own = EXAMPLES / f"envpy_{shape}" / "migrations"
    if (own / "versions").is_dir():
        shutil.rmtree(migrations / "versions")
    shutil.copytree(own, migrations, ignore=ignore, dirs_exist_ok=True)
    return destination


# -- the oldest supported stack (tests/examples/oldest_stack) -----------------------------

OLDEST_STACK = EXAMPLES / "oldest_stack"
# beeyard's history, oldest first; the last two need a live connection.
BEEYARD_REVISIONS = ("f2000000001a", "f2000000002b", "f2000000003c", "f2000000004d")
LIVE_ONLY = BEEYARD_REVISIONS[2:]
# The factory call the runbooks load beeyard with: its config skips the upgrade on start.
BEEYARD_APP = 'beeyard:create_app("beeyard.config.Runbook")'


def assemble_oldest_stack(destination: Path) -> Path:
    """A copy of ``tests/examples/oldest_stack`` in ``destination``, with ``beeyard`` unimported."""
    shutil.copytree(OLDEST_STACK, destination, ignore=shutil.ignore_patterns("__pycache__"))
    for name in [m for m in sys.modules if m == "beeyard" or m.startswith("beeyard.")]:
        del sys.modules[name]
    return destination


def add_users(url: str, count: int) -> None:
    """``count`` more users (PostgreSQL), copies of the first with their own email (the seed
    makes few)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            columns = [c["name"] for c in sa.inspect(conn).get_columns("users")
                       if c["name"] not in ("id", "email")]
            listed = ", ".join(columns)
            conn.execute(sa.text(
                f"INSERT INTO users (email, {listed}) SELECT 'copy' || g || '@example.com', "
                f"{listed} FROM users, generate_series(1, :n) g "
                "WHERE users.id = (SELECT min(id) FROM users)"), {"n": count})
    finally:
        engine.dispose()


def add_hives(url: str, names: tuple[str, ...] = ("north-1", "south-2", "lone")) -> None:
    """Hives named ``<yard>-<n>`` (or without a yard), at revision f2000000002b or later."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for number, name in enumerate(names, start=1):
            conn.execute(sa.text("INSERT INTO hives (id, name) VALUES (:id, :name)"),
                         {"id": number, "name": name})
    engine.dispose()


# -- small example apps of real projects' shapes (tests/examples/<shape>/) ------------------


def load_example(shape: str, package: str, url: str, destination: Path, monkeypatch: Any) -> Project:
    """Load ``tests/examples/<shape>`` (its app package ``package``) from a copy in ``destination`` on ``url``."""
    root = destination / shape
    shutil.copytree(EXAMPLES / shape, root, ignore=shutil.ignore_patterns("__pycache__"))
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_app adds the project root
    monkeypatch.chdir(root)
    return load_project(app=f"{package}:create_app", migrations_dir="migrations", database_url=url)
