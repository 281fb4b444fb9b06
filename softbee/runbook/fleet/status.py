"""Fleet status without a kernel: every target's ``alembic_version`` against the scripts' heads.

The scripts are read once (Alembic's ``ScriptDirectory`` on the migrations folder;
no Flask app, no kernel). Each target gets one connection, opened with a connect
timeout, from a thread pool capped at ``workers``; targets on the same server share
a semaphore of ``per_server`` so one server never sees more than that many
connections from us at once.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from softbee.runbook.errors import ConfigError, first_line
from softbee.runbook.fleet.drift import DriftCheck, target_drift
from softbee.runbook.fleet.targets import Fleet, Target, TargetsError
from softbee.runbook.util.error_codes import UNDEFINED_TABLE, error_code
from softbee.urls import BadDatabaseURL, parse_url, redact_text

AT_HEAD = "at head"
BEHIND = "behind"
AHEAD = "ahead"
UNKNOWN = "unknown revision"
SEVERAL = "several heads"
UNREACHABLE = "unreachable"
#: The order states are shown in: the ones needing a person last, nearest the summary.
STATE_ORDER = (AT_HEAD, BEHIND, AHEAD, SEVERAL, UNKNOWN, UNREACHABLE)

DEFAULT_WORKERS = 16
DEFAULT_PER_SERVER = 8
DEFAULT_CONNECT_TIMEOUT_S = 5
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TargetStatus:
    """One target's place in the history: revision(s), state, and by how many revisions."""

    name: str
    wave: int
    server: str
    revision: str
    state: str
    steps: int = 0
    detail: str = ""
    drifted: bool | None = None  # with a drift check: True, False, or None when not checked
    drift: str = ""  # the drift check's one line ("" when none was asked for)

    @property
    def label(self) -> str:
        """The state as shown in the table: ``behind by 2``, ``at head``..."""
        if self.state in (BEHIND, AHEAD):
            return f"{self.state} by {self.steps}"
        return self.state


