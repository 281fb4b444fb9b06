"""A scratch copy of a MySQL/MariaDB database, for rehearsals and dry runs DDL cannot roll back.

On PostgreSQL and SQLite a rehearsal is the real run rolled back. On MySQL every DDL
statement commits on its own, so the only honest rehearsal is on a copy: a temporary
database on the same server holding the schema (``SHOW CREATE TABLE``, foreign keys
included) and the rows of every table, dropped afterwards whatever happens. A database
too big to copy is refused with its size rather than rehearsed on the real tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import GuardError
from softbee.runbook.project import Project

MAX_SCRATCH_ROWS = 1_000_000  # above this a copy takes minutes and doubles the disk used


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def estimated_rows(connection: Connection) -> int:
    """Rows in the database's tables, from information_schema (InnoDB's estimate)."""
    total = connection.exec_driver_sql(
        "SELECT COALESCE(SUM(TABLE_ROWS), 0) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'").scalar_one()
    return int(total)


@contextmanager
def scratch_copy(
    project: Project, connection: Connection, max_rows: int = MAX_SCRATCH_ROWS
) -> Iterator[Project]:
    """The project on a temporary copy of its database (schema and rows), dropped at the end."""
    if connection.dialect.name not in ("mysql", "mariadb"):
        raise GuardError(f"rehearsal on a scratch copy is built for MySQL and MariaDB, not "
                         f"{connection.dialect.name}: rehearse on a staging database instead")
    source = connection.exec_driver_sql("SELECT DATABASE()").scalar_one()
    rows = estimated_rows(connection)
    if rows > max_rows:
        raise GuardError(
            f"a rehearsal copies the database first, and {source} holds about {rows:,} rows "
            f"(more than {max_rows:,}): rehearse on a smaller copy (a staging database) instead"
        )
    name = f"{source}_rehearsal_{uuid.uuid4().hex[:8]}"[:64]
    tables = sa.inspect(connection).get_table_names()
    connection.exec_driver_sql(f"CREATE DATABASE {_quote(name)}")
    connection.commit()
    scratch = project.on_url(project.url.set(database=name))  # bounded like the project's
    try:
        with scratch.connect() as copy:
            copy.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                ddl = connection.exec_driver_sql(f"SHOW CREATE TABLE {_quote(table)}").one()[1]
                copy.exec_driver_sql(ddl)  # unqualified: created (and its FKs resolved) in the copy
                copy.exec_driver_sql(
                    f"INSERT INTO {_quote(table)} SELECT * FROM {_quote(source)}.{_quote(table)}")
                copy.commit()
            copy.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 1")
        yield scratch
    finally:
        scratch.engine.dispose()
        connection.rollback()
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quote(name)}")
        connection.commit()
