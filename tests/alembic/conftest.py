"""pytest-alembic wiring: its built-in tests run on fresh SQLite, PostgreSQL and MariaDB databases.

``migrations/env.py`` reads the Flask app (``current_app``), so the alembic config
comes from Flask-Migrate inside an app context that stays pushed for the whole test,
and the engine is pointed at the same fresh database (``any_database_url`` from
``tests/conftest.py``, parametrized over the three databases).
"""

from __future__ import annotations

from collections.abc import Iterator

import alembic.config
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Engine

from softbee import create_app


@pytest.fixture
def alembic_app(any_database_url: str) -> Iterator[Flask]:
    """The Soft-Bee app bound to the fresh database, its app context pushed."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=any_database_url)
    with app.app_context():
        yield app
        app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture
def alembic_config(alembic_app: Flask) -> alembic.config.Config:
    """The alembic config exactly as ``flask db`` builds it (migrations/, env.py, ini)."""
    return alembic_app.extensions["migrate"].migrate.get_config()


@pytest.fixture
def alembic_engine(any_database_url: str) -> Iterator[Engine]:
    """An engine on the same fresh database; pytest-alembic hands it to env.py."""
    engine = sa.create_engine(any_database_url)
    try:
        yield engine
    finally:
        engine.dispose()
