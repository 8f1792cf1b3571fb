"""Plan advice (`manage.py plan`): which plan fits the observed volume, and what the service saved."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.accounting import periods
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import UsageTotal
from lifecycle.accounting.rules import Plan
from lifecycle.db import utcnow
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment, Transition

# 17TRACK keeps pushing a delivered parcel every 24 h and stops it 15 days after delivery
# (reference/17track.md §3.3, §5): the cycles auto-stop avoids, per delivered shipment.
CYCLES_AFTER_DELIVERY = 15


def monthly_history(session: Session, account: Account) -> list[tuple[str, int]]:
    """Units per calendar month, oldest first; a month without a total between two that have one is 0."""
    stmt = (
        select(UsageTotal.period, UsageTotal.units)
        .where(
            UsageTotal.provider == account.provider,
            UsageTotal.scope == "month",
            UsageTotal.key == account.rules.unit,
        )  # fmt: skip
        .order_by(UsageTotal.period)
    )
    stored = dict(session.execute(stmt).all())
    if not stored:
        return []
    first, last = min(stored), max(stored)
    months, month = [], first
    while month <= last:
        months.append((month, stored.get(month, 0)))
        year, number = int(month[:4]), int(month[5:7])
        month = f"{year + number // 12}-{number % 12 + 1:02d}"
    return months


def price_year(plan: Plan, months: list[int], free_monthly: int) -> dict[str, Any]:
    """Replay a year of monthly usage on a plan: free quota first each month, then the plan's pool."""
    pool = plan.included_units or 0
    overage = 0
    exhausted_in = None
    for index, units in enumerate(months):
        from_pool = max(0, units - free_monthly)
        taken = min(pool, from_pool)
        pool -= taken
        overage += from_pool - taken
        if from_pool > taken and exhausted_in is None:
            exhausted_in = index + 1
    cost = None
    if plan.price is not None:
        cost = plan.price if not overage else (
            None if plan.overage_unit_price is None else plan.price + overage * plan.overage_unit_price
        )  # fmt: skip
    return {
        "overage_units": overage,
        "runs_out_in_month": exhausted_in,
        "cost": None if cost is None else str(cost),
    }


def last_twelve(months: list[int], average: Decimal) -> list[int]:
    """The year the `actual_history` comparison prices: the last 12 months, or all of a shorter
    history followed by months at the average."""
    if len(months) >= 12:
        return months[-12:]
    return months + [int(average)] * (12 - len(months))


def advise(session: Session, account: Account, today: date | None = None) -> dict[str, Any]:
    """The cheapest plan by the seed's rule (average monthly volume × 12 within the plan's quota),
    and, on a separate line, what the free monthly quota would save if it also applies beside a plan."""
    months = [units for _, units in monthly_history(session, account)]
    average = Decimal(sum(months)) / len(months) if months else Decimal(0)
    projected = [int(average.to_integral_value())] * 12
    actual = last_twelve(months, average)
    free = account.rules.free_tier(today or periods.local_date(utcnow(), account.tz)).monthly_units
    plans = []
    for plan in sorted(account.rules.plans.values(), key=lambda p: p.included_units or 0):
        # The free plan's quota is the free tier itself; a paid plan's is its own, by the seed's rule.
        own_free = free if plan.price == 0 else 0
        plans.append({"plan": plan.name, "included_units": plan.included_units,
                      "price": None if plan.price is None else str(plan.price),
                      "average_x12": price_year(plan, projected, own_free),
                      "actual_history": price_year(plan, actual, own_free),
                      "with_free_alongside": price_year(plan, projected, free)})  # fmt: skip
    cheapest = _cheapest(plans, "average_x12")
    return {
        "months_observed": len(months),
        "average_monthly_units": str(average.quantize(Decimal("0.1"))),
        "annual_need": int(average * 12),
        "currency": account.rules.currency,
        "plans": plans,
        "cheapest": cheapest["plan"] if cheapest else None,
        "why": _why(cheapest, average),
        "alternative": _alternative(account, plans, cheapest, average, free),
        "savings": savings(session, account),
    }


def _cheapest(plans: list[dict[str, Any]], basis: str) -> dict[str, Any] | None:
    fitting = [p for p in plans if p[basis]["overage_units"] == 0 and p["price"] is not None]
    return min(fitting, key=lambda p: Decimal(p["price"]), default=None)


