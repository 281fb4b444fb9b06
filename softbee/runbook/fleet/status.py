"""Fleet status without a kernel: every target's ``alembic_version`` against the scripts' heads.

The scripts are read once (Alembic's ``ScriptDirectory`` on the migrations folder;
no Flask app, no kernel). Each database gets one connection, opened with a connect
timeout, from a thread pool capped at ``workers``; databases on the same server share
a semaphore of ``per_server`` so one server never sees more than that many
connections from us at once.

A target of a multi-database project (``bind_url_env``, :mod:`.binds`) is one database per
bind, each with its own ``alembic_version``: each is read and placed on its own
(:class:`BindStatus`), and the target is at head only when every bind is; otherwise it takes
the state of its furthest bind (unreachable when any bind is). Its drift is checked per bind
(:func:`.drift.bind_drift`), each bind's verdict kept on its :class:`BindStatus`.

Long because the table's rows and lines (``status_rows``, ``drift_lines``) sit beside the
statuses they show, and the per-bind drift added a few lines to a module just under 400.
"""

from __future__ import annotations

import dataclasses
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
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from softbee.runbook.errors import ConfigError, first_line
from softbee.runbook.fleet.binds import DEFAULT_BIND
from softbee.runbook.fleet.drift import (
    DriftCheck,
    TargetDrift,
    bind_drift,
    binds_drift,
    target_drift,
)
from softbee.runbook.fleet.graph import AHEAD as AHEAD
from softbee.runbook.fleet.graph import AT_HEAD as AT_HEAD
from softbee.runbook.fleet.graph import BEHIND as BEHIND
from softbee.runbook.fleet.graph import SEVERAL as SEVERAL
from softbee.runbook.fleet.graph import STATE_ORDER as STATE_ORDER
from softbee.runbook.fleet.graph import UNKNOWN as UNKNOWN
from softbee.runbook.fleet.graph import UNREACHABLE as UNREACHABLE
from softbee.runbook.fleet.graph import History as History
from softbee.runbook.fleet.graph import script_directory as script_directory
from softbee.runbook.fleet.graph import state_label
from softbee.runbook.fleet.targets import Fleet, Target, TargetsError
from softbee.runbook.util.error_codes import UNDEFINED_TABLE, error_code
from softbee.urls import BadDatabaseURL, parse_url, redact_text

DEFAULT_WORKERS = 16
DEFAULT_PER_SERVER = 8
DEFAULT_CONNECT_TIMEOUT_S = 5
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BindStatus:
    """One bind's database of a target: its revision(s), state, and by how many revisions."""

    bind: str
    server: str
    revision: str
    state: str
    steps: int = 0
    detail: str = ""
    drifted: bool | None = None  # with a drift check: this bind's verdict (None: not checked)
    drift: str = ""  # this bind's drift line ("" when none was asked for)

    @property
    def label(self) -> str:
        """The bind's state as shown in the table."""
        return state_label(self.state, self.steps)


