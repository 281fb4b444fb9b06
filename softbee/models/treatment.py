"""Treatments: varroa and disease treatments applied to a hive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from softbee.db import db
from softbee.models._base import utcnow


class Treatment(db.Model):
    """A treatment course on one hive."""

    __tablename__ = "treatments"

    id: Mapped[int] = mapped_column(primary_key=True)
    hive_id: Mapped[int] = mapped_column(
        ForeignKey("hives.id", ondelete="CASCADE"), nullable=False, index=True
    )
    applied_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    product: Mapped[str] = mapped_column(String(120), nullable=False)
    target: Mapped[str] = mapped_column(String(40), nullable=False, server_default="varroa")
    dose: Mapped[str | None] = mapped_column(String(60), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(), nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    notes: Mapped[str | None] = mapped_column(Text(), nullable=True)