def _why(cheapest: dict[str, Any] | None, average: Decimal) -> str:
    if cheapest is None:
        return "no plan with a known price covers the observed volume; overage prices are unknown"
    need = int(average * 12)
    return (f"{cheapest['plan']} is the cheapest plan whose quota covers the annual need of {need:,} units "
            f"({average.quantize(Decimal('0.1'))} a month × 12)")  # fmt: skip


def _alternative(
    account: Account, plans: list[dict[str, Any]], chosen: dict[str, Any] | None, average: Decimal, free: int
) -> dict[str, Any]:
    """The other assumption: the free quota is spent before a paid plan's too, so less quota is needed."""
    other = _cheapest(plans, "with_free_alongside")
    saving = None
    if chosen and other and other["plan"] != chosen["plan"]:
        saving = str(Decimal(chosen["price"]) - Decimal(other["price"]))
    return {
        "assumption": f"the {free} free units a month also apply alongside a paid plan",
        "rule_file_assumes_it": account.rules.free_units_alongside_plan,
        "annual_need": int(max(Decimal(0), average - free) * 12),
        "cheapest": other["plan"] if other else None,
        "saving": saving,
    }


def savings(session: Session, account: Account) -> dict[str, Any]:
    """What deduplication, batching and auto-stop saved, under each rule set (honestly: official is 0)."""
    duplicates = session.scalar(select(func.count()).where(InboxEvent.outcome == "duplicate")) or 0
    stopped = (
        session.scalar(
            select(func.count()).where(
                Shipment.provider == account.provider,
                Shipment.status == "delivered",
                Shipment.tracking == "stopped",
            )  # fmt: skip
        )
        or 0
    )
    sent = session.execute(
        select(Operation.kind, func.count())
        .where(Operation.provider == account.provider, Operation.status == "done")
        .group_by(Operation.kind)  # fmt: skip
    ).all()
    numbers = sum(n for _, n in sent)
    return {
        "duplicate_pushes_ignored": duplicates,
        "auto_stopped_after_delivery": stopped,
        "provider_calls_saved_by_batching": max(0, numbers - -(-numbers // 40)),
        "quota_saved": {
            "17track-official": {"units": 0, "why": "17TRACK does not charge continuous tracking or pushes"},
            "17track-per-cycle": {
                "units": stopped * CYCLES_AFTER_DELIVERY + duplicates,
                "why": f"{stopped} stopped × {CYCLES_AFTER_DELIVERY} daily cycles until 17TRACK's own stop "
                f"(estimate), plus {duplicates} duplicate pushes not counted as cycles",
            },
        },
    }


def cargoai_break_even(session: Session, account: Account) -> dict[str, Any]:
    """Push (per subscription) against pull (per call), from the status updates each AWB really had.

    Pulling an AWB costs at least one call per update it has; pushing costs one subscription
    whatever the count. So push wins for an AWB once its updates × call price > subscription price.
    """
    push = account.rules.plans.get("push-pro")
    pull = account.rules.plans.get("pull-pro")
    push_price = push.overage_unit_price if push else None
    call_price = pull.overage_unit_price if pull else None
    stmt = (
        select(Shipment.number, func.count(Transition.id))
        .join(Transition, Transition.shipment_id == Shipment.id)
        .where(Shipment.provider == "cargoai", Transition.kind != "stale")
        .group_by(Shipment.number)
    )
    updates = dict(session.execute(stmt).all())
    average = Decimal(sum(updates.values())) / len(updates) if updates else Decimal(0)
    result: dict[str, Any] = {
        "awbs_observed": len(updates),
        "average_updates_per_awb": str(average.quantize(Decimal("0.1"))),
        "push_price_per_subscription": None if push_price is None else str(push_price),
        "pull_price_per_call": None if call_price is None else str(call_price),
    }
    if push_price is None or call_price is None or not call_price:
        result["break_even_updates"] = None
        result["why"] = (
            "the pull price per call is unknown (not in the sources); set it in cargoai.toml to compare"
        )
        return result
    break_even = push_price / call_price
    result["break_even_updates"] = str(break_even)
    result["cheaper_on_push"] = sorted(n for n, u in updates.items() if u > break_even)
    result["cheaper_on_pull"] = sorted(n for n, u in updates.items() if u <= break_even)
    return result
