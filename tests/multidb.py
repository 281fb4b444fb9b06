"""The two-database example (``tests/examples/multidb_twin_hives``): a copy, its databases, its reads.

Kept apart from ``tests/helpers.py`` so the engine, project and runbook tests of issue 23
share one way to load it: a fresh copy of the example per test (its ``twinhives`` module
unimported first, since the app reads its URLs at import), a default PostgreSQL database
and an audit database on PostgreSQL or SQLite, both created and dropped by the test.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
)

EXAMPLE = Path(__file__).resolve().parent / "examples" / "multidb_twin_hives"
APP = "twinhives:app"
HEAD = "a1000000004d"


def assemble(destination: Path) -> Path:
    """A copy of the example in ``destination``, with ``twinhives`` unimported."""
    shutil.copytree(EXAMPLE, destination, ignore=shutil.ignore_patterns("__pycache__"))
    forget_app()
    return destination


def forget_app() -> None:
    """Unimport ``twinhives`` so the next load reads ``AUDIT_DATABASE_URL`` again."""
    for name in [m for m in sys.modules if m == "twinhives" or m.startswith("twinhives.")]:
        del sys.modules[name]


@contextmanager
def two_databases(audit_kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A default PostgreSQL database and an audit one (``postgres``, ``mariadb`` or ``sqlite``), dropped after."""
    default = create_pg_database()
    audit = {"postgres": create_pg_database, "mariadb": create_mysql_database}.get(
        audit_kind, lambda: f"sqlite:///{tmp_path / 'audit.sqlite3'}")()
    try:
        yield default, audit
    finally:
        drop_pg_database(default)
        if audit_kind == "postgres":
            drop_pg_database(audit)
        elif audit_kind == "mariadb":
            drop_mysql_database(audit)


def recorded(url: str) -> str:
    """The revision ``alembic_version`` holds at ``url`` (``base`` when none)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return "base"
            return ",".join(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()) or "base"
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    """The tables at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    """Run ``statements`` at ``url`` and commit."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
