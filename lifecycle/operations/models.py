"""The operations outbox: provider calls decided by the domain, sent later by workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow

PENDING = "pending"
IN_FLIGHT = "in_flight"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_ready", "status", "provider", "kind", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    shipment_id: Mapped[int | None] = mapped_column(
        ForeignKey("shipments.id", ondelete="SET NULL"), index=True
    )
    number: Mapped[str] = mapped_column(String(64))
    carrier: Mapped[int] = mapped_column(Integer, default=0)
    # Kind-specific arguments (lang, tag, carrier_new, …).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Derived from the business event, so deciding the same operation twice inserts it once.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_code: Mapped[int | None] = mapped_column(Integer)
    result_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceState(Base):
    """Small durable flags shared by all processes, e.g. "17TRACK registration paused: quota"."""

    __tablename__ = "service_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
