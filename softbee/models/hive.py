"""Hives: one colony each, numbered within their apiary."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from softbee.db import db
from softbee.models._base import TimestampMixin


class Hive(TimestampMixin, db.Model):
    """A colony in an apiary; ``hive_number`` is unique per apiary."""

    __tablename__ = "hives"
    __table_args__ = (UniqueConstraint("apiary_id", "hive_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    apiary_id: Mapped[int] = mapped_column(
        ForeignKey("apiaries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    hive_number: Mapped[int] = mapped_column(Integer(), nullable=False)
    hive_type: Mapped[str] = mapped_column(String(40), nullable=False, server_default="langstroth")
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    health_status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="unknown")
    queen_year: Mapped[int | None] = mapped_column(Integer(), nullable=True)
