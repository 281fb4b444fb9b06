"""Beekeepers and inspectors who use the API."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String, false
from sqlalchemy.orm import Mapped, mapped_column

from softbee.db import db
from softbee.models._base import TimestampMixin


class User(TimestampMixin, db.Model):
    """A registered user; owns apiaries and records inspections."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    username: Mapped[str] = mapped_column(String(80), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    email_verified: Mapped[bool] = mapped_column(
        Boolean(), nullable=False, server_default=false(), default=False
    )
    email_verification_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
