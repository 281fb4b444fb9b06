"""Loading a project: import its app as ``flask`` does, find its migrations, check the app's load.

The app's factory may migrate the database itself (``flask_migrate.upgrade()`` on start):
the revision recorded before loading is compared with the one after (``AppMigratedOnLoad``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.cli import NoAppException, locate_app
from sqlalchemy.engine import URL

from softbee.runbook.errors import AppMigratedOnLoad, ConfigError, first_line
from softbee.runbook.project import routing
from softbee.runbook.project.core import Project
from softbee.runbook.project.dialects import DEFAULT_LOCK_TIMEOUT_MS, check_timeouts
from softbee.runbook.project.engines import make_engine, quiet_alembic
from softbee.runbook.project.sessions import Timeouts, open_session
from softbee.runbook.util.compat import sqlite_relative_folder
from softbee.runbook.util.roots import candidate_roots, find_project_root, project_root
from softbee.runbook.util.secrets import reveal
from softbee.urls import BadDatabaseURL, parse_url, redact_text, redact_url


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
