"""Load any Flask-Migrate project: its app, its migrations and its database.

Alembic's config is built through Flask-Migrate (``Migrate.get_config``) so the
project's ``env.py`` and its configure arguments are honoured, but every command
is called through ``alembic.command`` directly: exceptions reach the caller
instead of Flask-Migrate's ``sys.exit(1)``.

Package ``softbee.runbook.project``: loading a project (this module: ``Project``,
``load_project``), routing its ``env.py`` to the runbook's connection (``routing``) and
what differs between databases (``dialects``). Imports only :mod:`~softbee.runbook.util`;
never ``online``, ``review``, ``engine``, ``run``, ``archive`` or ``fleet``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import NoAppException, locate_app
from sqlalchemy.engine import URL, Connection, Engine

from softbee.runbook.errors import (
    AppMigratedOnLoad,
    ConfigError,
    DatabaseError,
    NotRoutable,
    first_line,
)
from softbee.runbook.project import routing
from softbee.runbook.project.dialects import (
    DEFAULT_LOCK_TIMEOUT_MS,
    check_timeouts,
    dialect_named,
)
from softbee.runbook.project.sessions import Timeouts, explain_timeouts, open_session
from softbee.runbook.util.compat import (
    engine_options,
    engine_stood_in,
    models_metadata,
    sqlite_relative_folder,
)
from softbee.runbook.util.history_name import history_table_name
from softbee.runbook.util.roots import candidate_roots, find_project_root, project_root
from softbee.runbook.util.secrets import reveal
from softbee.urls import BadDatabaseURL, parse_url, redact_text, redact_url

APPLICATION_NAME = "softbee-runbook"


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
        return {
            "dialect": self.dialect,
            "host": self.url.host,
            "port": self.url.port,
            "database": self.url.database,
        }

    @property
    def history_table(self) -> str:
        """The runbooks' history table: ``SOFTBEE_HISTORY_TABLE`` in the app's config, else the default."""
        return history_table_name(self.app.config)

    @property
    def metadata(self) -> sa.MetaData:
        """The models' metadata as the project's ``env.py`` sees it."""
        return models_metadata(self._extension.db)

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
        with self.stand_in_engine(_BoundEngine(connection)):
            config = self.config()
            config.attributes["connection"] = connection
            with routing.onto(connection, config):
                yield config

    def target_metadata(self, connection: Connection) -> Any:
        """The models as env.py gives them to ``context.configure`` (its ``target_metadata``), else :attr:`metadata`.

        Read once, by running env.py with no steps on ``connection`` (nothing is written).
        """
        if self._target_metadata is None:
            with self.stand_in_engine(_BoundEngine(connection)):
                config = self.config()
                config.attributes["connection"] = connection
                try:
                    found = routing.target_metadata(connection, config)
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
        with self.app.app_context(), engine_stood_in(self._extension.db, self.app, engine):
            saved_uri = self.app.config.get("SQLALCHEMY_DATABASE_URI")
            self.app.config["SQLALCHEMY_DATABASE_URI"] = engine.url.render_as_string(
                hide_password=False)
            # Alembic's INFO lines repeat what the runbooks show; warnings still come through.
            logging.disable(logging.INFO)
            try:
                yield
            finally:
                logging.disable(logging.NOTSET)
                quiet_alembic()
                self.app.config["SQLALCHEMY_DATABASE_URI"] = saved_uri


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


class _BoundEngine:
    """Looks like an Engine to ``env.py``; every connection it gives is the caller's, lent."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.url = connection.engine.url
        self.dialect = connection.dialect

    def connect(self) -> _Lent:
        return _Lent(self._connection)

    def begin(self) -> _Lent:
        return _Lent(self._connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection.engine, name)


