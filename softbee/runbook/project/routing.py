"""Every migration statement on the runbook's connection, whatever shape the project's env.py has.

A project's ``env.py`` may get its connection in many ways: Flask-SQLAlchemy's engine,
``engine_from_config`` on a URL, ``create_engine``, ``engine.begin()``, Alembic's cookbook
``config.attributes["connection"]``, one connection per database in a multi-database
template. All of them end in the one call every ``env.py`` must make:
``context.configure(connection=...)``. That is where the runbook takes over.

- :func:`onto` first *probes* ``env.py`` (runs it with no migration steps and
  ``dont_mutate``) to see every ``configure`` it makes; an ``env.py`` that cannot be
  routed (an async engine, another database, no ``configure`` in this process) is
  refused with one line before any statement runs. Then, for the block, every
  ``configure`` gets the runbook's connection in place of whatever ``env.py`` opened.
- :func:`rendering` does the same for offline SQL: every ``configure`` renders for the
  runbook's URL.
- A multi-database project (Flask-Migrate's ``--multidb`` template) is migrated one bind at a
  time (:mod:`softbee.runbook.project.binds`): a block routes one bind (``bind=``), whose
  ``configure`` gets the runbook's connection; every other bind's ``configure``,
  ``begin_transaction`` and ``run_migrations`` are skipped in that block. A ``configure`` is
  keyed to its bind by ``upgrade_token`` (the template passes ``"<name>_upgrades"``), else
  by the database its connection or URL names.
- :func:`timeouts_for_new_sessions` makes every session opened meanwhile (``env.py``'s
  own engine) start with the run's lock and statement timeouts, so even a connection
  ``env.py`` opens and never uses cannot wait forever.

The hooks are installed once, on import, and do nothing unless a block is active in the
current thread (a :class:`~contextvars.ContextVar`), so ``flask db`` and pytest-alembic in
the same process are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine, make_url

from softbee.runbook.errors import NotRoutable
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.util.history_name import skip_runbook_tables
from softbee.runbook.util.options import Timeouts
from softbee.urls import redact_url

ENV_PY_APPLICATION_NAME = "softbee-runbook env.py"
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def database_identity(url: URL) -> tuple[Any, ...]:
    """What makes two URLs the same database: backend, host, port, name (a resolved file path)."""
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite":
        if database in ("", ":memory:") or database.startswith("file:"):
            return (backend, database)
        return (backend, str(Path(database).resolve()))
    host = (url.host or "").lower()
    return (
        "mysql" if backend == "mariadb" else backend,
        "local" if host in _LOCAL_HOSTS else host,
        url.port or _DEFAULT_PORTS.get(backend),
        database,
    )


@dataclass
class _Route:
    """What the active block routes to, and what env.py asked for."""

    env_py: str
    connection: Connection | None = None
    render_url: URL | None = None
    probing: bool = False
    asked: list[str] = field(default_factory=list)
    target_metadata: Any = None  # the first target_metadata env.py gave configure
    bind: str | None = None  # multi-database: the env.py engine name routed ('' the default)
    others: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # skipped: name -> identity
    skipping: bool = False  # the last configure was another bind's: its migrations are skipped
    routed_bind: bool = False  # the routed bind's configure was seen


_ROUTE: ContextVar[_Route | None] = ContextVar("softbee_runbook_route", default=None)
_TIMEOUTS: ContextVar[Timeouts | None] = ContextVar(
    "softbee_runbook_new_session_timeouts", default=None
)


# -- the hook on context.configure ----------------------------------------------------------

_original_configure = EnvironmentContext.configure


def _routed_configure(
    self: EnvironmentContext,
    connection: Connection | None = None,
    url: str | URL | None = None,
    dialect_name: str | None = None,
    **kw: Any,
) -> None:
    """``EnvironmentContext.configure``, with the connection (or URL) of the active route."""
    route = _ROUTE.get()
    if route is None:
        _original_configure(self, connection=connection, url=url, dialect_name=dialect_name, **kw)
        return
    if route.bind is not None:
        route.skipping = _bind_of(route, connection, url, kw) != route.bind
        if route.skipping:
            return  # another bind's: migrated in its own block, on its own connection
        route.routed_bind = True
    if route.render_url is not None:
        # Offline: whatever URL or dialect env.py names, render for the runbook's database.
        if route.bind is not None and self.config.output_buffer is not None:
            kw["output_buffer"] = self.config.output_buffer  # not the template's <bind>.sql file
        _original_configure(self, url=route.render_url, **kw)
        return
    assert route.connection is not None
    asked = _asked_for(connection, url)
    route.asked.append(asked.label)
    refusal = _refusal(route, asked)
    token = kw.get("upgrade_token")
    if refusal and not asked.is_async and isinstance(token, str) and token.endswith(
            UPGRADE_TOKEN_SUFFIX) and token != UPGRADE_TOKEN_SUFFIX:
        refusal = (f"{route.env_py} migrates bind {token[:-len(UPGRADE_TOKEN_SUFFIX)]!r} on "
                   f"{asked.label}, another database than {redact_url(route.connection.engine.url)}: "
                   "this step takes one database, so nothing was run; upgrade_downgrade, "
                   "inspect_diff, recover_stamp and check_drift take each bind of a "
                   "multi-database project on its own (parameter binds)")
    if refusal:
        raise NotRoutable(refusal)
    if not getattr(kw.get("include_name"), "softbee_skips_runbook_tables", False):
        kw["include_name"] = skip_runbook_tables(kw.get("include_name"))  # never autogenerated
    if route.probing:
        kw["dont_mutate"] = True  # the probe reads the version table, never creates it
        if route.target_metadata is None and kw.get("target_metadata") is not None:
            route.target_metadata = kw["target_metadata"]
    _original_configure(self, connection=route.connection, **kw)


EnvironmentContext.configure = _routed_configure  # type: ignore[method-assign]

_original_run_migrations = EnvironmentContext.run_migrations
_original_begin_transaction = EnvironmentContext.begin_transaction


def _skipping() -> bool:
    route = _ROUTE.get()
    return route is not None and route.skipping


def _routed_run_migrations(self: EnvironmentContext, **kw: Any) -> None:
    """``EnvironmentContext.run_migrations``; nothing for a bind another block migrates."""
    if _skipping():
        return
    _original_run_migrations(self, **kw)


def _routed_begin_transaction(self: EnvironmentContext) -> Any:
    """``EnvironmentContext.begin_transaction``; an empty block for a bind another block migrates."""
    if _skipping():
        return nullcontext()
    return _original_begin_transaction(self)


EnvironmentContext.run_migrations = _routed_run_migrations  # type: ignore[method-assign]
EnvironmentContext.begin_transaction = _routed_begin_transaction  # type: ignore[method-assign]

UPGRADE_TOKEN_SUFFIX = "_upgrades"


def _bind_of(route: _Route, connection: Any, url: str | URL | None, kw: dict[str, Any]) -> str | None:
    """The env.py engine name a ``configure`` is for: its ``upgrade_token``, else its database."""
    token = kw.get("upgrade_token")
    if isinstance(token, str) and token.endswith(UPGRADE_TOKEN_SUFFIX):
        name = token[: -len(UPGRADE_TOKEN_SUFFIX)]
        if name == route.bind or name in route.others:
            return name
    asked = _asked_for(connection, url)
    ours = route.connection.engine.url if route.connection is not None else route.render_url
    if asked.identity is None or (ours is not None and asked.identity == database_identity(ours)):
        return route.bind
    for name, identity in route.others.items():
        if asked.identity == identity:
            return name
    return route.bind  # the routed bind's, or refused there as another database


@dataclass(frozen=True)
class _Asked:
    """The database a ``configure`` call named."""

    label: str
    identity: tuple[Any, ...] | None  # None: env.py named none (the runbook's is implied)
    is_async: bool = False


def _asked_for(connection: Any, url: str | URL | None) -> _Asked:
    if connection is not None:
        engine_url = connection.engine.url
        return _Asked(redact_url(engine_url), database_identity(engine_url),
                      bool(getattr(connection.dialect, "is_async", False)))
    if url is not None:
        parsed = make_url(url)
        return _Asked(redact_url(parsed), database_identity(parsed),
                      bool(getattr(parsed.get_dialect(), "is_async", False)))
    return _Asked("no connection or URL", None)


def _refusal(route: _Route, asked: _Asked) -> str | None:
    """Why this ``configure`` cannot run on the runbook's connection (None when it can)."""
    assert route.connection is not None
    ours = route.connection.engine.url
    when = "nothing was run" if route.probing else "stopped before its migrations ran"
    if asked.is_async:
        return (
            f"{route.env_py} runs migrations on an async engine ({asked.label}): the runbook can "
            f"only guard a synchronous connection, so {when}; give env.py a synchronous online "
            "path, or migrate this project with `flask db upgrade`"
        )
    if asked.identity is not None and asked.identity != database_identity(ours):
        others = sorted(set(route.asked))
        several = f" (it configures {len(others)} databases)" if len(others) > 1 else ""
        return (
            f"{route.env_py} connects to {asked.label}, not to the runbook's database "
            f"{redact_url(ours)}{several}: the runbook guards one database on one connection, so "
            f"{when}; pass that database as database_url, or make env.py take its URL from the "
            "app or from sqlalchemy.url"
        )
    return None


