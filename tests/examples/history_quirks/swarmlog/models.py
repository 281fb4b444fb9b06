"""Swarmlog's models: swarms caught, the inspections that noted them, queen cells."""

import enum

from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class SwarmKind(enum.Enum):
    """Where a swarm came from (b8000000003c builds its column type from this class)."""

    PRIME = "prime"
    CAST = "cast"
    UNKNOWN = "unknown"


class Inspection(db.Model):
    """An inspection, with a note."""

    __tablename__ = "inspections"

    id = db.Column(db.Integer, primary_key=True)
    note = db.Column(db.String(200), nullable=True)


class QueenCell(db.Model):
    """A queen cell and its stage (a named enum type on PostgreSQL)."""

    __tablename__ = "queen_cells"

    id = db.Column(db.Integer, primary_key=True)
    stage = db.Column(db.Enum("OPEN", "CAPPED", name="cellstage"), nullable=False)


class Swarm(db.Model):
    """A swarm caught, its kind, and the inspection that noted it."""

    __tablename__ = "swarms"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    caught_at = db.Column(db.String(80), nullable=False)
    kind = db.Column(db.Enum(SwarmKind), nullable=False, server_default=SwarmKind.UNKNOWN.name)
    inspection_id = db.Column(db.Integer, db.ForeignKey("inspections.id"), nullable=True)
