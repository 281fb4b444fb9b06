"""Twin hives: a Flask-Migrate app with two databases (``flask db init --multidb``).

The default database keeps the hives; the ``audit`` bind (``SQLALCHEMY_BINDS``) keeps
what happened to them, in a database of its own: ``AUDIT_DATABASE_URL``, else a SQLite
file beside the app. Its migrations use Flask-Migrate's multi-database ``env.py``: one
``alembic_version`` per database, revisions with ``upgrade_()`` / ``upgrade_audit()``.
"""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///twinhives.sqlite3")
app.config["SQLALCHEMY_BINDS"] = {
    "audit": os.environ.get("AUDIT_DATABASE_URL", "sqlite:///twinhives-audit.sqlite3"),
}
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Hive(db.Model):
    """A hive, in the default database."""

    __tablename__ = "hives"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    region = db.Column(db.String(40), nullable=True)


class HiveTag(db.Model):
    """A tag on a hive (revision a1000000004d)."""

    __tablename__ = "hive_tags"

    id = db.Column(db.Integer, primary_key=True)
    hive_id = db.Column(db.Integer, nullable=False)
    tag = db.Column(db.String(40), nullable=False)


class AuditEvent(db.Model):
    """Something that happened to a hive, in the audit database."""

    __bind_key__ = "audit"
    __tablename__ = "audit_events"

    id = db.Column(db.Integer, primary_key=True)
    hive_name = db.Column(db.String(80), nullable=False)
    action = db.Column(db.String(40), nullable=False)
    note = db.Column(db.String(200), nullable=True)


class AuditArchive(db.Model):
    """Archived audit events (revision a1000000004d)."""

    __bind_key__ = "audit"
    __tablename__ = "audit_archive"

    id = db.Column(db.Integer, primary_key=True)
    event_id = db.Column(db.Integer, nullable=False)
