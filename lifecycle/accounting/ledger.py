"""Charging billable events into the ledger, exactly once, into the right bucket.

Every charge is allocated in order to the first bucket with room: 17TRACK's monthly free quota,
then the plan's quota, then overage (CargoAi: the plan's included units, then overage). The
bucket totals are locked for the allocation, so concurrent workers charge one after the other,
and the ledger's unique idempotency key makes a repeated charge a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from lifecycle.accounting import periods
from lifecycle.accounting.account import UNLIMITED, Account, Bucket
from lifecycle.accounting.models import LedgerEntry, UsageTotal
from lifecycle.accounting.rules import BillableEvent, Charge
from lifecycle.sqlutil import insert_ignoring_conflicts

# Account and Bucket live in `account`; callers have always imported them from here.
__all__ = ["UNLIMITED", "Account", "Bucket", "add_to_total", "charge", "total_key"]


def _upsert_add(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add to running totals, creating them at zero first: one statement, either dialect."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for row in sorted(rows, key=lambda r: (r["provider"], r["scope"], r["period"], r["key"])):
        stmt = insert(UsageTotal).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["provider", "scope", "period", "key"],
            set_={
                "units": UsageTotal.units + stmt.excluded.units,
                "entries": UsageTotal.entries + stmt.excluded.entries,
                "amount": UsageTotal.amount + stmt.excluded.amount,
                "unpriced_units": UsageTotal.unpriced_units + stmt.excluded.unpriced_units,
            },
        )
        session.execute(stmt)


def _zero_total(provider: str, scope: str, period: str, key: str) -> dict[str, Any]:
    return {"provider": provider, "scope": scope, "period": period, "key": key,
            "units": 0, "entries": 0, "amount": Decimal(0), "unpriced_units": 0}  # fmt: skip


def add_to_total(session: Session, provider: str, scope: str, period: str, key: str, units: int) -> None:
    """Add to one running total outside the ledger (e.g. deliveries, for cost per delivered)."""
    _upsert_add(session, [{**_zero_total(provider, scope, period, key), "units": units, "entries": units}])


def _lock_bucket_totals(
    session: Session, provider: str, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Create (if needed) and lock the bucket totals in key order; returns units used so far."""
    rows = [_zero_total(provider, "bucket", period, key) for period, key in sorted(keys)]
    insert_ignoring_conflicts(session, UsageTotal, rows, ["provider", "scope", "period", "key"])
    stmt = (
        select(UsageTotal.period, UsageTotal.key, UsageTotal.units)
        .where(
            UsageTotal.provider == provider,
            UsageTotal.scope == "bucket",
            tuple_(UsageTotal.period, UsageTotal.key).in_(sorted(keys)),
        )
        .order_by(UsageTotal.period, UsageTotal.key)
        .with_for_update()
    )
    return {(period, key): units for period, key, units in session.execute(stmt)}


def _already_charged(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        stmt = select(LedgerEntry.idempotency_key).where(LedgerEntry.idempotency_key.in_(chunk))
        found.update(session.scalars(stmt))
    return found


def total_key(bucket: str, unit: str) -> str:
    return f"{bucket}:{unit}"


def _unit(account: Account, item: Charge) -> str:
    return item.unit or account.rules.unit


def charge(session: Session, account: Account, events: Sequence[BillableEvent]) -> list[dict[str, Any]]:
    """Charge events (in occurrence order) in the caller's transaction; returns the new entries."""
    ordered = sorted(events, key=lambda e: e.occurred_at)
    pending = [(e, c) for e in ordered if e.kind != "email" for c in account.rule_set.charges(e)]
    emails = [e for e in ordered if e.kind == "email"]
    if not pending and not emails:
        return []
    bucket_keys = {
        (b.scope_period, total_key(b.name, _unit(account, c)))
        for e, c in pending
        for b in account.buckets(e.occurred_at, _unit(account, c))
    } | {
        (b.scope_period, total_key(b.name, account.rules.unit))
        for e in emails
        for b in account.buckets(e.occurred_at)
    }
    used = _lock_bucket_totals(session, account.provider, bucket_keys)
    done = _already_charged(session, [c.key for _, c in pending] + [e.key for e in emails])
    # An email batch already charged must not count towards the month's emails a second time.
    pending += _email_charges(session, account, [e for e in emails if e.key not in done])
    entries: list[dict[str, Any]] = []
    for event, item in sorted(pending, key=lambda pair: pair[0].occurred_at):
        if item.key in done:
            continue
        done.add(item.key)
        entries.extend(_allocate(account, event, item, used))
    insert_ignoring_conflicts(session, LedgerEntry, entries, ["idempotency_key"])
    _upsert_add(session, _totals(account, entries))
    _add_to_shipments(session, account, entries)
    return entries


def _add_to_shipments(session: Session, account: Account, entries: list[dict[str, Any]]) -> None:
    """Keep each shipment's running cost (shown by the API and the admin) in this same transaction."""
    from lifecycle.shipments.models import Shipment

    costs: dict[int, tuple[int, Decimal]] = {}
    for entry in entries:
        if entry["shipment_id"] is None or not entry["units"]:
            continue
        units, amount = costs.get(entry["shipment_id"], (0, Decimal(0)))
        costs[entry["shipment_id"]] = (units + entry["units"], amount + (entry["amount"] or Decimal(0)))
    for shipment_id, (units, amount) in sorted(costs.items()):
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id)
            .values(
                cost_units=Shipment.cost_units + units,
                cost_amount=Shipment.cost_amount + amount,
                cost_currency=account.rules.currency,
            )
            .execution_options(synchronize_session=False)
        )


