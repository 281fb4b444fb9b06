"""Honeyhouse: a tiny Flask-Migrate app that migrates its own database on every start, with no way off.

``create_app(configuration=None)`` loads its defaults, then the given config object or the
settings file named by ``HONEYHOUSE_SETTINGS``; the database URL is its own setting, read from
``HONEYHOUSE_DB_URL`` (not ``DATABASE_URL``). Then, always: if the tables exist without
``alembic_version`` (a database from before Alembic) it stamps the first revision, and it runs
``flask_migrate.upgrade()`` on the migrations inside the package. No setting skips that.
"""

import os

from flask import Flask
from flask_migrate import Migrate, stamp, upgrade
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import inspect

db = SQLAlchemy()

FIRST_REVISION = "a7000000001a"


class Jar(db.Model):
    """A jar of honey: its batch, when it was harvested, and its weight."""

    __tablename__ = "jars"

    id = db.Column(db.Integer, primary_key=True)
    batch = db.Column(db.String(40), nullable=False)
    harvested_on = db.Column(db.Date, nullable=True)
    weight_g = db.Column(db.Integer, nullable=False, server_default="0")


class Defaults:
    """What applies when neither a config object nor a settings file says otherwise."""

    SQLALCHEMY_DATABASE_URI = os.environ.get("HONEYHOUSE_DB_URL", "sqlite:////tmp/honeyhouse.sqlite3")
    SQLALCHEMY_TRACK_MODIFICATIONS = False


def setup_database(app: Flask) -> None:
    """Bind the database, stamp a pre-Alembic one, and migrate it to head (always)."""
    db.init_app(app)
    Migrate(app, db)
    migrations = os.path.join(app.root_path, "migrations")
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        if "jars" in tables and "alembic_version" not in tables:
            stamp(migrations, revision=FIRST_REVISION)
        upgrade(migrations)


def create_app(configuration=None):
    """Build the app from its defaults and ``configuration`` (or ``HONEYHOUSE_SETTINGS``), then migrate."""
    app = Flask(__name__)
    app.config.from_object(Defaults)
    if configuration:
        app.config.from_object(configuration)
    elif os.environ.get("HONEYHOUSE_SETTINGS"):
        app.config.from_pyfile(os.environ["HONEYHOUSE_SETTINGS"])
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "HONEYHOUSE_DB_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    setup_database(app)
    return app
