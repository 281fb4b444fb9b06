"""Online operations for revisions on large, busy tables: one phase, one object, one record.

A revision lists its work as phases and hands them to :func:`run_phases`::

    from softbee.runbook import online

    def upgrade():
        online.run_phases(
            revision,
            online.ddl("add users.full_name, nullable", add_full_name),
            online.backfill(users, {"full_name": users.c.first_name + " " + users.c.last_name},
                            where=users.c.full_name.is_(None)),
            online.set_not_null("users", "full_name", existing_type=sa.String(200)),
        )

On PostgreSQL each online phase runs outside any long transaction: the backfill in
keyset batches of about ``batch_ms`` each, NOT NULL through a ``NOT VALID`` check that
is validated without blocking writes, indexes with ``CREATE INDEX CONCURRENTLY``,
foreign keys ``NOT VALID`` then validated. Every phase is idempotent, and the finished
ones are recorded (``phases.py``), so a run killed at any moment is finished by a
re-run. Elsewhere (SQLite, MySQL/MariaDB), offline, in a rehearsal, or inside a
transaction the phases cannot leave, each phase falls back to its plain form in the
migration's transaction: the revision still works under plain ``flask db upgrade``.

Package ``softbee.runbook.online``: what revisions import (this module) and how phases
run (``phases``) and are recorded (``record``). Imports nothing of the library but
:mod:`softbee.runbook.errors`: a revision file can import it without loading the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from softbee.runbook.errors import MigrationFailed
from softbee.runbook.online.phases import Batches, Phase, PhaseRunner, runner_for
from softbee.runbook.online.throttle import (
    Throttle,
    default_pause_file,
    pause_backfills,
    resume_backfills,
)

__all__ = [
    "Phase", "Throttle", "add_foreign_key", "backfill", "create_index", "ddl", "default_pause_file",
    "pause_backfills", "resume_backfills", "run_phases", "set_not_null",
]


@dataclass
class _Ddl(Phase):
    apply: Callable[[], None] = lambda: None

    def plain(self) -> None:
        self.apply()


def ddl(name: str, apply: Callable[[], None]) -> Phase:
    """Short schema change(s) made by ``apply`` with ``op``: they run under the runbook's guard."""
    return _Ddl(name=name, apply=apply)


@dataclass
class _Backfill(Phase):
    table: sa.TableClause | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    where: Any = None
    key: str = "id"
    batch_ms: int = 100
    pause_ms: int = 0

    def __post_init__(self) -> None:
        self.online = True

    def _update(self) -> Any:
        assert self.table is not None
        return self.table.update().values(dict(self.values)).where(self.where)

    def plain(self) -> None:
        op.execute(self._update())

    def run_online(self, connection: Connection, runner: PhaseRunner) -> None:
        assert self.table is not None
        key = self.table.c[self.key]
        total = connection.execute(
            sa.select(sa.func.count()).select_from(self.table).where(self.where)).scalar_one()
        batches = Batches(runner, total=int(total), batch_ms=self.batch_ms, pause_ms=self.pause_ms,
                          table=self.table.name)
        low = connection.execute(sa.select(sa.func.min(key)).where(self.where)).scalar()
        above = None if low is None else key >= low  # the first batch starts at the first row to do
        while above is not None:
            upper = connection.execute(
                sa.select(key).where(above).order_by(key).offset(batches.size - 1).limit(1)
            ).scalar()
            batches.run(connection, self._update().where(
                above if upper is None else sa.and_(above, key <= upper)))
            above = None if upper is None else key > upper
        batches.finish(connection)


def backfill(
    table: sa.TableClause,
    values: Mapping[str, Any],
    *,
    where: Any,
    key: str = "id",
    batch_ms: int = 100,
    pause_ms: int = 0,
) -> Phase:
    """Set ``values`` on the rows ``where`` selects, in keyset batches of about ``batch_ms`` each.

    ``where`` must exclude rows already done (``full_name IS NULL``): a re-run skips them.
    """
    if where is None:
        raise ValueError("backfill needs where= selecting only rows not yet done, so a re-run skips them")
    name = f"backfill {table.name}.{', '.join(values)}"
    return _Backfill(name=name, table=table, values=values, where=where, key=key,
                     batch_ms=batch_ms, pause_ms=pause_ms)


@dataclass
class _SetNotNull(Phase):
    table: str = ""
    column: str = ""
    existing_type: Any = None

    def __post_init__(self) -> None:
        self.online = True

    @property
    def check_name(self) -> str:
        return f"ck_{self.table}_{self.column}_not_null"[:63]

    def plain(self) -> None:
        if _shown_as_postgresql_sql(self._statements()):
            return
        with op.batch_alter_table(self.table) as batch:
            batch.alter_column(self.column, existing_type=self.existing_type, nullable=False)

    def _statements(self) -> list[str]:
        table, column, check = _q(self.table), _q(self.column), _q(self.check_name)
        return [
            f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID",
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}",
            f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
            f"ALTER TABLE {table} DROP CONSTRAINT {check}",
        ]

    def run_online(self, connection: Connection, runner: PhaseRunner) -> None:
        nullable = connection.execute(sa.text(
            "SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
            "AND attname = :c"), {"t": self.table, "c": self.column}).scalar_one()
        add, validate, set_not_null, drop = self._statements()
        if nullable:
            if not _constraint_exists(connection, self.table, self.check_name):
                runner.execute(connection, add)          # brief lock, no scan
            runner.execute(connection, validate)         # scans; does not block writes
            runner.execute(connection, set_not_null)     # no scan: the valid check proves it
        if _constraint_exists(connection, self.table, self.check_name):
            runner.execute(connection, drop)


