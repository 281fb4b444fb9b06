"""Inspections: the largest table, one row per hive visit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from softbee.db import db
from softbee.models._base import utcnow


class Inspection(db.Model):
    """What an inspector saw when opening a hive."""

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(primary_key=True)
    hive_id: Mapped[int] = mapped_column(
        ForeignKey("hives.id", ondelete="CASCADE"), nullable=False, index=True
    )
    inspector_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    inspected_at: Mapped[datetime] = mapped_column(DateTime(), nullable=False, default=utcnow)
    queen_seen: Mapped[bool] = mapped_column(Boolean(), nullable=False, default=False)
    eggs_seen: Mapped[bool] = mapped_column(Boolean(), nullable=False, default=False)
    brood_frames: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    honey_frames: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    temperament: Mapped[str | None] = mapped_column(String(20), nullable=True)
    varroa_mites_per_100: Mapped[int | None] = mapped_column(Integer(), nullable=True, index=True)
    notes: Mapped[str | None] = mapped_column(Text(), nullable=True)
