"""Where an online revision's progress is recorded: one row per phase, in the database itself.

A finished phase is recorded in :data:`PHASE_TABLE`, in the same transaction as its DDL or
right after its online work, so a re-run skips it; the records of a revision are deleted in
the transaction that moves ``alembic_version``. Offline, each phase is a comment line
(:data:`MARKER`) that :func:`phases_in_sql` and :func:`guarded_sql` read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

PHASE_TABLE = "softbee_runbook_phases"
MARKER = "-- softbee-runbook phase"
END_MARKER = "-- softbee-runbook phases end"

_metadata = sa.MetaData()
phase_table = sa.Table(
    PHASE_TABLE, _metadata,
    sa.Column("revision", sa.String(64), primary_key=True),
    sa.Column("direction", sa.String(10), primary_key=True),
    sa.Column("phase", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("phases", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("rows_done", sa.BigInteger),
    sa.Column("rows_total", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
)



@dataclass
class PhaseRecord:
    """One recorded phase of a revision in progress."""

    revision: str
    direction: str
    phase: int
    phases: int
    name: str
    state: str
    rows_done: int | None
    rows_total: int | None

    def describe(self) -> str:
        """``revision X: phase 2 of 3 (backfill users.full_name) running, 430,000 / 1,000,000 rows``."""
        rows = ""
        if self.rows_total is not None:
            rows = f", {self.rows_done or 0:,} / {self.rows_total:,} rows"
        return (f"revision {self.revision} ({self.direction}): phase {self.phase} of {self.phases} "
                f"({self.name}) {self.state}{rows}")


def recorded_phases(connection: Connection) -> list[PhaseRecord]:
    """Every recorded phase of revisions in progress (none when the table does not exist)."""
    if not sa.inspect(connection).has_table(PHASE_TABLE):
        return []
    rows = connection.execute(sa.select(phase_table).order_by(
        phase_table.c.revision, phase_table.c.direction, phase_table.c.phase)).mappings()
    return [PhaseRecord(**{k: row[k] for k in PhaseRecord.__dataclass_fields__}) for row in rows]


def in_progress(connection: Connection) -> list[str]:
    """One line per revision in progress: its furthest recorded phase (empty when none)."""
    furthest: dict[tuple[str, str], PhaseRecord] = {}
    for record in recorded_phases(connection):
        furthest[(record.revision, record.direction)] = record
    return [record.describe() for record in furthest.values()]


def ensure_table(connection: Connection) -> None:
    """Create the phase table unless it is there."""
    phase_table.create(connection, checkfirst=True)


def mark(connection: Connection, record: PhaseRecord) -> None:
    """Record ``record`` (insert, or update its state and rows)."""
    from sqlalchemy.dialects.postgresql import insert

    values = {k: getattr(record, k) for k in PhaseRecord.__dataclass_fields__}
    statement = insert(phase_table).values({**values, "updated_at": sa.func.now()})
    connection.execute(statement.on_conflict_do_update(
        index_elements=["revision", "direction", "phase"],
        set_={"state": statement.excluded.state, "rows_done": statement.excluded.rows_done,
              "rows_total": statement.excluded.rows_total, "updated_at": sa.func.now()}))


def guarded_sql(sql: str) -> str:
    """``sql`` without the statements of online phases: what runs inside the migration's transaction."""
    kept, online = [], False
    for line in sql.splitlines():
        if line == END_MARKER:
            online = False
        elif line.startswith(MARKER + " "):
            online = "(online" in line
        elif not online:
            kept.append(line)
    return "\n".join(kept)


def done_phases(connection: Connection, revision: str, direction: str) -> set[int]:
    """The phases of ``revision`` recorded as done."""
    rows = connection.execute(sa.select(phase_table.c.phase).where(
        phase_table.c.revision == revision, phase_table.c.direction == direction,
        phase_table.c.state == "done"))
    return {phase for (phase,) in rows}


def clear(connection: Connection, revision: str, direction: str) -> None:
    """Forget a finished revision's phases; the table goes too when nothing else is in progress.

    So between runs the database holds no table of the runbook's, and the project's
    ``flask db migrate`` never proposes dropping one.
    """
    connection.execute(phase_table.delete().where(
        phase_table.c.revision == revision, phase_table.c.direction == direction))
    if connection.execute(sa.select(phase_table.c.revision).limit(1)).first() is None:
        phase_table.drop(connection)


def phases_in_sql(sql: str) -> list[dict[str, Any]]:
    """The phases an offline rendering marked: number, of, where it runs, name."""
    found = []
    for line in sql.splitlines():
        if line.startswith(MARKER + " ") and line != END_MARKER:
            head, _, name = line[len(MARKER) + 1:].partition(": ")
            number, _, where = head.partition(" ")
            phase, _, of = number.partition("/")
            found.append({"phase": int(phase), "of": int(of), "runs": where.strip("()"), "name": name})
    return found