def set_not_null(table: str, column: str, *, existing_type: Any = None) -> Phase:
    """Make ``table.column`` NOT NULL; on PostgreSQL without a write-blocking scan."""
    return _SetNotNull(name=f"set {table}.{column} NOT NULL", table=table, column=column,
                       existing_type=existing_type)


@dataclass
class _CreateIndex(Phase):
    index: str = ""
    table: str = ""
    columns: Sequence[str] = ()
    unique: bool = False

    def __post_init__(self) -> None:
        self.online = True

    def plain(self) -> None:
        if _shown_as_postgresql_sql([self._statement()]):
            return
        op.create_index(self.index, self.table, list(self.columns), unique=self.unique)

    def _statement(self) -> str:
        unique = "UNIQUE " if self.unique else ""
        columns = ", ".join(_q(c) for c in self.columns)
        return (f"CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {_q(self.index)} "
                f"ON {_q(self.table)} ({columns})")

    def run_online(self, connection: Connection, runner: PhaseRunner) -> None:
        def drop_if_invalid() -> None:
            if self._valid(connection) is False:
                runner.say(f"      index {self.index} is INVALID (a build that failed or was "
                           "killed): dropping it and building it again")
                runner.execute(connection, f"DROP INDEX CONCURRENTLY IF EXISTS {_q(self.index)}")

        drop_if_invalid()
        if self._valid(connection) is not True:
            # A build that loses its lock leaves an INVALID index, which IF NOT EXISTS would
            # then skip: each retry drops it first.
            runner.execute(connection, self._statement(), before_retry=drop_if_invalid)
        if self._valid(connection) is not True:  # never recorded as done unless usable
            raise MigrationFailed(f"index {self.index} is not valid after CREATE INDEX "
                                  "CONCURRENTLY: run the revision again to rebuild it")

    def _valid(self, connection: Connection) -> bool | None:
        """pg_index.indisvalid of the index (None when it does not exist)."""
        return connection.execute(sa.text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :name AND n.nspname = current_schema()"), {"name": self.index}).scalar()


def create_index(index: str, table: str, columns: Sequence[str], *, unique: bool = False) -> Phase:
    """Create an index; on PostgreSQL ``CONCURRENTLY``, rebuilding one left INVALID."""
    return _CreateIndex(name=f"create index {index} on {table}", index=index, table=table,
                        columns=tuple(columns), unique=unique)


@dataclass
class _AddForeignKey(Phase):
    constraint: str = ""
    source: str = ""
    referent: str = ""
    local: Sequence[str] = ()
    remote: Sequence[str] = ()
    ondelete: str | None = None

    def __post_init__(self) -> None:
        self.online = True

    def plain(self) -> None:
        if _shown_as_postgresql_sql(self._statements()):
            return
        with op.batch_alter_table(self.source) as batch:
            batch.create_foreign_key(self.constraint, self.referent, list(self.local),
                                     list(self.remote), ondelete=self.ondelete)

    def _statements(self) -> list[str]:
        on_delete = f" ON DELETE {self.ondelete}" if self.ondelete else ""
        return [
            f"ALTER TABLE {_q(self.source)} ADD CONSTRAINT {_q(self.constraint)} FOREIGN KEY "
            f"({', '.join(_q(c) for c in self.local)}) REFERENCES {_q(self.referent)} "
            f"({', '.join(_q(c) for c in self.remote)}){on_delete} NOT VALID",
            f"ALTER TABLE {_q(self.source)} VALIDATE CONSTRAINT {_q(self.constraint)}",
        ]

    def run_online(self, connection: Connection, runner: PhaseRunner) -> None:
        add, validate = self._statements()
        if not _constraint_exists(connection, self.source, self.constraint):
            runner.execute(connection, add)
        runner.execute(connection, validate)  # a no-op when already valid


def add_foreign_key(
    constraint: str,
    source: str,
    referent: str,
    local: Sequence[str],
    remote: Sequence[str],
    *,
    ondelete: str | None = None,
) -> Phase:
    """Add a foreign key; on PostgreSQL ``NOT VALID`` first, then validated without blocking writes."""
    return _AddForeignKey(name=f"add foreign key {constraint} on {source}", constraint=constraint,
                          source=source, referent=referent, local=tuple(local),
                          remote=tuple(remote), ondelete=ondelete)


def run_phases(revision: str, *phases: Phase, direction: str = "upgrade") -> None:
    """Run ``phases`` of ``revision`` in order, skipping the ones an interrupted run finished."""
    runner_for(op.get_context(), revision, direction).run(list(phases))


def _shown_as_postgresql_sql(statements: list[str]) -> bool:
    """Offline on PostgreSQL, write the online form's statements (what ``inspect_diff`` shows)."""
    context = op.get_context()
    if context.dialect.name != "postgresql" or not context.as_sql:
        return False
    for statement in statements:
        op.execute(statement)
    return True


def _constraint_exists(connection: Connection, table: str, name: str) -> bool:
    return connection.execute(sa.text(
        "SELECT 1 FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND conname = :n"),
        {"t": table, "n": name}).first() is not None


def _q(name: str) -> str:
    """A PostgreSQL identifier, quoted when it must be (reserved words, capitals)."""
    return _PG_QUOTE.quote(name)


_PG_QUOTE = postgresql.dialect().identifier_preparer
