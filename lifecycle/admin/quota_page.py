"""The quota and costs page's data: the accountant's report, plan advice, daily use, dear shipments."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting import advice, periods
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import BudgetAlert, UsageTotal
from lifecycle.accounting.reports import provider_report
from lifecycle.db import utcnow
from lifecycle.shipments.models import Shipment

DAYS = 90
DEAREST = 10


def daily_units(session: Session, account: Account, today: date, days: int = DAYS) -> list[tuple[date, int]]:
    """Units consumed per local day (running `day` totals), zero-filled, oldest first."""
    first = today - timedelta(days=days - 1)
    stmt = select(UsageTotal.period, UsageTotal.units).where(
        UsageTotal.provider == account.provider, UsageTotal.scope == "day",
        UsageTotal.key == account.rules.unit, UsageTotal.period >= first.isoformat(),
        UsageTotal.period <= today.isoformat(),
    )  # fmt: skip
    found = {date.fromisoformat(period): units for period, units in session.execute(stmt)}
    return [(first + timedelta(days=i), found.get(first + timedelta(days=i), 0)) for i in range(days)]


def dearest_shipments(session: Session, provider: str, limit: int = DEAREST) -> list[Shipment]:
    stmt = (
        select(Shipment)
        .where(Shipment.provider == provider, Shipment.cost_units > 0)
        .order_by(Shipment.cost_units.desc(), Shipment.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def provider_page(session: Session, account: Account, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    report = provider_report(session, account, now)
    plan_bucket = next((b for b in report["buckets"] if b["bucket"] in ("plan", "included")), None)
    return {
        "provider": account.provider,
        "report": report,
        "advice": advice.advise(session, account),
        "daily": daily_units(session, account, periods.local_date(now, account.tz)),
        "per_day": float(report["burn_rate_per_day"]["30d"]),
        "plan_remaining": plan_bucket["remaining"] if plan_bucket else None,
        "dearest": dearest_shipments(session, account.provider),
        "break_even": advice.cargoai_break_even(session, account) if account.provider == "cargoai" else None,
    }


def open_alerts(session: Session) -> list[BudgetAlert]:
    stmt = select(BudgetAlert).where(BudgetAlert.acknowledged_at.is_(None)).order_by(BudgetAlert.id.desc())
    return list(session.scalars(stmt.limit(50)))


def acknowledge(session: Session, alert_id: int) -> bool:
    alert = session.get(BudgetAlert, alert_id)
    if alert is None or alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at = utcnow()
    return True
