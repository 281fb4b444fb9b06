"""What differs between the library versions the runbooks support, in one place.

The runbook library runs inside the project's own environment, so it meets SQLAlchemy 1.4
and 2.x, Flask-SQLAlchemy 2.5 and 3.x, Flask-Migrate 2.5 to 4.x and Alembic 1.7 onwards.
Each difference is one named fact or helper here; the rest of the library asks these
instead of testing version numbers itself.
"""

from __future__ import annotations

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