def _email_charges(
    session: Session, account: Account, emails: list[BillableEvent]
) -> list[tuple[BillableEvent, Charge]]:
    """Emails: 300 free per month, then 2 emails = 1 unit, from the month's running email count."""
    sent: dict[str, int] = {}
    charges = []
    for event in emails:
        month = account.month(event.occurred_at)
        if month not in sent:
            stmt = select(UsageTotal.units).where(
                UsageTotal.provider == account.provider, UsageTotal.scope == "emails",
                UsageTotal.period == month, UsageTotal.key == "emails",
            ).with_for_update()  # fmt: skip
            sent[month] = session.scalar(stmt) or 0
        units = account.rules.email_units(sent[month], event.quantity)
        note = f"{event.quantity} email(s), {sent[month]} sent before this month"
        sent[month] += event.quantity
        counted = _zero_total(account.provider, "emails", month, "emails")
        _upsert_add(session, [{**counted, "units": event.quantity, "entries": 1}])
        charges.append((event, Charge(f"{account.provider}.email", units, event.key, "email", note)))
    return charges


def _allocate(
    account: Account, event: BillableEvent, item: Charge, used: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """Split a charge over the buckets in order; a zero-unit charge is recorded as `free`."""
    unit = _unit(account, item)
    base = _entry(account, event, item, unit)
    if item.units == 0:
        return [{**base, "bucket": "free", "units": 0, "amount": Decimal(0)}]
    entries: list[dict[str, Any]] = []
    left = item.units
    for bucket in account.buckets(event.occurred_at, unit):
        slot = (bucket.scope_period, total_key(bucket.name, unit))
        take = min(left, bucket.limit - used.get(slot, 0))
        if take <= 0:
            continue
        used[slot] = used.get(slot, 0) + take
        amount = None if bucket.unit_price is None else bucket.unit_price * take
        # A charge split over two buckets becomes two entries; the second key names its bucket.
        key = base["idempotency_key"] + (f":{bucket.name}" if entries else "")
        entries.append(
            {**base, "idempotency_key": key, "bucket": bucket.name, "units": take, "amount": amount}
        )
        left -= take
        if not left:
            break
    return entries


def _entry(account: Account, event: BillableEvent, item: Charge, unit: str) -> dict[str, Any]:
    return {
        "provider": account.provider,
        "rule_set": account.rule_set.name,
        "rule": item.rule,
        "event_kind": item.event_kind,
        "unit": unit,
        "currency": account.rules.currency,
        "shipment_id": event.shipment_id,
        "idempotency_key": item.key,
        "event_key": event.key,
        "event_attrs": dict(event.attrs),
        "quantity": event.quantity,
        "occurred_at": event.occurred_at,
        "month": account.month(event.occurred_at),
        "plan_period": account.plan_period(event.occurred_at, unit),
        "note": item.note or None,
    }


def _totals(account: Account, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The running totals these entries add to, one row per total."""
    totals: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(scope: str, period: str, key: str, entry: dict[str, Any]) -> None:
        row = totals.setdefault((scope, period, key), _zero_total(account.provider, scope, period, key))
        row["units"] += entry["units"]
        row["entries"] += 1
        if entry["amount"] is None:
            row["unpriced_units"] += entry["units"]
        else:
            row["amount"] += entry["amount"]

    for entry in entries:
        add("bucket", _bucket_period(account, entry), total_key(entry["bucket"], entry["unit"]), entry)
        add("month", entry["month"], entry["unit"], entry)
        add("day", periods.local_date(entry["occurred_at"], account.tz).isoformat(), entry["unit"], entry)
        add("rule", entry["month"], entry["rule"], entry)
    return list(totals.values())


def _bucket_period(account: Account, entry: dict[str, Any]) -> str:
    """The period whose total limits the entry's bucket: the month, the plan period, or a grant's date."""
    if entry["bucket"] == "monthly_free":
        return entry["month"]
    if entry["bucket"] == "one_time_free":
        buckets = account.buckets(entry["occurred_at"], entry["unit"])
        return next(b.scope_period for b in buckets if b.name == "one_time_free")
    return entry["plan_period"]
