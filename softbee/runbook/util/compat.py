"""What differs between the library versions the runbooks support, in one place.

The runbook library runs inside the project's own environment, so it meets SQLAlchemy 1.4
and 2.x, Flask-SQLAlchemy 2.5 and 3.x, Flask-Migrate 2.5 to 4.x and Alembic 1.7 onwards.
Each difference is one named fact or helper here; the rest of the library asks these
instead of testing version numbers itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

SQLALCHEMY_2 = int(sa.__version__.split(".", 1)[0]) >= 2


def engine_options() -> dict[str, Any]:
    """Options every runbook engine gets: 2.0-style connections (``commit()``) on SQLAlchemy 1.4 too."""
    return {} if SQLALCHEMY_2 else {"future": True}


def app_engines(db: Any, app: Any) -> dict[Any, Any] | None:
    """Flask-SQLAlchemy 3's per-app engines dict (bind key to engine); None on 2.5, which has none."""
    engines = getattr(db, "_app_engines", None)
    if engines is None:
        return None
    return engines.get(app)


class _FixedConnector:
    """Flask-SQLAlchemy 2.5's per-bind connector, always giving one engine."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def get_engine(self) -> Any:
        return self._engine


@contextmanager
def engine_stood_in(db: Any, app: Any, engine: Any) -> Iterator[None]:
    """Make ``db.engine`` / ``db.get_engine()`` give ``engine`` for the block (Flask-SQLAlchemy 2.5 and 3)."""
    with engines_stood_in(db, app, {None: engine}):
        yield


@contextmanager
def engines_stood_in(db: Any, app: Any, by_key: dict[Any, Any]) -> Iterator[None]:
    """Make the engine of each bind key (None: the default one) the given one for the block."""
    engines = app_engines(db, app)
    if engines is not None:  # Flask-SQLAlchemy 3: one engine per bind key, per app
        missing = object()
        saved = {key: engines.get(key, missing) for key in by_key}
        engines.update(by_key)
        try:
            yield
        finally:
            for key, engine in saved.items():
                if engine is missing:
                    engines.pop(key, None)
                else:
                    engines[key] = engine
        return
    # Flask-SQLAlchemy 2.5: app.extensions["sqlalchemy"].connectors[bind key].get_engine()
    connectors = getattr(app.extensions.get("sqlalchemy"), "connectors", None)
    if connectors is None:
        yield
        return
    missing = object()
    saved_connectors = {key: connectors.get(key, missing) for key in by_key}
    connectors.update({key: _FixedConnector(engine) for key, engine in by_key.items()})
    try:
        yield
    finally:
        for key, connector in saved_connectors.items():
            if connector is missing:
                connectors.pop(key, None)
            else:
                connectors[key] = connector


def bind_engine_url(db: Any, app: Any, key: str) -> Any:
    """The URL of the app's engine for bind ``key`` (Flask-SQLAlchemy 3 and 2.5); call in the app context."""
    engines = app_engines(db, app)
    if engines is not None:
        return engines[key].url
    return db.get_engine(app, bind=key).url


def sqlite_relative_folder(db: Any, app: Any) -> str:
    """Where Flask-SQLAlchemy reads a relative SQLite path from: ``instance/`` (3.x), the app's root (2.5)."""
    if hasattr(db, "_app_engines"):
        return str(app.instance_path)
    return str(app.root_path)


def models_metadata(db: Any, bind: str | None = None) -> sa.MetaData:
    """A bind's metadata (None: the default one): ``db.metadatas[bind]`` on Flask-SQLAlchemy 3, else from ``db.metadata``."""
    metadatas = getattr(db, "metadatas", None)
    if metadatas is not None:
        return metadatas[bind] if bind in metadatas else sa.MetaData()
    # Flask-SQLAlchemy 2.5 keeps every bind's tables in one metadata, marked by info["bind_key"]
    if bind is None and not any(t.info.get("bind_key") for t in db.metadata.tables.values()):
        return db.metadata  # one database: all of it
    only = sa.MetaData()  # the default bind's tables are those with no bind_key
    for table in db.metadata.tables.values():
        if table.info.get("bind_key") == bind:
            table.to_metadata(only) if hasattr(table, "to_metadata") else table.tometadata(only)
    return only


def dbapi_connection(connection: sa.engine.Connection) -> Any:
    """The driver's own connection under ``connection`` (``dbapi_connection``, ``connection`` before 1.4.24)."""
    fairy = connection.connection
    return getattr(fairy, "dbapi_connection", None) or getattr(fairy, "connection", None)
