"""Broodbox: a tiny Flask-Migrate app whose revision scripts read ``current_app`` when imported.

An app factory (``create_app``) with module-level ``db`` and ``migrate``, the database URL
from ``DATABASE_URL``, and one setting the revisions read (``BROODBOX_DEFAULT_COLOUR``).
Flask-Migrate's commands always import revision scripts inside the app's context, so such
scripts work with ``flask db``; anything that loads them without one gets
``RuntimeError: Working outside of application context.``
"""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Frame(db.Model):
    """A brood frame: its name, a label made from the name, and a paint colour."""

    __tablename__ = "frames"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    label = db.Column(db.String(80), nullable=True, index=True)
    colour = db.Column(db.String(20), nullable=False, server_default="amber")


def create_app():
    """Build the app; the database URL comes from ``DATABASE_URL``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///broodbox.sqlite3")
    app.config["BROODBOX_DEFAULT_COLOUR"] = "amber"
    db.init_app(app)
    migrate.init_app(app, db)
    return app
