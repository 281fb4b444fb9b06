"""Swarmlog: colonies and their status, an ENUM whose values grow (tests/examples/enum_change)."""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///swarmlog.sqlite3")
db = SQLAlchemy(app)
migrate = Migrate(app, db)

STATUSES = ("active", "queenless", "dead")  # the migration has the first two only


class Colony(db.Model):
    """A colony of bees and how it is doing."""

    __tablename__ = "colonies"

    id = db.Column(db.Integer, primary_key=True)
    status = db.Column(db.Enum(*STATUSES, name="colony_status"), nullable=False)