@dataclass(frozen=True)
class FleetStatus:
    """Every target's status and the heads they were compared with."""

    heads: tuple[str, ...]
    targets: tuple[TargetStatus, ...]

    @property
    def all_at_head(self) -> bool:
        """True when every target records exactly the heads."""
        return all(t.state == AT_HEAD for t in self.targets)

    def counts(self) -> dict[str, int]:
        """How many targets are in each state, in :data:`STATE_ORDER`."""
        found = Counter(t.state for t in self.targets)
        return {state: found[state] for state in STATE_ORDER if found[state]}

    @property
    def no_drift(self) -> bool:
        """True when no target drifted and every drift check asked for ran."""
        return all(not t.drift or t.drifted is False for t in self.targets)

    def summary(self) -> str:
        """One line: how many targets, how many at head, and the rest by state (and drift)."""
        total = len(self.targets)
        parts = [f"{n} {state}" for state, n in self.counts().items()]
        if any(t.drift for t in self.targets):
            parts.append(f"{sum(t.drifted is True for t in self.targets)} drifted")
            unchecked = sum(bool(t.drift) and t.drifted is None for t in self.targets)
            parts += [f"{unchecked} drift not checked"] if unchecked else []
        head = ",".join(self.heads) or "none"
        return f"{total} target(s), head {head}: " + ", ".join(parts)

    def groups(self) -> list[tuple[str, str, list[str]]]:
        """``(state label, revision, target names)`` for each distinct state and revision."""
        grouped: dict[tuple[str, str], list[str]] = {}
        ordered = sorted(
            self.targets, key=lambda t: (STATE_ORDER.index(t.state), t.steps, t.revision)
        )
        for target in ordered:
            grouped.setdefault((target.label, target.revision), []).append(target.name)
        return [(label, revision, names) for (label, revision), names in grouped.items()]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` and the fleet runbook."""
        return {
            "heads": list(self.heads),
            "all_at_head": self.all_at_head,
            "counts": self.counts(),
            "summary": self.summary(),
            "targets": [{**asdict(t), "label": t.label} for t in self.targets],
        }


def script_directory(migrations_dir: str | os.PathLike[str]) -> ScriptDirectory:
    """The revision scripts in ``migrations_dir`` (no Flask app needed)."""
    folder = Path(migrations_dir)
    if not (folder / "versions").is_dir():
        raise ConfigError(
            f"no revision scripts in {str(folder)!r} (versions/ missing): pass --migrations-dir"
        )
    return ScriptDirectory(str(folder))


class History:
    """The scripts' graph, asked only what the fleet table needs: ancestors and distances."""

    def __init__(self, script: ScriptDirectory, to: str | None = None) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        for revision in script.walk_revisions():
            down = revision.down_revision
            self.parents[revision.revision] = (
                () if down is None else (down,) if isinstance(down, str) else tuple(down)
            )
        self.heads = tuple(script.get_heads())
        if to not in (None, "head", "heads"):
            matches = [rev for rev in self.parents if rev.startswith(str(to))]
            if len(matches) != 1:
                raise ConfigError(
                    f"revision {to!r} is {'ambiguous' if matches else 'not in the scripts'}: "
                    "give a revision id from `flask db history`"
                )
            self.heads = (matches[0],)
        self._ancestors: dict[str, frozenset[str]] = {}

    def ancestors(self, revision: str) -> frozenset[str]:
        """``revision`` and every revision below it."""
        if revision not in self._ancestors:
            found: set[str] = set()
            stack = [revision]
            while stack:
                current = stack.pop()
                if current in found:
                    continue
                found.add(current)
                stack.extend(self.parents.get(current, ()))
            self._ancestors[revision] = frozenset(found)
        return self._ancestors[revision]

    def classify(self, current: Sequence[str]) -> tuple[str, int]:
        """``(state, steps)`` of a database recording ``current`` against the heads."""
        if len(current) > 1:
            return SEVERAL, 0
        if any(rev not in self.parents for rev in current):
            return UNKNOWN, 0
        if set(current) == set(self.heads):
            return AT_HEAD, 0
        below = self.ancestors(current[0]) if current else frozenset()
        wanted: set[str] = set()
        for head in self.heads:
            wanted |= self.ancestors(head)
        if below <= wanted:
            return BEHIND, len(wanted - below)
        return AHEAD, len(below - wanted)


def fleet_status(
    fleet: Fleet,
    migrations_dir: str | os.PathLike[str] = "migrations",
    *,
    environ: Mapping[str, str] | None = None,
    workers: int = DEFAULT_WORKERS,
    per_server: int = DEFAULT_PER_SERVER,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    version_table: str = "alembic_version",
    to: str | None = None,
    drift: DriftCheck | None = None,
) -> FleetStatus:
    """Read every target's recorded revision in parallel and place it against the heads.

    ``to`` compares with that revision instead of the heads (a release's revision):
    a target past it is *ahead*. ``drift`` (:mod:`.drift`) also checks each reachable
    target's schema against its recorded revision's.
    """
    history = History(script_directory(migrations_dir), to)
    environ = os.environ if environ is None else environ
    urls: dict[str, URL | None] = {}
    raw: dict[str, str] = {}
    for target in fleet.targets:
        try:
            raw[target.name] = target.resolve_url(environ)
            urls[target.name] = parse_url(raw[target.name])
        except (TargetsError, BadDatabaseURL):
            urls[target.name] = None
    gates: dict[str, threading.BoundedSemaphore] = {
        server: threading.BoundedSemaphore(max(1, per_server))
        for server in {_server(url) for url in urls.values()}
    }

    def one(target: Target) -> TargetStatus:
        url = urls[target.name]
        server = _server(url)
        if url is None:
            return TargetStatus(target.name, target.wave, server, "-", UNREACHABLE, 0,
                                f"no usable URL in {target.source}")
        with gates[server]:
            try:
                current = read_revisions(url, connect_timeout_s, version_table)
            except Exception as exc:  # noqa: BLE001 - any failure to read is "unreachable"
                reason = first_line(getattr(exc, "orig", None) or exc)
                return TargetStatus(target.name, target.wave, server, "-", UNREACHABLE, 0,
                                    redact_text(reason))
            found = target_drift(drift, raw[target.name]) if drift is not None else None
        state, steps = history.classify(current)
        return TargetStatus(target.name, target.wave, server, ",".join(current) or "base",
                            state, steps, drifted=found.drifted if found else None,
                            drift=found.message if found else "")

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(fleet.targets) or 1))) as pool:
        results = list(pool.map(one, fleet.targets))
    return FleetStatus(heads=history.heads, targets=tuple(results))


def read_revisions(
    url: URL, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    version_table: str = "alembic_version",
) -> tuple[str, ...]:
    """The revisions one database records: one connection, opened with a timeout, then closed.

    PostgreSQL (psycopg2) and SQLite are read with their drivers directly: one connect and
    one query, without SQLAlchemy's per-engine dialect set-up (five round trips a target).
    Other databases go through SQLAlchemy and Alembic's ``MigrationContext``.
    """
    if not _TABLE_NAME.match(version_table):
        raise ConfigError(f"version table {version_table!r} is not a plain table name")
    query = f"SELECT version_num FROM {version_table}"
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "postgresql" and driver == "psycopg2":
        import psycopg2

        params = {k: v for k, v in {
            "host": url.host, "port": url.port, "user": url.username,
            "password": url.password, "dbname": url.database}.items() if v is not None}
        # Born with the lock timeout (libpq options): a target whose version table someone
        # holds answers within it, like any session the runbooks open.
        connection = psycopg2.connect(
            **params, **dict(url.query), connect_timeout=max(1, int(connect_timeout_s)),
            application_name="softbee-runbook fleet status", **_bounded(backend, driver))
        try:
            connection.autocommit = True  # one query: no BEGIN round trip, no transaction left
            with connection.cursor() as cursor:
                try:
                    cursor.execute(query)
                except psycopg2.Error as exc:
                    if error_code(exc) == UNDEFINED_TABLE:
                        return ()
                    raise
                return tuple(row[0] for row in cursor.fetchall())
        finally:
            connection.close()
    if backend == "sqlite":
        import sqlite3

        database = url.database or ""
        if not database or not Path(database).is_file():  # sqlite would create an empty file
            raise FileNotFoundError(f"no SQLite file at {database!r}")
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                     timeout=connect_timeout_s)) as connection:
            try:
                return tuple(row[0] for row in connection.execute(query))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return ()
                raise
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=_bounded(backend, driver))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": version_table}
            )
            return tuple(context.get_current_heads())
    finally:
        engine.dispose()


# Like every session the runbooks open (project.sessions), a read waits at most this long for a
# lock: the 5000 ms a runbook without lock_timeout_ms has. fleet sits below project (layers).
READ_LOCK_TIMEOUT_MS = 5000


def _bounded(backend: str, driver: str) -> dict[str, Any]:
    """Connect arguments giving a new session the lock timeout (none for other drivers)."""
    if backend == "postgresql" and driver in ("psycopg2", "psycopg"):
        return {"options": f"-c lock_timeout={READ_LOCK_TIMEOUT_MS}"}
    if backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        seconds = -(-READ_LOCK_TIMEOUT_MS // 1000)
        return {"init_command": f"SET SESSION lock_wait_timeout = {seconds}, "
                                f"innodb_lock_wait_timeout = {seconds}"}
    return {}


def _server(url: URL | None) -> str:
    if url is None:
        return "-"
    if url.get_backend_name() == "sqlite":
        return "sqlite"
    return f"{url.get_backend_name()}://{url.host or 'localhost'}:{url.port or ''}"


def status_rows(status: FleetStatus, limit: int = 6) -> list[tuple[str, str, str, str]]:
    """Table rows ``(count, state, revision, targets)``: one per state and revision.

    Identical states collapse into one row with the first ``limit`` names, so a
    thousand targets at head take one line.
    """
    rows = []
    for label, revision, names in status.groups():
        shown = ", ".join(names[:limit]) + (f", ... (+{len(names) - limit})"
                                             if len(names) > limit else "")
        rows.append((str(len(names)), label, revision, shown))
    return rows


def drift_lines(status: FleetStatus) -> Iterable[str]:
    """``drift: NAME: ...`` for each drifted target, ``drift not checked: NAME: ...`` for the rest."""
    for t in status.targets:
        if t.drifted is True:
            yield f"drift: {t.name}: {t.drift}"
        elif t.drift and t.drifted is None:
            yield f"drift not checked: {t.name}: {t.drift}"


def unreachable(status: FleetStatus) -> Iterable[TargetStatus]:
    """The targets that could not be read, each with its one-line reason."""
    return (t for t in status.targets if t.state == UNREACHABLE)
