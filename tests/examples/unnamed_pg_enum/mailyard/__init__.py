"""Mailyard: a Flask-Migrate app with an unnamed ``db.Enum`` and a second MetaData (see README.md)."""

import os

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()

# A reporting job's table, outside Flask-SQLAlchemy: env.py adds this MetaData to its target.
reporting = sa.MetaData()
mail_stats = sa.Table(
    "mail_stats",
    reporting,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("sent", sa.Integer, nullable=False),
)


class Account(db.Model):
    """A mail account; ``protocol`` is an Enum without a name."""

    __tablename__ = "accounts"

    id = db.Column(db.Integer, primary_key=True)
    address = db.Column(db.String(120), nullable=False)
    protocol = db.Column(db.Enum("imap", "pop3"), nullable=False)
    port = db.Column(db.Integer, nullable=True)


def create_app():
    """Build the app; the database URL comes from ``DATABASE_URL``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///mailyard.sqlite3")
    db.init_app(app)
    migrate.init_app(app, db)
    return app
