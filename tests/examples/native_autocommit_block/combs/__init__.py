"""Combs: a tiny Flask-Migrate app whose revisions use Alembic's own ``autocommit_block``.

Two of its revisions build indexes ``CONCURRENTLY`` inside
``op.get_context().autocommit_block()``, as real applications write them (one on a table
that holds rows, with a guarded column added before the block; one whose downgrade drops
its index ``CONCURRENTLY``). The runbook runs each block as an online phase. A module-level
``app``, its URL from ``DATABASE_URL``, the stock ``flask db init`` env.py.
"""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///combs.sqlite3")
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Frame(db.Model):
    """A frame of comb, the hive it hangs in, and how heavy it was when last checked."""

    __tablename__ = "frames"

    id = db.Column(db.Integer, primary_key=True)
    hive = db.Column(db.String(40), nullable=False, index=True)
    weight_g = db.Column(db.Integer, nullable=True)
    capped = db.Column(db.Boolean, nullable=True)


class Harvest(db.Model):
    """Honey taken from a frame."""

    __tablename__ = "harvests"

    id = db.Column(db.Integer, primary_key=True)
    frame_id = db.Column(db.Integer, nullable=False, index=True)  # frames.id
    kg = db.Column(db.Numeric(6, 2), nullable=False)
