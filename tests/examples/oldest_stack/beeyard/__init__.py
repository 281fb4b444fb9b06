"""Beeyard: a small Flask 2.1 / Flask-SQLAlchemy 2.5 / SQLAlchemy 1.4 / Flask-Migrate 2.5 app.

Written as projects of that era are: ``db.Model`` with ``db.Column``, an app factory taking a
config object path, and (like many long-lived apps) a factory that migrates the database
itself on start (``flask_migrate.upgrade()``) unless its config says not to. The runbooks
load it as ``beeyard:create_app("beeyard.config.Runbook")``.
"""

import os

from flask import Flask
from flask_migrate import Migrate, upgrade
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Hive(db.Model):
    """A hive in a yard, with its weight (f2000000004d adds the index on yard)."""

    __tablename__ = "hives"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    weight_kg = db.Column(db.Integer, nullable=True)
    yard = db.Column(db.String(40), nullable=True, index=True)


def create_app(config_object="beeyard.config.Default"):
    """Build the app from ``config_object``; migrate the database on start when it says so."""
    app = Flask(__name__)
    app.config.from_object(config_object)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "sqlite:///beeyard.sqlite3")
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    if app.config["MIGRATE_ON_START"]:
        with app.app_context():
            upgrade()
    return app