# -- routing blocks -------------------------------------------------------------------------


def env_py_label(config: Config) -> str:
    """``<migrations folder>/env.py``, as messages name it."""
    location = config.get_main_option("script_location") or "migrations"
    return f"{Path(location).name}/env.py"


@dataclass(frozen=True)
class BindRoute:
    """A multi-database block: the env.py engine name routed ('' the default), the others skipped."""

    name: str
    others: dict[str, tuple[Any, ...]]  # env.py engine name -> database identity


@contextmanager
def onto(connection: Connection, config: Config, bind: BindRoute | None = None) -> Iterator[None]:
    """Run every ``context.configure`` of the block on ``connection``, after probing ``env.py``.

    With ``bind``, only that bind's ``configure`` runs (on ``connection``); the others' are skipped.
    """
    probe(connection, config, bind)
    token = _ROUTE.set(_route(env_py_label(config), bind, connection=connection))
    try:
        yield
    finally:
        _ROUTE.reset(token)


def routed_connection() -> Connection | None:
    """The connection the active block routes migrations onto (None outside one, or offline)."""
    route = _ROUTE.get()
    return None if route is None or route.probing else route.connection


def _route(env_py: str, bind: BindRoute | None, **kw: Any) -> _Route:
    if bind is None:
        return _Route(env_py=env_py, **kw)
    return _Route(env_py=env_py, bind=bind.name, others=dict(bind.others), **kw)


