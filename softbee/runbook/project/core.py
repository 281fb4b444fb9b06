"""A loaded project: its app, its migrations, its database, and the sessions it opens."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import URL, Connection, Engine

from softbee.runbook.errors import DatabaseError, NotRoutable
from softbee.runbook.project import routing
from softbee.runbook.project.engines import (
    BoundEngine,
    SkippedEngine,
    describe_connection_error,
    make_engine,
    quiet_alembic,
)
from softbee.runbook.project.sessions import Timeouts, explain_timeouts, open_session
from softbee.runbook.util.compat import engines_stood_in, models_metadata
from softbee.runbook.util.history_name import history_table_name
from softbee.urls import redact_url


@dataclass
class Project:
    """A Flask-Migrate project as the runbooks see it."""

    app: Flask
    migrations_dir: Path
    url: URL
    engine: Engine
    environment: str = "development"
    _extension: Any = field(default=None, repr=False)
    load_check: str = ""  # whether loading the app was checked for moving the database, and how
    app_spec: str = "softbee:create_app"  # ``app`` as the run was given it (for advised commands)
    migrations_spec: str = "migrations"  # ``migrations_dir`` as the run was given it
    _scripts: tuple[tuple[Any, ...], ScriptDirectory] | None = field(default=None, repr=False)
    _target_metadata: Any = field(default=None, repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    # A multi-database project is migrated one bind at a time (project.binds): the bind this
    # one is ("default" or a SQLALCHEMY_BINDS key; None for a one-database project), and
    # every bind of the project with its URL, in the order they are migrated.
    bind: str | None = None
    binds: tuple[tuple[str, URL], ...] = ()

    def __post_init__(self) -> None:
        explain_timeouts(self)

    @property
    def dialect(self) -> str:
        """The database dialect name, e.g. ``postgresql`` or ``sqlite``."""
        return self.engine.dialect.name

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked."""
        return redact_url(self.url)

    @property
    def database_name(self) -> str:
        """The database name (the file name for SQLite)."""
        name = self.url.database or ""
        return Path(name).name if self.dialect == "sqlite" else name

    def identity(self) -> dict[str, Any]:
        """Dialect, host, port and database name: never the user's password."""
        found = {
            "dialect": self.dialect,
            "host": self.url.host,
            "port": self.url.port,
            "database": self.url.database,
        }
        return found if self.bind is None else {**found, "bind": self.bind}

    @property
    def history_table(self) -> str:
        """The runbooks' history table: ``SOFTBEE_HISTORY_TABLE`` in the app's config, else the default."""
        return history_table_name(self.app.config)

    @property
    def metadata(self) -> sa.MetaData:
        """The models' metadata as the project's ``env.py`` sees it."""
        return models_metadata(self._extension.db, bind_key(self.bind))

    @property
    def configure_args(self) -> dict[str, Any]:
        """Arguments the project passes to ``context.configure`` (compare_type, ...)."""
        return dict(self._extension.configure_args)

    def config(self, url: URL | None = None) -> Config:
        """Alembic's config for this project, built by Flask-Migrate.

        ``sqlalchemy.url`` is ``url`` (by default the runbook's database), so an ``env.py``
        that builds its own engine from the config (Alembic's generic template) builds it
        for that database.
        """
        with self.app.app_context():
            config = self._extension.migrate.get_config(str(self.migrations_dir))
        # ConfigParser reads % as interpolation
        config.set_main_option(
            "sqlalchemy.url", (url or self.url).render_as_string(hide_password=False).replace("%", "%%"))
        return config

    def script(self) -> ScriptDirectory:
        """The revision scripts and their graph, read again only when the scripts change.

        Alembic imports every revision file to build the graph; a run asks for it a dozen
        times (state, plan, re-plan under the lock, final state). The graph is kept while
        the files of its version locations are the same (names, sizes, modification
        times), so a revision written mid-session (``generate_revision``) is still seen.
        The files are imported inside the app's context, as ``flask db`` imports them: some
        projects' revisions read ``current_app`` at import (tests/examples/revision_reads_current_app).
        """
        if self._scripts is not None:
            signature, script = self._scripts
            if _scripts_signature(script) == signature:
                return script
        with self.app.app_context():  # as `flask db` does: a script may read current_app
            script = ScriptDirectory.from_config(self.config())
            script.get_heads()  # Alembic imports every revision file here, inside the context
        self._scripts = (_scripts_signature(script), script)
        return script

    def connect(self) -> Connection:
        """Open a session with the run's timeouts (:func:`open_session`); driver errors in one line."""
        try:
            return open_session(self.engine, self.timeouts)
        except sa.exc.OperationalError as exc:
            raise DatabaseError(describe_connection_error(exc, self.url)) from None

    def on_url(self, url: URL) -> Project:
        """This project on another database (a scratch copy, the server's admin database).

        Same app, migrations and timeouts: its sessions are bounded like this project's.
        The caller disposes of its engine.
        """
        return dataclasses.replace(self, url=url, engine=make_engine(url))

    @contextmanager
    def bound(self, connection: Connection) -> Iterator[Config]:
        """Run Alembic commands on ``connection`` inside the app context.

        Whatever way the project's ``env.py`` gets its connection, every
        ``context.configure`` in the block is given ``connection`` (``routing.onto``, which
        first refuses an ``env.py`` that cannot be routed). Flask-SQLAlchemy's engine is
        stood in for too, so the usual Flask-Migrate ``env.py`` does not even open a second
        session. The caller owns the transaction.
        """
        with self.stand_in_engine(BoundEngine(connection)):
            config = self.config()
            config.attributes["connection"] = connection
            with routing.onto(connection, config, self.bind_route()):
                yield config

    def bind_route(self) -> routing.BindRoute | None:
        """For one bind of a multi-database project: which ``configure`` to route, which to skip."""
        if self.bind is None:
            return None
        return routing.BindRoute(
            name=env_py_name(self.bind),
            others={env_py_name(name): routing.database_identity(url)
                    for name, url in self.binds if name != self.bind})

    def target_metadata(self, connection: Connection) -> Any:
        """The models as env.py gives them to ``context.configure`` (its ``target_metadata``), else :attr:`metadata`.

        Read once, by running env.py with no steps on ``connection`` (nothing is written).
        """
        if self._target_metadata is None:
            with self.stand_in_engine(BoundEngine(connection)):
                config = self.config()
                config.attributes["connection"] = connection
                try:
                    found = routing.target_metadata(connection, config, self.bind_route())
                except NotRoutable:  # the run itself refuses it; a comparison still has the models
                    found = None
            self._target_metadata = found if found is not None else self.metadata
        return self._target_metadata

    @contextmanager
    def stand_in_engine(self, engine: Any) -> Iterator[None]:
        """Inside the app context, make the app hand ``engine`` (and its URL) to the project's env.py.

        Flask-SQLAlchemy's engine is replaced by ``engine``, and ``SQLALCHEMY_DATABASE_URI``
        names its URL for env.py files that build their own engine from the app's config.
        """
        by_key = {bind_key(self.bind): engine}
        by_key.update({bind_key(name): SkippedEngine(url)
                       for name, url in self.binds if name != self.bind})
        default_url = dict(self.binds).get(DEFAULT_BIND, engine.url) if self.bind else engine.url
        with self.app.app_context(), engines_stood_in(self._extension.db, self.app, by_key):
            saved_uri = self.app.config.get("SQLALCHEMY_DATABASE_URI")
            self.app.config["SQLALCHEMY_DATABASE_URI"] = default_url.render_as_string(
                hide_password=False)
            # Alembic's INFO lines repeat what the runbooks show; warnings still come through.
            logging.disable(logging.INFO)
            try:
                yield
            finally:
                logging.disable(logging.NOTSET)
                quiet_alembic()
                self.app.config["SQLALCHEMY_DATABASE_URI"] = saved_uri


DEFAULT_BIND = "default"  # the app's default engine, as the runbooks' parameters and output name it


def bind_key(bind: str | None) -> str | None:
    """Flask-SQLAlchemy's bind key for a runbook bind name (None: the default engine)."""
    return None if bind in (None, DEFAULT_BIND) else bind


def env_py_name(bind: str) -> str:
    """The engine name Flask-Migrate's multi-database env.py gives a bind ('' for the default)."""
    return "" if bind == DEFAULT_BIND else bind


def _scripts_signature(script: ScriptDirectory) -> tuple[Any, ...]:
    """Name, size and modification time of every file in the script's version locations."""
    found: list[tuple[str, int, int]] = []
    locations = getattr(script, "_version_locations", None) or [script.versions]
    recursive = getattr(script, "recursive_version_locations", False)  # Alembic 1.10+
    pending = [Path(location) for location in locations]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            found.append((str(folder), -1, -1))
            continue
        for entry in entries:
            if entry.is_dir() and recursive and entry.name != "__pycache__":
                pending.append(Path(entry.path))
            elif entry.is_file():
                stat = entry.stat()
                found.append((entry.path, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))
