"""The SQLAlchemy and Flask-Migrate extensions, and the one place every model is imported."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

from softbee.runbook.util.history_name import skip_runbook_tables

# Named constraints keep batch migrations (SQLite) and downgrades deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
# include_name: `flask db migrate` must never write a drop of the runbooks' history table.
migrate = Migrate(render_as_batch=True, compare_type=True, include_name=skip_runbook_tables())

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def import_models() -> None:
    """Import every model module so ``db.metadata`` knows all tables.

    A model missing here is missing from autogenerate's view of the app, and
    autogenerate then proposes ``drop_table`` for it: keep this list complete.
    """
    from softbee.models import apiary, hive, inspection, treatment, user  # noqa: F401


def init_app(app: Flask) -> None:
    """Bind ``db`` and ``migrate`` to ``app`` with every model imported."""
    import_models()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
