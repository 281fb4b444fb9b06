"""Swarmlog: a tiny Flask-Migrate app whose history carries quirks found in real projects.

An app factory (``create_app``), the database URL from ``DATABASE_URL``, the models in
``swarmlog.models`` (one revision imports its Python enum from there). See the example's
README for the quirks.
"""

import os

from flask import Flask
from flask_migrate import Migrate

from swarmlog.models import db

migrate = Migrate()


def create_app():
    """Build the app; the database URL comes from ``DATABASE_URL``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///swarmlog.sqlite3")
    db.init_app(app)
    migrate.init_app(app, db)
    return app
