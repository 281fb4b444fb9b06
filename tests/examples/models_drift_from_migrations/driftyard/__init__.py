"""Driftyard: a Flask-Migrate app whose models drifted from its migrations (see README.md)."""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Apiary(db.Model):
    """An apiary; the model says its name is required, the migrations never did."""

    __tablename__ = "apiaries"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)


class Hive(db.Model):
    """A hive; ``apiary_id``'s index and ``nickname`` are in no revision."""

    __tablename__ = "hives"

    id = db.Column(db.Integer, primary_key=True)
    apiary_id = db.Column(db.Integer, db.ForeignKey("apiaries.id"), nullable=False, index=True)
    name = db.Column(db.String(80), nullable=False)
    queen_year = db.Column(db.Integer, nullable=True, index=True)
    nickname = db.Column(db.String(40), nullable=True)


def create_app():
    """Build the app; the database URL comes from ``DATABASE_URL``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///driftyard.sqlite3")
    db.init_app(app)
    migrate.init_app(app, db)
    return app
