"""Drift of many databases of one project (``fleet status --drift``, ``fleet run``'s gate).

:class:`FleetDrift` loads the app once, builds one expected schema per dialect and revision
(shared by every target at that revision), and answers per target URL. A full reflection of
each target costs a few dozen catalogue queries, each compiled again on every new engine; so
each target's schema is first reduced to one fingerprint, read with one query
(:func:`schema_fingerprint`: PostgreSQL and SQLite). A target whose fingerprint equals that of
a target found clean at the same revision is clean (the fingerprint covers every column,
default, index, constraint and enum type the comparison reads, and more: names); any other is
reflected and compared in full. MySQL/MariaDB targets are always compared in full.

A target of a multi-database project is checked bind by bind (:meth:`FleetDrift.check_bind`):
each bind's database against the schema its recorded revision produces for that bind (the
bind's own ``upgrade_<bind>`` functions and metadata). Everything cached (expected schemas,
clean fingerprints) is keyed by bind too: two binds at one revision have different tables.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from softbee.runbook.errors import ConfigError
from softbee.runbook.project import Project
from softbee.runbook.project.core import DEFAULT_BIND
from softbee.runbook.review.drift import NOT_CHECKED, Drift, _cause, check_drift, skipped_tables
from softbee.runbook.review.expected import SchemaSnapshot, expected_schema
from softbee.runbook.review.state import current_revisions
from softbee.urls import parse_url

Key = tuple[str, str | None, str | None]  # (dialect, bind, revision)

_PG_FINGERPRINT = """
SELECT md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) FROM (
  SELECT 'c ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS line
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
     AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> ALL(%(skip)s)
  UNION ALL
  SELECT 'i ' || c.relname || ' ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relname <> ALL(%(skip)s)
  UNION ALL
  SELECT 'k ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relname <> ALL(%(skip)s)
  UNION ALL
  SELECT 'e ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
   WHERE pg_type_is_visible(t.oid) GROUP BY t.typname
) lines
"""


def schema_fingerprint(connection: Connection, skip: Iterable[str]) -> str | None:
    """One text standing for the whole schema (None where the dialect has no fingerprint)."""
    skipped = sorted(skip)
    name = connection.dialect.name
    if name == "postgresql":
        return str(connection.exec_driver_sql(_PG_FINGERPRINT, {"skip": skipped}).scalar())
    if name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
            "ORDER BY type, name").all()
        return "\n".join(" ".join(row) for row in rows if row[2] not in skipped)
    return None


# Bounds of the quick read: like every session the runbooks open, it waits for a lock 5 s at most.
QUICK_CONNECT_TIMEOUT_S = 5
QUICK_LOCK_TIMEOUT_MS = 5000


def quick_read(url: str, skip: Iterable[str], version_table: str = "alembic_version",
               ) -> tuple[tuple[str, ...], str] | None:
    """``(recorded revisions, fingerprint)`` with one driver connection and two queries, no
    SQLAlchemy session (PostgreSQL and SQLite); None for other databases."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "sqlite") or not version_table.replace("_", "").isalnum():
        return None
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        if backend == "postgresql":
            kwargs.update(connect_timeout=QUICK_CONNECT_TIMEOUT_S,
                          options=f"-c lock_timeout={QUICK_LOCK_TIMEOUT_MS}")
        elif not Path(parsed.database or "").is_file():
            return None  # the full check says what is wrong
        raw = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    finally:
        engine.dispose()
    try:
        cursor = raw.cursor()
        skipped = sorted(skip)
        if backend == "postgresql":
            cursor.execute(_PG_FINGERPRINT, {"skip": skipped})
            fingerprint = str(cursor.fetchone()[0])
        else:
            cursor.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                           "ORDER BY type, name")
            fingerprint = "\n".join(" ".join(row) for row in cursor.fetchall()
                                    if row[2] not in skipped)
        try:
            cursor.execute(f"SELECT version_num FROM {version_table}")
            recorded = tuple(str(row[0]) for row in cursor.fetchall())
        except Exception:  # noqa: BLE001 - no version table: the full check says so
            return None
        return recorded, fingerprint
    finally:
        raw.close()