def probe(connection: Connection, config: Config, bind: BindRoute | None = None) -> list[str]:
    """Run ``env.py`` with no migration steps; refuse it when it cannot be routed onto ``connection``.

    Returns the databases its ``configure`` calls named. Nothing is written: the probe's
    migration function yields no step and ``dont_mutate`` keeps the version table as it is.
    """
    return _probe(connection, config, bind).asked


def target_metadata(connection: Connection, config: Config, bind: BindRoute | None = None) -> Any:
    """The ``target_metadata`` env.py passes to ``context.configure`` (None when it passes none), by a probe."""
    return _probe(connection, config, bind).target_metadata


def _probe(connection: Connection, config: Config, bind: BindRoute | None = None) -> _Route:
    route = _route(env_py_label(config), bind, connection=connection, probing=True)
    script = ScriptDirectory.from_config(config)
    token = _ROUTE.set(route)
    try:
        with EnvironmentContext(config, script, fn=lambda _heads, _context: []):
            script.run_env()
    finally:
        _ROUTE.reset(token)
    if not route.asked:
        raise NotRoutable(
            f"{route.env_py} never called context.configure(connection=...) in this process (it "
            "may run migrations in a subprocess): the runbook cannot put them on its guarded "
            "connection, so nothing was run; migrate this project with `flask db upgrade`"
        )
    if bind is not None and not route.routed_bind:
        raise NotRoutable(
            f"{route.env_py} never called context.configure for bind "
            f"{bind.name or 'default'!r} (upgrade_token={bind.name + UPGRADE_TOKEN_SUFFIX!r}): the "
            "runbook cannot put its migrations on that bind's guarded connection, so nothing was "
            "run; use Flask-Migrate's multi-database env.py, or migrate with `flask db upgrade`"
        )
    return route


@contextmanager
def rendering(url: URL, config: Config, bind: BindRoute | None = None) -> Iterator[None]:
    """Offline mode: every ``context.configure`` of the block renders SQL for ``url``'s dialect.

    With ``bind``, only that bind's; the others' are skipped.
    """
    token = _ROUTE.set(_route(env_py_label(config), bind, render_url=url))
    try:
        yield
    finally:
        _ROUTE.reset(token)


# -- timeouts for sessions opened during a run ---------------------------------------------


@contextmanager
def timeouts_for_new_sessions(timeouts: Timeouts) -> Iterator[None]:
    """Every database session opened in this block (in this thread) starts with these timeouts."""
    token = _TIMEOUTS.set(timeouts)
    try:
        yield
    finally:
        _TIMEOUTS.reset(token)


@sa.event.listens_for(Engine, "do_connect")
def _arm_new_session(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    timeouts = _TIMEOUTS.get()
    if timeouts is None:
        return
    extra = dialect_named(dialect.name).connect_params(
        dialect.driver, timeouts.lock_timeout_ms, timeouts.statement_timeout_ms)
    if "options" in extra and cparams.get("options"):
        extra["options"] = f"{cparams['options']} {extra['options']}"
    cparams.update(extra)
    if dialect.name == "postgresql" and dialect.driver in ("psycopg2", "psycopg"):
        cparams.setdefault("application_name", ENV_PY_APPLICATION_NAME)
