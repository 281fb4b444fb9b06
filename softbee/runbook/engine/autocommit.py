"""Alembic's own ``autocommit_block`` under the runbook: an online phase, or its plain form.

Real revisions write ``with op.get_context().autocommit_block(): op.create_index(...,
postgresql_concurrently=True)``. Alembic commits the transaction it is in and runs the
block in autocommit. On the runbook's connection (outside it, Alembic's method runs as is):

- **PostgreSQL, a run** (``online_run``): a block is a phase boundary. The work before
  block *k* (phase 2k-1) is checked by the data-loss guard and committed with its record;
  the block (phase 2k) runs in autocommit under the migration's advisory lock, with the
  session's ``lock_timeout`` (2 s when it has none), each ``op`` statement retried when it
  loses a lock; it is recorded running, then done, in ``softbee_runbook_phases``. A re-run
  after ``kill -9`` does not send again the ``op`` statements of a finished phase; an
  interrupted block runs again, where a ``CREATE INDEX`` of an index that exists and is
  valid is skipped, one left INVALID is dropped and built again, and a ``DROP INDEX`` of
  one already gone is skipped. Assumed: any other statement of a block may run twice, and
  statements sent through ``op.get_bind()`` before a block are safe to send again.
- **PostgreSQL, one transaction** (a rehearsal, a round trip): the block runs in it, its
  ``CREATE``/``DROP INDEX`` and ``REINDEX`` without ``CONCURRENTLY`` (the same result, but
  writes to the table wait while it runs), so everything still rolls back. A statement that
  cannot run in a transaction at all (``VACUUM``) is refused with the command to run.
- **SQLite**: the block runs in the runbook's transaction, under its guard (nothing there
  needs autocommit; ``postgresql_concurrently`` means nothing to it).
- **MySQL/MariaDB**: as Alembic runs it: the work so far committed, the block in autocommit.
"""

from __future__ import annotations

import ast
import re
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from softbee.runbook.online import phases
from softbee.runbook.online import record as phase_record
from softbee.runbook.online.phases import PhaseRecord, PhaseTiming, RunbookRunner
from softbee.runbook.project.routing import routed_connection

if TYPE_CHECKING:
    from alembic.script import Script

    from softbee.runbook.project import Project

_NAME = r'(?:"[^"]+"|\w+)(?:\s*\.\s*(?:"[^"]+"|\w+))?'
_CREATE_INDEX = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})\s+ON\b", re.IGNORECASE)
_DROP_INDEX = re.compile(
    rf"^\s*DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_NAME})",
    re.IGNORECASE)
_BLOCK_PHASE = re.compile(r"^(work before )?autocommit_block \d+")
_CONCURRENTLY = re.compile(
    r"^(\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+(?:\([^)]*\)\s*)?\w+))"
    r"\s+CONCURRENTLY\b", re.IGNORECASE)


# -- which revisions use it ------------------------------------------------------------------


