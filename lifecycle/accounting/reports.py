"""The accountant's report (`manage.py quota`, `GET /api/quota`), read from running totals.

Every figure comes from `usage_totals` (a few dozen rows) or small indexed counts, never from a
scan of the ledger, so the report costs the same at a thousand entries or a million.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.accounting import periods
from lifecycle.accounting.ledger import Account, total_key
from lifecycle.accounting.models import BudgetAlert, UsageTotal
from lifecycle.operations.models import ServiceState

DAYS_PER_MONTH = Decimal(365) / 12


def money_text(amount: Decimal | None) -> str | None:
    """An exact amount as people write it (0E-10 is 0, 1.5000000000 is 1.5); None stays None."""
    return None if amount is None else format(amount.normalize(), "f")


def _total(session: Session, provider: str, scope: str, period: str, key: str) -> UsageTotal | None:
    return session.get(UsageTotal, (provider, scope, period, key))


def _units(row: UsageTotal | None) -> int:
    return row.units if row else 0


def _daily_units(session: Session, account: Account, today: date, days: int) -> int:
    first = (today - timedelta(days=days - 1)).isoformat()
    stmt = select(func.coalesce(func.sum(UsageTotal.units), 0)).where(
        UsageTotal.provider == account.provider,
        UsageTotal.scope == "day",
        UsageTotal.key == account.rules.unit,
        UsageTotal.period >= first,
        UsageTotal.period <= today.isoformat(),
    )
    return int(session.scalar(stmt) or 0)


def provider_report(
    session: Session, account: Account, now: datetime, month: str | None = None
) -> dict[str, Any]:
    """One provider's usage: buckets (per unit), burn rate, forecast, cost, drivers, alerts, drift.

    The top-level `used` / `remaining` are in the provider's own unit (17TRACK quota, CargoAi
    subscriptions); `units` has each unit the account counts (CargoAi: subscriptions and pull calls).
    """
    unit = account.rules.unit
    when = _instant_in(month, account, now)
    month = account.month(when)
    per_unit = {u: _unit_report(session, account, when, month, u) for u in report_units(account)}
    buckets = [bucket for report in per_unit.values() for bucket in report["buckets"]]
    today = periods.local_date(now, account.tz)
    burn = {f"{d}d": _rate(_daily_units(session, account, today, d), d) for d in (7, 30)}
    plan = account.plan_for(unit)
    return {
        "unit": unit,
        "rule_set": account.rule_set.name,
        "plan": _plan_json(account, when),
        "period": month,
        "used": per_unit[unit]["used"],
        "remaining": per_unit[unit]["remaining"],
        "units": {u: {k: v for k, v in r.items() if k != "buckets"} for u, r in per_unit.items()},
        "buckets": buckets,
        "burn_rate_per_day": {k: str(v) for k, v in burn.items()},
        "forecast_exhausted_on": _forecast(account, per_unit[unit]["buckets"], burn["30d"], today),
        "cost": _cost(session, account, when, per_unit),
        "cost_per_delivered_shipment": _cost_per_delivered(session, account, when),
        "top_cost_drivers": _drivers(session, account, month),
        "alerts": _alerts(session, account, when),
        "drift": _drift(session, account),
        "currency": account.rules.currency,
        "plan_price_known": bool(plan and plan.price is not None),
    }


def report_units(account: Account) -> list[str]:
    """The provider's unit first, then every other unit its rules or plans count in."""
    others = {rule.unit for rule in account.rule_set.rules} | {plan.unit for plan in account.plans.values()}
    return [account.rules.unit, *sorted(others - {account.rules.unit, ""})]


def _unit_report(session: Session, account: Account, when: datetime, month: str, unit: str) -> dict[str, Any]:
    buckets = [_bucket_report(session, account, b, unit) for b in account.buckets(when, unit)]
    month_row = _total(session, account.provider, "month", month, unit)
    plan = account.plan_for(unit)
    return {
        "plan": plan.name if plan else None,
        "used": _units(month_row),
        "remaining": sum(b["remaining"] for b in buckets if b["remaining"] is not None),
        "amount": money_text(month_row.amount) if month_row else "0",
        "unpriced_units": month_row.unpriced_units if month_row else 0,
        "buckets": buckets,
    }


def _instant_in(month: str | None, account: Account, now: datetime) -> datetime:
    if not month or month == account.month(now):
        return now
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 15, tzinfo=account.tz)


def _bucket_report(session: Session, account: Account, bucket: Any, unit: str) -> dict[str, Any]:
    row = _total(session, account.provider, "bucket", bucket.scope_period, total_key(bucket.name, unit))
    limited = bucket.name != "overage"
    used = _units(row)
    return {
        "bucket": bucket.name,
        "unit": unit,
        "period": bucket.scope_period,
        "limit": bucket.limit if limited else None,
        "used": used,
        "remaining": max(0, bucket.limit - used) if limited else None,
        "amount": money_text(row.amount) if row else "0",
        "unpriced_units": row.unpriced_units if row else 0,
        "unit_price": "unknown" if bucket.unit_price is None else money_text(bucket.unit_price),
    }


def _plan_json(account: Account, when: datetime) -> dict[str, Any] | None:
    plan = account.plan_for("")
    if plan is None:
        return None
    start = periods.plan_period_start(when, account.tz, account.plan_start, plan.period)
    return {
        "name": plan.name,
        "included_units": plan.included_units,
        "price": money_text(plan.price) if plan.price is not None else "unknown",
        "period_start": start.isoformat(),
        "period_end": (periods.plan_period_end(start, plan.period) - timedelta(days=1)).isoformat(),
    }