class _Lent:
    """The runbook's connection lent to ``env.py``: it may enter, begin, commit and close it.

    None of that reaches the connection: its transaction is the runbook's, which commits
    or rolls back after the guards have looked (the multi-database template, for one,
    begins and commits a transaction of its own on every connection it opens).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __enter__(self) -> _Lent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def begin(self) -> _Lent:
        return self

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def quiet_alembic() -> None:
    """Keep Alembic's INFO chatter (re-enabled by env.py's fileConfig) out of the runbooks."""
    logging.getLogger("alembic").setLevel(logging.WARNING)


def describe_connection_error(exc: sa.exc.DBAPIError, url: URL) -> str:
    """One line saying why the database refused us, with the password masked."""
    reason = redact_text(first_line(exc.orig if exc.orig is not None else exc))
    hint = dialect_named(url.get_backend_name()).connection_hint(exc)
    return f"cannot connect to {redact_url(url)}: {reason} ({hint})"


def make_engine(url: URL) -> Engine:
    """Create the engine the runbooks use: psycopg2 named, SQLite with real transactions.

    Sessions come from it only through :func:`open_session` (``Project.connect``).
    """
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not Path(database).parent.exists():
            raise ConfigError(
                f"SQLite file {database!r} is in a folder that does not exist: create it or fix the URL"
            )
        engine = sa.create_engine(url, isolation_level=None, **engine_options())
        _enable_sqlite_transactions(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": 10, "application_name": APPLICATION_NAME}
    elif url.get_backend_name() in ("mysql", "mariadb"):
        connect_args = {"connect_timeout": 10}  # PyMySQL and mysqlclient alike: seconds
    try:
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True,
                                **engine_options())
    except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"no driver for {redact_url(url)}: {exc}") from None


def _enable_sqlite_transactions(engine: Engine) -> None:
    """Make pysqlite emit BEGIN itself so DDL is transactional (SQLAlchemy's documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def import_app(app: str, migrations_dir: str | os.PathLike[str] = "migrations") -> Flask:
    """Import ``module:attribute`` from the project root, as ``flask --app`` does.

    The attribute is an app, a factory called without arguments, or a factory call with
    literal arguments (``pkg:create_app("config.Runbook")``), through Flask's ``locate_app``.
    """
    if ":" in app:
        module, _, attr = app.partition(":")
    else:
        module, attr = app, None
    root = str(project_root(migrations_dir))
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        found = locate_app(module, attr)
    except NoAppException as exc:
        first = first_line(exc)
        raise ConfigError(
            f"app {app!r} did not load: {first} (give 'package.module:app', 'package:create_app' "
            "or 'package:create_app(\"config.Name\")')"
        ) from None
    except Exception as exc:  # the app's own import or factory raised
        raise ConfigError(
            f"app {app!r} raised {type(exc).__name__} while loading: {redact_text(str(exc))}"
        ) from None
    if not isinstance(found, Flask):
        raise ConfigError(f"app {app!r} is a {type(found).__name__}, not a Flask app")
    return found


def _migrations_directory(migrations_dir: str | os.PathLike[str]) -> Path:
    """The migrations folder: absolute as given, else below the nearest project root."""
    given = Path(migrations_dir)
    if given.is_absolute():
        if not (given / "env.py").is_file():
            raise ConfigError(f"no Alembic migrations at {str(given)!r} (env.py missing): fix migrations_dir")
        return given.resolve()
    root = find_project_root(given)
    if root is None:
        looked = ", ".join(str(folder) for folder in candidate_roots())
        where = ("SOFTBEE_PROJECT_ROOT" if os.environ.get("SOFTBEE_PROJECT_ROOT")
                 else "the current directory or any folder above it")
        raise ConfigError(
            f"no Alembic migrations at {str(migrations_dir)!r} (env.py missing) in {where} "
            f"(looked in {looked}): open the project, set SOFTBEE_PROJECT_ROOT, or pass migrations_dir"
        )
    return (root / given).resolve()


def load_project(
    app: str = "softbee:create_app",
    migrations_dir: str | os.PathLike[str] = "migrations",
    database_url: str | None = None,
    *,
    lock_timeout_ms: int | None = DEFAULT_LOCK_TIMEOUT_MS,
    statement_timeout_ms: int | None = None,
) -> Project:
    """Load the Flask app at ``app`` and the Flask-Migrate project around it.

    Every session the project opens (:meth:`Project.connect`) gets ``lock_timeout_ms`` and
    ``statement_timeout_ms``: the run's, where its runbook has them. A ``database_url``
    that ``softbee-runbook run`` passed masked (its password is never written into the
    notebook) is exchanged for the real URL from the kernel's environment
    (:func:`~softbee.runbook.util.secrets.reveal`).
    """
    check_timeouts(lock_timeout_ms, statement_timeout_ms)
    database_url = reveal(database_url)
    directory = _migrations_directory(migrations_dir)
    if database_url:
        try:
            parse_url(database_url)
        except BadDatabaseURL as exc:
            raise ConfigError(str(exc)) from None
    # The app's factory may migrate the database itself (flask_migrate.upgrade() on start):
    # read the recorded revision before loading it, when the URL is known before loading.
    known_url = database_url or os.environ.get("DATABASE_URL") or None
    before = _recorded_revision(known_url) if known_url else None
    moves: list[_Move] = []
    with _environ("DATABASE_URL", database_url or None), _watching_alembic(moves):
        flask_app = import_app(app, migrations_dir)
    extension = flask_app.extensions.get("migrate")
    if extension is None:
        raise ConfigError(f"app {app!r} has no Flask-Migrate extension: call Migrate(app, db)")
    raw_url = database_url or flask_app.config.get("SQLALCHEMY_DATABASE_URI")
    if not raw_url:
        raise ConfigError(f"app {app!r} has no SQLALCHEMY_DATABASE_URI: set DATABASE_URL")
    try:
        url = parse_url(str(raw_url))
    except BadDatabaseURL as exc:
        raise ConfigError(str(exc)) from None
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not (
        database.startswith("file:") or Path(database).is_absolute()
    ):
        # Flask-SQLAlchemy (and so `flask db`) reads a relative SQLite path from instance/
        # (3.x) or from the app's root folder (2.5).
        folder = sqlite_relative_folder(extension.db, flask_app)
        url = url.set(database=str(Path(folder) / database))
    load_check = _check_not_migrated_on_load(app, known_url, before, url, moves)
    environment = str(
        flask_app.config.get("SOFTBEE_ENV") or os.environ.get("FLASK_ENV") or "development"
    ).lower()
    quiet_alembic()
    return Project(
        app=flask_app,
        migrations_dir=directory,
        url=url,
        engine=make_engine(url),
        environment=environment,
        _extension=extension,
        load_check=load_check,
        app_spec=app,
        migrations_spec=str(migrations_dir),
        timeouts=Timeouts(lock_timeout_ms, statement_timeout_ms),
    )


RECORDED_REVISION_LOCK_TIMEOUT_MS = 2000


def _described(raw_url: str | None, runbook_url: URL) -> str:
    """``the database database_url names`` or ``its own database <redacted URL>``."""
    if raw_url:
        try:
            if routing.database_identity(parse_url(raw_url)) == routing.database_identity(runbook_url):
                return "the database"
        except BadDatabaseURL:
            pass
        return f"its own database {redact_url(raw_url)} (not the runbook's)"
    return "a database"


def _recorded_revision(raw_url: str | URL) -> str | None:
    """The revision(s) ``alembic_version`` records at ``raw_url`` ("base" when none); None when unreadable.

    A SQLite file that does not exist is base, and is not created by looking.
    """
    try:
        url = raw_url if isinstance(raw_url, URL) else parse_url(str(raw_url))
    except BadDatabaseURL:
        return None
    database = url.database or ""
    if url.get_backend_name() == "sqlite":
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        if not Path(database).is_file():
            return "base"
    try:
        engine = make_engine(url)
    except Exception:  # noqa: BLE001 - no driver, bad URL: the real load says so in one line
        return None
    try:
        # A session holding the version table must not make loading the project wait:
        # past the bound the revision is unknown here, and the run's own read names it.
        with open_session(engine, Timeouts(RECORDED_REVISION_LOCK_TIMEOUT_MS, None)) as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return "base"
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            return ",".join(sorted(rows)) or "base"
    except Exception:  # noqa: BLE001 - unreachable now: the runbook's own connect reports it
        return None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class _Move:
    """One Alembic command the app's factory ran while it loaded, and what it did to its database."""

    command: str
    url: str | None
    before: str | None
    after: str | None


@contextmanager
def _watching_alembic(moves: list[_Move]) -> Iterator[None]:
    """Record every ``upgrade``/``downgrade``/``stamp`` Alembic runs in the block (Flask-Migrate's too).

    An app whose factory migrates on start calls ``flask_migrate.upgrade()``, which calls
    ``alembic.command.upgrade``; the database it moves is the app's own, read from its config
    inside the call, so a factory migrating a database other than ``database_url`` is seen too.
    """
    from alembic import command

    originals = {name: getattr(command, name) for name in ("upgrade", "downgrade", "stamp")}

    def watched(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            uri = _app_database_uri()
            before = _recorded_revision(uri) if uri else None
            try:
                return real(*args, **kwargs)
            finally:
                moves.append(_Move(name, uri, before, _recorded_revision(uri) if uri else None))
        return call

    for name, real in originals.items():
        setattr(command, name, watched(name, real))
    try:
        yield
    finally:
        for name, real in originals.items():
            setattr(command, name, real)


def _app_database_uri() -> str | None:
    """The current app's ``SQLALCHEMY_DATABASE_URI``, if an app context is active."""
    from flask import current_app

    try:
        uri = current_app.config.get("SQLALCHEMY_DATABASE_URI")
    except RuntimeError:  # no app context: Alembic called outside Flask-Migrate
        return None
    return str(uri) if uri else None


NO_SWITCH_ADVICE = (
    "load it without that: most apps have a setting or environment variable that skips "
    "flask_migrate.upgrade() on start, e.g. app='package:create_app(\"config.Runbook\")'; an app "
    "with none migrates itself on every start, which no runbook can guard: migrate it by "
    "starting it, or add such a setting"
)


def _check_not_migrated_on_load(
    app: str, known_url: str | None, before: str | None, url: URL, moves: Sequence[_Move] = ()
) -> str:
    """Refuse when loading the app moved a database; say what was checked.

    Two ways to see it: Alembic's commands are watched while the app loads (any database the
    factory migrates, the runbook's or its own), and a URL known before loading
    (``database_url`` or ``DATABASE_URL``) is read before and after.
    """
    for move in moves:
        if move.before is not None and move.after is not None and move.before != move.after:
            where = _described(move.url, url)
            raise AppMigratedOnLoad(
                f"the app's factory migrated {where} from {move.before} to {move.after} while "
                f"loading app {app!r} (Alembic's {move.command}), before any guard, count or "
                f"plan; that migration has happened, unguarded: {NO_SWITCH_ADVICE}",
                move.before, move.after,
            )
    ran = sorted({move.command for move in moves})
    if ran and not known_url:
        return (f"checked: the app's factory ran Alembic's {', '.join(ran)} on start and moved "
                "nothing (its database was already there); the runbooks cannot guard that")
    if not known_url:
        return ("not checked: the database URL comes from the app's config, so it could not be "
                "read before the app loaded (pass database_url or set DATABASE_URL to check)")
    try:
        same = routing.database_identity(parse_url(known_url)) == routing.database_identity(url)
    except BadDatabaseURL:
        same = False
    if not same:
        return ("not checked: the app's database is not the one database_url/DATABASE_URL names, "
                "so it was not read before the app loaded")
    if before is None:
        return "not checked: the database could not be read before the app loaded"
    after = _recorded_revision(url)
    if after is not None and after != before:
        raise AppMigratedOnLoad(
            f"the app's factory migrated the database from {before} to {after} while loading "
            f"app {app!r}, before any guard, count or plan: {NO_SWITCH_ADVICE}",
            before, after,
        )
    return f"checked: loading the app left the database at {before}"
