"""Hivelog: a tiny Flask-Migrate app shared by the ``envpy_*`` shape examples.

An app factory (``create_app``) with module-level ``db`` and ``migrate``, the
database URL from ``DATABASE_URL``. Each ``envpy_<shape>/migrations/env.py``
runs the same three revisions against these models; only how env.py gets its
connection differs.
"""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Colony(db.Model):
    """A colony of bees, by name and (since e1000000003c) region."""

    __tablename__ = "colonies"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, index=True)
    region = db.Column(db.String(40), nullable=True)


class Visit(db.Model):
    """One inspection visit to a colony."""

    __tablename__ = "visits"

    id = db.Column(db.Integer, primary_key=True)
    colony_id = db.Column(db.Integer, db.ForeignKey("colonies.id"), nullable=False, index=True)
    note = db.Column(db.String(200), nullable=True)


def create_app():
    """Build the app; the database URL comes from ``DATABASE_URL``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///hivelog.sqlite3")
    db.init_app(app)
    migrate.init_app(app, db)
    return app
