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
    engines = app_engines(db, app)
    if engines is not None:  # Flask-SQLAlchemy 3: one engine per bind key, per app
        saved = engines.get(None)
        engines[None] = engine
        try:
            yield
        finally:
            engines[None] = saved
        return
    # Flask-SQLAlchemy 2.5: app.extensions["sqlalchemy"].connectors[bind key].get_engine()
    connectors = getattr(app.extensions.get("sqlalchemy"), "connectors", None)
    if connectors is None:
        yield
        return
    missing = object()
    saved_connector = connectors.get(None, missing)
    connectors[None] = _FixedConnector(engine)
    try:
        yield
    finally:
        if saved_connector is missing:
            connectors.pop(None, None)
        else:
            connectors[None] = saved_connector


def sqlite_relative_folder(db: Any, app: Any) -> str:
    """Where Flask-SQLAlchemy reads a relative SQLite path from: ``instance/`` (3.x), the app's root (2.5)."""
    if hasattr(db, "_app_engines"):
        return str(app.instance_path)
    return str(app.root_path)


def models_metadata(db: Any) -> sa.MetaData:
    """The default bind's metadata: ``db.metadatas[None]`` on Flask-SQLAlchemy 3, ``db.metadata`` on 2.5."""
    metadatas = getattr(db, "metadatas", None)
    if metadatas is not None:
        return metadatas[None]
    return db.metadata


def dbapi_connection(connection: sa.engine.Connection) -> Any:
    """The driver's own connection under ``connection`` (``dbapi_connection``, ``connection`` before 1.4.24)."""
    fairy = connection.connection
    return getattr(fairy, "dbapi_connection", None) or getattr(fairy, "connection", None)
