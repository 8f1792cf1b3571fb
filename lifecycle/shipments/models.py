"""Shipments and their transition history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    column,
    desc,
    false,
    nulls_last,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow

# 0 stands for "carrier not known yet" (17TRACK auto-detection); the JSON shows it as null.
UNKNOWN_CARRIER = 0


# The admin's shipments page sorts newest first, rows without a value last (admin/shipment_list.py).
# Declared as migrations 0006 and 0012 made them, so autogenerate keeps them: PostgreSQL has these
# orders, SQLite the plain columns (its reflection reports no order, so both compare equal).
_WITH_ERROR = text("last_error IS NOT NULL")


def _newest_first(name: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    return nulls_last(desc(column(name))), desc(column("id"))


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("provider", "number", "carrier"),
        Index("ix_shipments_tag_id", "tag", "id"),
        Index("ix_shipments_last_event_at_id", *_newest_first("last_event_at")),
        Index("ix_shipments_registered_at_id", *_newest_first("registered_at")),
        # PostgreSQL only (migration 0006): a plain btree serves LIKE 'RR12%' only in the C collation.
        Index("ix_shipments_number_prefix", "number", postgresql_ops={"number": "varchar_pattern_ops"}),
        # Errors are rare: the "has an error" filter reads only these (migration 0012).
        Index("ix_shipments_with_error_id", "id", postgresql_where=_WITH_ERROR, sqlite_where=_WITH_ERROR),
        Index("ix_shipments_with_error_last_event_at_id", *_newest_first("last_event_at"),
              postgresql_where=_WITH_ERROR, sqlite_where=_WITH_ERROR),
        Index("ix_shipments_with_error_registered_at_id", *_newest_first("registered_at"),
              postgresql_where=_WITH_ERROR, sqlite_where=_WITH_ERROR),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(64), index=True)
    carrier: Mapped[int] = mapped_column(Integer, default=UNKNOWN_CARRIER)
    # The carrier's display name from the provider's pushes ("China Post"); None until one says.
    carrier_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    sub_status: Mapped[str | None] = mapped_column(String(64))
    tracking: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    # "registered" here, or "adopted" from a push for a number registered elsewhere.
    origin: Mapped[str] = mapped_column(String(16), default="registered")
    tag: Mapped[str | None] = mapped_column(String(128))
    lang: Mapped[str | None] = mapped_column(String(16))
    # 17TRACK allows one free retrack and five carrier changes per number: refused locally after.
    retracked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    carrier_changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_code: Mapped[int | None] = mapped_column(Integer)
    # When the provider first returned tracking data (carrier changes are refused before it).
    first_result_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When provider data (push or pull) last arrived: drives the "no push for too long" backfill.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The event that set `status`: older than last_event_at when the newest status was unknown.
    status_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_description: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    registration_generation: Mapped[int] = mapped_column(Integer, default=1)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # CargoAi: "push" (a subscription, 3 weeks) or "pull" (polled within a call budget).
    tracking_mode: Mapped[str | None] = mapped_column(String(8))
    subscriptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    subscription_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the ledger charged for this shipment so far, kept in the charging transaction
    # (accounting.ledger), so showing it never sums the ledger. Money counts priced entries only.
    cost_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)
    cost_amount: Mapped[Decimal] = mapped_column(Numeric(24, 10), default=Decimal(0), server_default="0")
    cost_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Transition(Base):
    """One observed tracking state of a shipment, in arrival order.

    `kind` tells what it did: `transition` (status changed), `update` (newer event, same status),
    `stale` (older than what was stored: kept for the audit, status untouched), `stopped`.
    """

    __tablename__ = "transitions"
    __table_args__ = (
        UniqueConstraint("shipment_id", "dedupe_key"),
        Index("ix_transitions_shipment_id_id", "shipment_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inbox.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    sub_status: Mapped[str | None] = mapped_column(String(64))
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    description: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