def _rate(units: int, days: int) -> Decimal:
    return (Decimal(units) / days).quantize(Decimal("0.01"))


def _forecast(account: Account, buckets: list[dict[str, Any]], per_day: Decimal, today: date) -> str | None:
    """When the plan's quota runs out at the 30-day burn rate, after each month's free quota.

    The free quota is weighed first: a burn it covers never runs out, even on a plan with nothing
    included (the free plan's bucket is 0 of 0). Once the plan is empty, what is left is this
    month's free units, spent at the whole burn rate.
    """
    plan_bucket = next((b for b in buckets if b["bucket"] in ("plan", "included")), None)
    if plan_bucket is None or per_day <= 0:
        return None
    free = [b for b in buckets if b["bucket"] == "monthly_free"]
    free_per_day = Decimal(sum(b["limit"] for b in free)) / DAYS_PER_MONTH
    net = per_day - free_per_day
    if net <= 0:
        return None  # the monthly free quota covers the current burn
    if plan_bucket["remaining"] == 0:
        free_left = sum(b["remaining"] for b in free)
        return (today + timedelta(days=int(free_left / per_day))).isoformat()
    return (today + timedelta(days=int(plan_bucket["remaining"] / net))).isoformat()


def _cost(session: Session, account: Account, when: datetime, per_unit: dict[str, Any]) -> dict[str, Any]:
    """Money: this month per unit and in all (monthly plan fees included), and the plan period's."""
    period_rows = _plan_period_rows(session, account, when)
    unpriced = sum(r.unpriced_units for r in period_rows)
    return {
        "month": per_unit[account.rules.unit]["amount"],
        "plan_period": money_text(sum((r.amount for r in period_rows), Decimal(0))),
        "unpriced_units": unpriced,
        "note": f"{unpriced} unit(s) at an unknown price are not in these sums" if unpriced else None,
        "month_total": _month_total(account, per_unit),
    }


def _plan_period_rows(session: Session, account: Account, when: datetime) -> list[UsageTotal]:
    """The totals of the provider unit's plan and overage buckets in the plan period holding `when`."""
    plan_period = account.plan_period(when)
    keys = [total_key(name, account.rules.unit) for name in ("plan", "included", "overage")]
    rows = [_total(session, account.provider, "bucket", plan_period, key) for key in keys]
    return [row for row in rows if row is not None]


def _month_total(account: Account, per_unit: dict[str, Any]) -> dict[str, Any]:
    """The month's bill: monthly plan fees + what each unit cost; `unknown` where a price is unknown."""
    monthly_plans = [plan for plan in account.plans.values() if plan.period == "month"]
    fees = [plan.price for plan in monthly_plans]
    known = sum((fee for fee in fees if fee is not None), Decimal(0))
    by_unit: dict[str, str] = {}
    complete = None not in fees
    for unit, report in per_unit.items():
        known += Decimal(report["amount"])
        by_unit[unit] = "unknown" if report["unpriced_units"] else report["amount"]
        complete = complete and not report["unpriced_units"]
    return {
        "fee": money_text(sum(fees, Decimal(0))) if None not in fees else "unknown",  # type: ignore[arg-type]
        "fee_plans": [plan.name for plan in monthly_plans],
        "by_unit": by_unit,
        "total": money_text(known) if complete else "unknown",
        "known_part": money_text(known),
    }


def _cost_per_delivered(session: Session, account: Account, when: datetime) -> dict[str, Any] | None:
    delivered = _units(_total(session, account.provider, "shipments", "all", "delivered"))
    if not delivered:
        return None
    units = sum(
        _units(_total(session, account.provider, "bucket", period, total_key(name, account.rules.unit)))
        for name, period in (
            ("monthly_free", account.month(when)),
            ("plan", account.plan_period(when)),
            ("overage", account.plan_period(when)),
        )
    )
    cost = sum((row.amount for row in _plan_period_rows(session, account, when)), Decimal(0))
    return {
        "units": str((Decimal(units) / delivered).quantize(Decimal("0.01"))),
        "money": str((Decimal(cost) / delivered).quantize(Decimal("0.0001"))),
        "delivered": delivered,
    }


def _drivers(session: Session, account: Account, month: str) -> list[dict[str, Any]]:
    stmt = (
        select(UsageTotal)
        .where(
            UsageTotal.provider == account.provider, UsageTotal.scope == "rule", UsageTotal.period == month
        )
        .order_by(UsageTotal.units.desc(), UsageTotal.entries.desc())
        .limit(5)
    )
    return [
        {"rule": r.key, "units": r.units, "events": r.entries, "amount": money_text(r.amount)}
        for r in session.scalars(stmt)
    ]


def _alerts(session: Session, account: Account, when: datetime) -> list[dict[str, Any]]:
    stmt = select(BudgetAlert).where(
        BudgetAlert.provider == account.provider, BudgetAlert.plan_period == account.plan_period(when)
    )
    return [
        {
            "threshold": a.threshold,
            "message": a.message,
            "crossed_at": a.crossed_at.isoformat(),
            "delivered": a.delivered_at is not None,
        }  # fmt: skip
        for a in session.scalars(stmt.order_by(BudgetAlert.threshold))
    ]


def _drift(session: Session, account: Account) -> dict[str, Any] | None:
    """Our count against the provider's own (17TRACK getquota), with what explains a gap."""
    snapshot = session.get(ServiceState, f"getquota:{account.provider}")
    if snapshot is None:
        return None
    return dict(snapshot.value)


def quota_report(
    session: Session, accounts: dict[str, Account], now: datetime, month: str | None = None
) -> dict:
    return {
        "providers": {
            name: provider_report(session, account, now, month) for name, account in accounts.items()
        }
    }