class FleetDrift:
    """Drift of many databases of one project: one app, one expected schema per dialect and revision.

    Called with a target's URL (text) it returns that database's :class:`Drift`; thread-safe.
    """

    def __init__(self, app: str = "softbee:create_app", migrations_dir: str = "migrations") -> None:
        self.app, self.migrations_dir = app, migrations_dir
        self._project: Project | None = None
        # Keyed by (dialect, bind, revision): bind None for a one-database project.
        self._expected: dict[Key, SchemaSnapshot] = {}
        self._clean: dict[Key, set[str]] = {}
        self._lock = threading.Lock()
        self._build = threading.Lock()
        self._first: dict[Key, threading.Lock] = {}

    def __call__(self, url: str) -> Drift:
        """The drift of the database at ``url``; never raises."""
        try:
            project = self._base(url)
        except Exception as exc:  # noqa: BLE001 - an app that cannot be loaded
            return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")
        return self._drift(project, url)

    def check_bind(self, urls: Mapping[str, str], bind: str) -> Drift:
        """The drift of one bind of a multi-database target; never raises.

        ``urls`` holds every bind's URL, the default database's under ``"default"``; the
        bind is compared with the schema its recorded revision produces for that bind.
        """
        try:
            side = self._bind_project(self._base(urls[DEFAULT_BIND]), urls, bind)
        except Exception as exc:  # noqa: BLE001 - an app or a bind that cannot be read
            return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")
        try:
            return self._drift(side, urls[bind], side)
        finally:
            side.engine.dispose()

    @staticmethod
    def _bind_project(base: Project, urls: Mapping[str, str], bind: str) -> Project:
        """``base`` as bind ``bind`` of the target whose binds are at ``urls``."""
        from softbee.runbook.project.binds import bind_urls_of, for_bind, is_multi_database

        default = base.on_url(parse_url(urls[DEFAULT_BIND]))
        every = bind_urls_of(default, {k: v for k, v in urls.items() if k != DEFAULT_BIND})
        if bind not in every:
            default.engine.dispose()
            raise ConfigError(f"{bind!r} is not a bind of the app (its binds: {list(every)})")
        if not is_multi_database(every):
            return default  # every bind is the one database: checked as one
        side = for_bind(default, bind, every[bind], tuple(every.items()))
        if side.engine is not default.engine:
            default.engine.dispose()
        return side

    def _drift(self, project: Project, url: str, target: Project | None = None) -> Drift:
        """The drift at ``url`` (``target``: the project already on it, else made here)."""
        try:
            quick = quick_read(url, skipped_tables(project), self._version_table(project))
        except Exception as exc:  # noqa: BLE001 - a target that cannot be read
            return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")
        if quick is not None:
            recorded, fingerprint = quick
            key = (parse_url(url).get_backend_name(), project.bind,
                   recorded[0] if len(recorded) == 1 else "?")
            with self._lock:
                first = self._first.setdefault(key, threading.Lock())
            with first:  # no herd: until one target of a revision is found clean, the rest wait
                if fingerprint in self._clean.get(key, ()):
                    return Drift(key[2])  # the same schema as a target found clean at it
                if not self._clean.get(key):
                    return self._full(project, url, target)
        return self._full(project, url, target)  # a schema unlike any clean one: in full

    def _full(self, project: Project, url: str, target: Project | None = None) -> Drift:
        try:
            target = target or project.on_url(parse_url(url))
        except Exception as exc:  # noqa: BLE001
            return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")
        try:
            with target.connect() as conn:
                try:
                    return self._check(target, conn)
                finally:
                    conn.rollback()
        except Exception as exc:  # noqa: BLE001 - a target that cannot be read: its finding
            return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")
        finally:
            target.engine.dispose()

    def _check(self, project: Project, conn: Connection) -> Drift:
        recorded = current_revisions(project, conn)
        key = (project.url.get_backend_name(), project.bind,
               recorded[0] if len(recorded) == 1 else "?")
        fingerprint = schema_fingerprint(conn, skipped_tables(project)) if key[2] != "?" else None
        if fingerprint is not None and fingerprint in self._clean.get(key, ()):
            return Drift(key[2])
        found = check_drift(project, conn, expected=lambda rev: self._snapshot(project, rev))
        if fingerprint is not None and found.checked and not found.drifted:
            with self._lock:
                self._clean.setdefault(key, set()).add(fingerprint)
        return found

    @staticmethod
    def _version_table(project: Project) -> str:
        from softbee.runbook.review.state import version_table_opts

        return str(version_table_opts(project)["version_table"])

    def _base(self, url: str) -> Project:
        with self._lock:
            if self._project is None:
                from softbee.runbook.project import load_project

                project = load_project(self.app, self.migrations_dir, url)
                project.script()  # read once: every target's copy shares the graph
                self._project = project
            return self._project

    def _snapshot(self, project: Project, revision: str | None) -> SchemaSnapshot:
        key = (project.dialect, project.bind, revision)  # each bind's revisions make its tables
        # One scratch build at a time: Alembic's ``context`` and the app's stood-in engines are
        # the process's, not the thread's (two builds at once mixed their binds' tables).
        with self._build:
            if key not in self._expected:
                # A revision's own progress lines go to stderr: stdout is the report (--json).
                with _progress_to_stderr():
                    self._expected[key] = expected_schema(project, revision)
            return self._expected[key]


_REDIRECTED = threading.Lock()
_redirects: list[object] = []  # the stdout saved by the first of the builds running now


@contextmanager
def _progress_to_stderr() -> Iterator[None]:
    """stdout to stderr while any scratch build runs; thread-safe, unlike ``redirect_stdout``.

    Two overlapping ``redirect_stdout`` blocks in two threads can leave ``sys.stdout`` on
    stderr for good (the second saves the first's stand-in): here the first build in saves
    the real stdout, the last one out puts it back.
    """
    with _REDIRECTED:
        _redirects.append(sys.stdout if not _redirects else _redirects[0])
        sys.stdout = sys.stderr
    try:
        yield
    finally:
        with _REDIRECTED:
            saved = _redirects.pop()
            if not _redirects:
                sys.stdout = saved  # type: ignore[assignment]