def blocks_in(script: Script, direction: str) -> int:
    """How many ``autocommit_block`` calls the revision's ``upgrade()`` (or ``downgrade()``) makes.

    Calls in the module's other functions (helpers it may call) count for both directions.
    """
    try:
        with open(script.path, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return 0
    other = "downgrade" if direction == "upgrade" else "upgrade"
    return sum(
        1 for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name != other
        for call in ast.walk(node)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        and call.func.attr == "autocommit_block")


def native_revisions(scripts: list[Script], direction: str) -> list[str]:
    """The revisions of ``scripts`` that use ``autocommit_block`` in ``direction``."""
    return [s.revision for s in scripts if blocks_in(s, direction)]


def announce(dialect: str, scripts: list[Script], direction: str, *, rehearse: bool,
             round_trip: bool) -> str | None:
    """The line that says how this run treats the plan's ``autocommit_block``s (None: none, or phases)."""
    native = native_revisions(scripts, direction)
    if not native:
        return None
    listed = ", ".join(native)
    if dialect == "sqlite":
        return (f"{listed}: autocommit_block runs inside the runbook's transaction on SQLite, "
                "under its data-loss guard (nothing there needs autocommit; CONCURRENTLY is "
                "PostgreSQL's)")
    if dialect in ("mysql", "mariadb"):
        return (f"{listed}: autocommit_block runs as Alembic runs it on {dialect}: the revision's "
                "work so far is committed, then the block runs in autocommit")
    if rehearse or round_trip:
        run = "rehearsal" if rehearse else "round trip"
        return (f"{listed}: autocommit_block runs inside the {run}'s one transaction, without "
                f"CONCURRENTLY, so it can roll back (writes to the table wait while an index "
                "builds there); a statement that cannot run in a transaction (VACUUM) cannot be "
                f"{'rehearsed' if rehearse else 'round-tripped'}")
    return None


# -- the state of one revision under a phased run ------------------------------------------


@dataclass
class _Block:
    """The block running now: its runner (retries, messages) and whether an earlier run began it."""

    runner: RunbookRunner
    resuming: bool


@dataclass
class NativeRevision:
    """A revision run under ``online_run``: its blocks so far and its phases earlier runs recorded."""

    connection: Connection
    revision: str
    direction: str
    total: int
    done: set[int] = field(default_factory=set)
    running: set[int] = field(default_factory=set)
    blocks: int = 0
    skipping: bool = False
    block: _Block | None = None
    started: float = field(default_factory=time.perf_counter)


_revision: ContextVar[NativeRevision | None] = ContextVar("softbee_runbook_native", default=None)


@contextmanager
def revision_running(connection: Connection, script: Script, direction: str) -> Iterator[NativeRevision]:
    """While one revision of a phased run migrates: its blocks become phases (see module)."""
    total = 2 * blocks_in(script, direction)
    state = NativeRevision(connection, script.revision, direction, total)
    # Read whether or not its file shows a block: one may sit in a helper of another module
    # (records of ``online.run_phases`` phases are that runner's, and left to it).
    for record in phases.recorded_phases(connection):
        if ((record.revision, record.direction) == (script.revision, direction)
                and _BLOCK_PHASE.match(record.name)):
            (state.done if record.state == "done" else state.running).add(record.phase)
    state.skipping = 1 in state.done
    token = _revision.set(state)
    try:
        yield state
    finally:
        _revision.reset(token)


def finish_revision(state: NativeRevision) -> None:
    """Forget the revision's records, in the transaction that moves ``alembic_version``."""
    if state.blocks or state.done or state.running:
        if sa.inspect(state.connection).has_table(phases.PHASE_TABLE):
            phase_record.clear(state.connection, state.revision, state.direction)


# -- the hooks -------------------------------------------------------------------------------

_original_autocommit_block = MigrationContext.autocommit_block
_original_exec = DefaultImpl._exec


@contextmanager
def _autocommit_block(self: MigrationContext) -> Iterator[None]:
    """``MigrationContext.autocommit_block``, on the runbook's connection as the module says."""
    connection = self.connection
    if self.as_sql or connection is None or connection is not routed_connection():
        with _original_autocommit_block(self):
            yield
        return
    dialect = connection.dialect.name
    phasing = phases._phasing.get()
    state = _revision.get()
    if (dialect == "postgresql" and phasing is not None and phasing.connection is connection
            and state is not None and state.connection is connection):
        with _as_phase(self, state, phasing):
            yield
    elif dialect in ("mysql", "mariadb"):
        with _as_alembic_does(connection):
            yield
    else:
        with _in_the_transaction(connection):
            yield


MigrationContext.autocommit_block = _autocommit_block  # type: ignore[assignment,method-assign]


def _exec(self: DefaultImpl, construct: Any, *args: Any, **kw: Any) -> Any:
    """``DefaultImpl._exec``: skipped in a finished phase; in a block, retried and made re-runnable."""
    state = _revision.get()
    if state is None or self.as_sql or self.connection is not state.connection:
        return _original_exec(self, construct, *args, **kw)
    if state.skipping:
        return None  # a phase an earlier run finished and committed
    if state.block is None or any(args) or any(kw.values()):  # options or parameters: as is
        return _original_exec(self, construct, *args, **kw)
    statement = sa.text(construct) if isinstance(construct, str) else construct
    return _run_in_block(self.connection, state.block, statement)


DefaultImpl._exec = _exec  # type: ignore[method-assign]


# -- PostgreSQL: a phase -------------------------------------------------------------------


@contextmanager
def _as_phase(context: MigrationContext, state: NativeRevision, phasing: phases.Phasing) -> Iterator[None]:
    state.blocks += 1
    block = state.blocks
    before, number = 2 * block - 1, 2 * block
    total = state.total = max(state.total, number)
    runner = RunbookRunner(context, state.revision, state.direction, phasing)
    connection = state.connection
    name = f"work before autocommit_block {block}"
    label = f"{state.revision} phase {before}/{total} (in the transaction): {name}"
    if before in state.done:
        _skipped(runner, label, before, total, name, "in the transaction")
    else:
        phase_record.ensure_table(connection)
        phase_record.mark(connection, PhaseRecord(state.revision, state.direction, before, total,
                                             name, "done", None, None))  # with its work
        runner.say(f"      {label}")
        _timed(runner, before, total, name, "in the transaction", state.started)
    state.skipping = False
    name = f"autocommit_block {block} ({state.direction})"
    label = f"{state.revision} phase {number}/{total} (online): {name}"
    if number in state.done:
        _skipped(runner, label, number, total, name, "online")
        state.skipping = True
        try:
            yield
        finally:
            state.skipping = number + 1 in state.done
        return
    resuming = number in state.running
    started = time.perf_counter()
    record = PhaseRecord(state.revision, state.direction, number, total, name, "running", None, None)
    with runner.outside_transaction() as autocommit:  # the guard checks and commits the work before
        phase_record.mark(autocommit, record)
        runner.say(f"      {label}" + (": begun by an earlier run that did not finish, run again"
                                       if resuming else ""))  # said once the work before is committed
        state.block = _Block(runner, resuming)
        try:
            yield
        finally:
            state.block = None
        record.state = "done"
        phase_record.mark(autocommit, record)
    _timed(runner, number, total, name, "online", started)
    state.started = time.perf_counter()
    state.skipping = number + 1 in state.done


def _skipped(runner: RunbookRunner, label: str, number: int, total: int, name: str, runs: str) -> None:
    runner.say(f"      {label}: done by an earlier run, skipped")
    runner.timings.append(PhaseTiming(runner.revision, number, total, name, runs, 0.0, skipped=True))


def _timed(runner: RunbookRunner, number: int, total: int, name: str, runs: str, started: float) -> None:
    seconds = round(time.perf_counter() - started, 3)
    runner.timings.append(PhaseTiming(runner.revision, number, total, name, runs, seconds))
    runner.say(f"      done in {seconds:.3f}s")


def _run_in_block(connection: Connection, block: _Block, statement: Any) -> Any:
    """One statement of a block: retried on a lost lock; an index statement made re-runnable."""
    sql = str(statement.compile(dialect=connection.dialect))
    runner = block.runner
    created = _CREATE_INDEX.match(sql)
    dropped = _DROP_INDEX.match(sql)
    drop_if_invalid: Callable[[], None] | None = None
    if created:
        index = created["name"]

        def drop_if_invalid() -> None:
            if _index_valid(connection, index) is False:
                runner.say(f"      index {index} is INVALID (a build that failed or was killed): "
                           "dropping it and building it again")
                runner.execute(connection, f"DROP INDEX CONCURRENTLY IF EXISTS {index}")

        drop_if_invalid()
        if block.resuming and _index_valid(connection, index):
            runner.say(f"      index {index} exists and is valid (an earlier run built it): skipped")
            return None
        runner.execute(connection, statement,
                       before_retry=drop_if_invalid if created["concurrently"] else None)
        return None
    if dropped and block.resuming and _index_valid(connection, dropped["name"]) is None:
        runner.say(f"      index {dropped['name']} is already gone (an earlier run dropped it): skipped")
        return None
    runner.execute(connection, statement)
    return None


def _index_valid(connection: Connection, name: str) -> bool | None:
    """pg_index.indisvalid of the index ``name`` (as SQL writes it; None when there is none)."""
    return connection.execute(sa.text(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
        {"name": name}).scalar()


# -- elsewhere ------------------------------------------------------------------------------


@contextmanager
def _as_alembic_does(connection: Connection) -> Iterator[None]:
    """MySQL/MariaDB: commit the work so far, run the block in autocommit (DDL commits there anyway)."""
    connection.commit()
    level = connection.get_isolation_level()
    connection.execution_options(isolation_level="AUTOCOMMIT")
    autocommit = connection.begin()  # SQLAlchemy's own bookkeeping; no BEGIN is sent
    try:
        yield
    finally:
        autocommit.commit()
        connection.execution_options(isolation_level=level)


@contextmanager
def _in_the_transaction(connection: Connection) -> Iterator[None]:
    """The block inside the runbook's transaction; on PostgreSQL without CONCURRENTLY."""

    def plain(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
              _many: bool) -> tuple[str, Any]:
        return _CONCURRENTLY.sub(r"\1", statement, count=1), parameters

    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        sa.event.listen(connection, "before_cursor_execute", plain, retval=True)
    try:
        yield
    except Exception as exc:
        exc._softbee_autocommit_block = True  # type: ignore[attr-defined]
        raise
    finally:
        if postgresql:
            sa.event.remove(connection, "before_cursor_execute", plain)


def in_a_block(exc: BaseException) -> bool:
    """True when ``exc`` was raised by a statement of an ``autocommit_block`` run in a transaction."""
    return bool(getattr(exc, "_softbee_autocommit_block", False))


def refused_advice(project: Project, direction: str, script: Script, run: str) -> str:
    """The commands that do exactly the step refused: ``script`` in ``direction``, from where it starts.

    ``flask db upgrade <rev>`` runs only ``<rev>`` once the database is at its down_revision,
    so the runbook goes there first; a downgrade goes to the revision itself, then one step down.
    Every command is complete for this project (app, migrations folder, database).
    """
    from softbee.runbook.project.advice import database_argument, runbook_command
    from softbee.runbook.review.state import down_revisions

    parents = down_revisions(script)
    parent = parents[0] if len(parents) == 1 else None
    # Where the refused step starts, and where it ends.
    start, end = (parent, script.revision) if direction == "upgrade" else (script.revision, parent)

    def runbook(target: str | None, **flags: Any) -> str:
        return runbook_command(project, "upgrade_downgrade", direction=direction,
                               target=target or "base", **flags)

    if run in ("rehearsal", "round trip"):
        flag = {"rehearse": True} if run == "rehearsal" else {"round_trip": True}
        return (f"{run} the revisions before it with `` {runbook(start, **flag)} ``, then "
                f"run {script.revision} for real, without {run}: `` {runbook(end)} `` "
                "(there its autocommit_block runs outside the transaction, as an online phase on "
                "PostgreSQL)")
    flask = (f"DATABASE_URL={database_argument(project)} flask --app {shlex.quote(project.app_spec)} "
             f"db {direction} -d {shlex.quote(project.migrations_spec)} ")
    flask += (f"{script.revision} `` (from {start or 'base'} it runs only {script.revision})"
              if direction == "upgrade" else
              f"{end or 'base'} `` (from {start} it undoes only {script.revision})")
    return (f"run the runbook to {start or 'base'} with `` {runbook(start)} ``, then that one step "
            f"with Alembic, outside any transaction of the runbook's: `` {flask}, then come "
            "back to the runbook")
