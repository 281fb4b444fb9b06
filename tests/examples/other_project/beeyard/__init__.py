"""Beeyard: a tiny Flask-Migrate app that is not Soft-Bee.

It exists to show the runbooks work on any Flask-Migrate project: a module-level
``app`` (not a factory), its own ``db`` and ``Migrate(app, db)``, the database
URL from ``DATABASE_URL``, and the stock ``flask db init`` env.py in
``migrations/``.
"""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///beeyard.sqlite3")
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Yard(db.Model):
    """A bee yard and what flowers around it."""

    __tablename__ = "yards"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    forage = db.Column(db.String(200), nullable=True)
