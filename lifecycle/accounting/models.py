"""The append-only ledger and its incrementally kept totals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow

# Exact to 1e-10 of a currency unit: plan prices per unit (e.g. ¥7,299 / 500,000) are exact here.
Money = Numeric(24, 10)


class LedgerEntry(Base):
    """One charge. Never updated or deleted: a correction is a new entry pointing at the old one."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_provider_occurred_at", "provider", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    rule_set: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    event_kind: Mapped[str] = mapped_column(String(32))
    # monthly_free | plan | included | overage | free (a zero-unit event, kept for the record)
    bucket: Mapped[str] = mapped_column(String(16))
    units: Mapped[int] = mapped_column(Integer)
    # What a unit is: 17TRACK "quota"; CargoAi "subscription" (push) or "call" (pull).
    unit: Mapped[str] = mapped_column(String(16))
    # None when the price is unknown (never invented): reports say so.
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    shipment_id: Mapped[int | None] = mapped_column(
        ForeignKey("shipments.id", ondelete="SET NULL"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(240), unique=True)
    # The business event itself, so `replay` can price the same history under another rule set.
    event_key: Mapped[str] = mapped_column(String(240), index=True)
    event_attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The billing periods the entry counts in: calendar month (account time zone) and plan period.
    month: Mapped[str] = mapped_column(String(7))
    plan_period: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("ledger.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageTotal(Base):
    """Running totals per (provider, scope, period, key), updated in the charging transaction.

    Reports read these few rows instead of scanning the ledger. Scopes: `bucket` (period = month or
    plan period, key = bucket), `day` (key = "units"), `rule` (period = month, key = rule),
    `emails` (period = month).
    """

    __tablename__ = "usage_totals"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # Some entries in this total had no known price.
    unpriced_units: Mapped[int] = mapped_column(Integer, default=0)


class BudgetAlert(Base):
    """A threshold crossed once per provider and plan period; delivered to the alert webhook."""

    __tablename__ = "budget_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    plan_period: Mapped[str] = mapped_column(String(10))
    threshold: Mapped[int] = mapped_column(Integer)
    used_units: Mapped[int] = mapped_column(Integer)
    limit_units: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    crossed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    # Set by an operator in the admin console; unacknowledged alerts stay on the overview.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("uq_budget_alerts_once", "provider", "plan_period", "threshold", unique=True),)
