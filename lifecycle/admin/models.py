"""Admin console accounts, the sign-in throttle, and aggregates cached for the overview."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow


class AdminUser(Base):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # werkzeug's salted hash (scrypt by default); the password itself is never stored.
    password_hash: Mapped[str] = mapped_column(String(255))
    # Part of the id Flask-Login keeps in the session cookie: changing it at sign-out invalidates
    # every cookie issued before, so a copied cookie stops working once its owner signs out.
    session_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInThrottle(Base):
    """Failed sign-ins per email (known or not, so the throttle does not reveal which emails exist)."""

    __tablename__ = "admin_sign_in_throttle"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CachedAggregate(Base):
    """An aggregate too dear for a page load (a GROUP BY over every shipment), stored by whoever
    computed it last (beat every 30 s, or an operator's action) and read by the overview."""

    __tablename__ = "cached_aggregates"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