@dataclass(frozen=True)
class TargetStatus:
    """One target's place in the history: revision(s), state, and by how many revisions.

    For a target with binds, ``binds`` holds each bind's status (the default bind first),
    ``revision`` the one revision they share or each bind's (``default=... audit=...``),
    and ``state`` is at head only when every bind is.
    """

    name: str
    wave: int
    server: str
    revision: str
    state: str
    steps: int = 0
    detail: str = ""
    drifted: bool | None = None  # with a drift check: True, False, or None when not checked
    drift: str = ""  # the drift check's one line ("" when none was asked for)
    binds: tuple[BindStatus, ...] = ()  # each bind's status, for a target with binds

    @property
    def label(self) -> str:
        """The state as shown in the table: ``behind by 2``, ``at head``..."""
        return state_label(self.state, self.steps)

    def bind_statuses(self) -> tuple[BindStatus, ...]:
        """Each bind's status; a target without binds is its default bind alone."""
        return self.binds or (BindStatus(DEFAULT_BIND, self.server, self.revision, self.state,
                                         self.steps, self.detail),)


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
    def has_binds(self) -> bool:
        """True when some target has binds: the table then shows a row per bind."""
        return any(t.binds for t in self.targets)

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

    def bind_groups(self) -> list[tuple[str, str, str, list[str]]]:
        """``(state label, bind, revision, target names)`` for each bind's distinct state."""
        order: dict[str, int] = {DEFAULT_BIND: 0}
        for target in self.targets:
            for part in target.binds:
                order.setdefault(part.bind, len(order))
        parts = sorted(((b, t.name) for t in self.targets for b in t.bind_statuses()),
                       key=lambda p: (STATE_ORDER.index(p[0].state), order[p[0].bind],
                                      p[0].steps, p[0].revision))
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for part, name in parts:
            grouped.setdefault((part.label, part.bind, part.revision), []).append(name)
        return [(label, bind, rev, names) for (label, bind, rev), names in grouped.items()]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` and the fleet runbook."""
        return {
            "heads": list(self.heads),
            "all_at_head": self.all_at_head,
            "counts": self.counts(),
            "summary": self.summary(),
            "targets": [{**asdict(t), "label": t.label,
                         "binds": [{**asdict(b), "label": b.label} for b in t.binds]}
                        for t in self.targets],
        }


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
    jobs = [job for target in fleet.targets for job in _jobs(target, environ)]
    gates: dict[str, threading.BoundedSemaphore] = {
        server: threading.BoundedSemaphore(max(1, per_server))
        for server in {_server(url) for _, _, url, _ in jobs}
    }

    def one(job: Job) -> tuple[BindStatus, TargetDrift | None]:
        target, bind, url, raw = job
        server = _server(url)
        where = target.source if bind == DEFAULT_BIND else target.bind_source(bind)
        if url is None:
            return BindStatus(bind, server, "-", UNREACHABLE, 0, f"no usable URL in {where}"), None
        with gates[server]:
            try:
                current = read_revisions(url, connect_timeout_s, version_table)
            except Exception as exc:  # noqa: BLE001 - any failure to read is "unreachable"
                reason = first_line(getattr(exc, "orig", None) or exc)
                return BindStatus(bind, server, "-", UNREACHABLE, 0, redact_text(reason)), None
            found = (None if drift is None else bind_drift(drift, raw, bind) if target.binds
                     else target_drift(drift, raw[bind]))
        state, steps = history.classify(current)
        return BindStatus(bind, server, ",".join(current) or "base", state, steps), found

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        results = list(pool.map(one, jobs))
    by_target: dict[str, list[tuple[BindStatus, TargetDrift | None]]] = {}
    for (target, _, _, _), result in zip(jobs, results, strict=True):
        by_target.setdefault(target.name, []).append(result)
    return FleetStatus(heads=history.heads, targets=tuple(
        _target_status(t, by_target[t.name], drift is not None) for t in fleet.targets))


Job = tuple[Target, str, "URL | None", dict[str, str]]


def _jobs(target: Target, environ: Mapping[str, str]) -> list[Job]:
    """``(target, bind, URL or None when unusable, every bind's raw URL)`` for each database."""
    raw: dict[str, str] = {}
    try:
        raw[DEFAULT_BIND] = target.resolve_url(environ)
    except TargetsError:
        pass
    if target.binds:
        try:
            raw.update(target.resolve_bind_urls(environ))
        except TargetsError:
            pass
    jobs = []
    for bind in (DEFAULT_BIND, *target.binds):
        try:
            url = parse_url(raw[bind]) if bind in raw else None
        except BadDatabaseURL:
            url = None
        jobs.append((target, bind, url, raw))
    return jobs


def _target_status(target: Target, parts: Sequence[tuple[BindStatus, TargetDrift | None]],
                   drift_asked: bool) -> TargetStatus:
    """The target's status from its binds': at head only when every bind is."""
    default, found = parts[0]
    drifted, drift_line = (found.drifted, found.message) if found else (None, "")
    if not target.binds:
        return TargetStatus(target.name, target.wave, default.server, default.revision,
                            default.state, default.steps, default.detail, drifted, drift_line)
    binds = tuple(dataclasses.replace(part, drifted=d.drifted if d else None,
                                      drift=d.message if d else "") for part, d in parts)
    if drift_asked:
        found = binds_drift([(b.bind, TargetDrift(b.drifted, b.drift or "drift not checked: "
                                                  "the bind could not be read")) for b in binds])
        drifted, drift_line = found.drifted, found.message
    lost = [b for b in binds if b.state == UNREACHABLE]
    worst = max(binds, key=lambda b: (STATE_ORDER.index(b.state), b.steps))
    revisions = {b.revision for b in binds}
    revision = (revisions.pop() if len(revisions) == 1
                else " ".join(f"{b.bind}={b.revision}" for b in binds))
    detail = "; ".join(f"{b.bind}: {b.detail}" for b in lost)
    return TargetStatus(target.name, target.wave, default.server, revision, worst.state,
                        worst.steps, detail, drifted, drift_line, binds)


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


def status_header(status: FleetStatus) -> tuple[str, ...]:
    """The table's header: with a BIND column when some target has binds."""
    if status.has_binds:
        return ("COUNT", "STATE", "BIND", "REVISION", "TARGETS")
    return ("COUNT", "STATE", "REVISION", "TARGETS")


def status_rows(status: FleetStatus, limit: int = 6) -> list[tuple[str, ...]]:
    """Table rows ``(count, state, revision, targets)``: one per state and revision.

    Identical states collapse into one row with the first ``limit`` names, so a
    thousand targets at head take one line. When some target has binds, a row is one
    bind's state: ``(count, state, bind, revision, targets)`` (see :func:`status_header`).
    """
    def names_shown(names: list[str]) -> str:
        return ", ".join(names[:limit]) + (f", ... (+{len(names) - limit})"
                                           if len(names) > limit else "")

    if status.has_binds:
        return [(str(len(names)), label, bind, revision, names_shown(names))
                for label, bind, revision, names in status.bind_groups()]
    return [(str(len(names)), label, revision, names_shown(names))
            for label, revision, names in status.groups()]


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
