"""The history table: its columns, creating it (itself recorded), writing and reading rows.

One row per revision step or stamp a runbook made, plus the row that records the table's
creation. Every row carries the database's own identity (``database_id``, a UUID drawn when
the table was created), so the archive can tell which database a run wrote to without
comparing URLs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import RunbookError, first_line
from softbee.runbook.util.history_name import HISTORY_TABLE as HISTORY_TABLE
from softbee.urls import redact_text

#: The columns, in order. Times are ISO 8601 UTC text (the same on every database).
COLUMNS = ("id", "database_id", "run_id", "runbook", "direction", "revision_from",
           "revision_to", "started_at", "finished_at", "outcome", "user_host",
           "softbee_version", "alembic_version", "sha256", "detail")
#: Outcomes a row can have (``phase k of n`` and ``half-applied`` name where a run stopped).
APPLIED, STAMPED, ROLLED_BACK, HALF_APPLIED, CREATED = (
    "applied", "stamped", "rolled back", "half-applied", "created")
#: A run found ``alembic_version`` where no row left it, and recorded the move it did not make.
FOUND_OUTSIDE = "found moved outside"
DETAIL_LENGTH = 500


class HistoryUnavailable(RunbookError):
    """The history table cannot be created or written by this database role."""


@dataclass(frozen=True)
class HistoryRow:
    """One row of the history table."""

    id: int
    database_id: str
    run_id: str | None
    runbook: str
    direction: str
    revision_from: str | None
    revision_to: str | None
    started_at: str
    finished_at: str
    outcome: str
    user_host: str
    softbee_version: str
    alembic_version: str
    sha256: str | None
    detail: str | None

    def day(self) -> str:
        """The day the row finished, ``YYYY-MM-DD``."""
        return self.finished_at[:10]


def file_sha256(path: str | os.PathLike[str] | None) -> str | None:
    """The sha256 of a revision file (None when it cannot be read)."""
    try:
        return hashlib.sha256(Path(str(path)).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def label(revisions: Any) -> str:
    """Revisions as one text: ``base`` for none, joined by commas for several."""
    if revisions is None:
        return "base"
    if isinstance(revisions, str):
        return revisions
    return ",".join(sorted(revisions)) or "base"


def history_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The history table's definition under ``name``."""
    return sa.Table(
        name, metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("database_id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("revision_from", sa.String(255), nullable=True),
        sa.Column("revision_to", sa.String(255), nullable=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("user_host", sa.String(255), nullable=False),
        sa.Column("softbee_version", sa.String(32), nullable=False),
        sa.Column("alembic_version", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(DETAIL_LENGTH), nullable=True),
    )


def now() -> str:
    """The current UTC time as the table stores it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def has_history(connection: Connection, name: str) -> bool:
    """Whether the database has a history table called ``name``."""
    return sa.inspect(connection).has_table(name)


def database_id(connection: Connection, name: str) -> str | None:
    """The database's identity, from its history table's first row (None: no table, no row)."""
    if not has_history(connection, name):
        return None
    table = history_table(name)
    return connection.execute(
        sa.select(table.c.database_id).order_by(table.c.id).limit(1)).scalar_one_or_none()


def create_history(connection: Connection, name: str, row: Mapping[str, Any]) -> str:
    """Create the table and record its creation; return the database's new identity.

    ``row`` gives who, which run, and the revision the database is at (``revision_to``).
    Runs in a transaction of its own and commits it. A role that may not create tables gets
    :class:`HistoryUnavailable` in one line.
    """
    table = history_table(name)
    identity = str(uuid.uuid4())
    try:
        table.create(connection)
        connection.execute(table.insert().values(
            {"revision_from": None, "revision_to": None, **row, "database_id": identity,
             "direction": "create", "outcome": CREATED, "sha256": None,
             "detail": f"history table {name} created"}))
        connection.commit()
    except sa.exc.DBAPIError as exc:
        connection.rollback()
        if has_history(connection, name):  # another run created it meanwhile
            return database_id(connection, name) or identity
        reason = redact_text(first_line(getattr(exc, "orig", None) or exc))
        raise HistoryUnavailable(
            f"cannot create the history table {name} ({reason}): run once as a role that may "
            "create tables (any writing runbook creates it), or run with history=False"
        ) from None
    return identity


def insert_row(connection: Connection, name: str, row: Mapping[str, Any]) -> None:
    """Append ``row`` in ``connection``'s current transaction (the caller commits)."""
    values = dict(row)
    if values.get("detail"):
        values["detail"] = redact_text(str(values["detail"]))[:DETAIL_LENGTH]
    connection.execute(history_table(name).insert().values(values))


def read_rows(connection: Connection, name: str, limit: int | None = None) -> list[HistoryRow]:
    """The table's rows, oldest first (the last ``limit`` when given); none without a table."""
    if not has_history(connection, name):
        return []
    table = history_table(name)
    query = sa.select(table).order_by(table.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = [HistoryRow(**dict(row)) for row in connection.execute(query).mappings()]
    return list(reversed(rows))
