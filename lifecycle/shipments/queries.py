"""Read models: shipments as the JSON shape of DESIGN.md."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.providers import numbers
from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment, Transition
from lifecycle.shipments.rows import AnyShipment


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def shipment_json(shipment: AnyShipment) -> dict[str, Any]:
    return {
        "provider": shipment.provider,
        "number": shipment.number,
        "carrier": None if shipment.carrier == UNKNOWN_CARRIER else shipment.carrier,
        "carrier_name": shipment.carrier_name,
        "status": shipment.status,
        "sub_status": shipment.sub_status,
        "tracking": shipment.tracking,
        "origin": shipment.origin,
        "tag": shipment.tag,
        "last_event_at": _iso(shipment.last_event_at),
        "last_event": shipment.last_event_description,
        "error_code": shipment.error_code,
        "last_error": shipment.last_error,
        "lang": shipment.lang,
        "retracked": shipment.retracked,
        "carrier_changes": shipment.carrier_changes,
        "first_result_at": _iso(shipment.first_result_at),
        "last_seen_at": _iso(shipment.last_seen_at),
        "registered_at": _iso(shipment.registered_at),
        "stopped_at": _iso(shipment.stopped_at),
        "deleted_at": _iso(shipment.deleted_at),
        # Running total kept by the ledger; money is an exact decimal string in the provider's currency.
        "cost": {
            "units": shipment.cost_units or 0,
            "money": format(Decimal(shipment.cost_amount or 0).normalize(), "f"),
            "currency": shipment.cost_currency,
        },
    }


def transition_json(transition: Transition) -> dict[str, Any]:
    return {
        "kind": transition.kind,
        "from": transition.from_status,
        "to": transition.to_status,
        "sub_status": transition.sub_status,
        "event_time": _iso(transition.event_time),
        "inbox_id": transition.inbox_id,
        "recorded_at": _iso(transition.recorded_at),
    }


def list_shipments(
    session: Session,
    *,
    provider: str | None = None,
    status: str | None = None,
    tracking: str | None = None,
    number: str | None = None,
    prefix: str | None = None,
    stale_days: float | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Shipment]:
    """Shipments in id order, filtered; `after_id` is the cursor of the previous page."""
    stmt = select(Shipment).where(Shipment.id > after_id).order_by(Shipment.id).limit(limit)
    if provider:
        stmt = stmt.where(Shipment.provider == provider)
    if status:
        stmt = stmt.where(Shipment.status == status)
    if tracking:
        stmt = stmt.where(Shipment.tracking == tracking)
    if number:
        stmt = stmt.where(Shipment.number == numbers.normalise(provider, number))
    if prefix:
        # Stored numbers are in normal form (providers.numbers), so the prefix is put in it too.
        stmt = stmt.where(Shipment.number.startswith(numbers.normalise_prefix(prefix), autoescape=True))
    if stale_days is not None:
        cutoff = utcnow() - timedelta(days=stale_days)
        stmt = stmt.where(or_(Shipment.last_seen_at < cutoff, Shipment.last_seen_at.is_(None)))
    return list(session.scalars(stmt))


def history(session: Session, shipment_id: int) -> list[Transition]:
    stmt = select(Transition).where(Transition.shipment_id == shipment_id).order_by(Transition.id)
    return list(session.scalars(stmt))


def operations(session: Session, shipment_id: int) -> list[dict[str, Any]]:
    from lifecycle.operations.models import Operation

    stmt = select(Operation).where(Operation.shipment_id == shipment_id).order_by(Operation.id)
    return [
        {
            "kind": op.kind,
            "status": op.status,
            "attempts": op.attempts,
            "result_code": op.result_code,
            "result_message": op.result_message,
            "created_at": _iso(op.created_at),
            "completed_at": _iso(op.completed_at),
        }
        for op in session.scalars(stmt)
    ]


def ledger_entries(session: Session, shipment_id: int) -> list[dict[str, Any]]:
    """What the accountant charged for this shipment, entry by entry (the detail's `ledger`)."""
    from lifecycle.accounting.models import LedgerEntry

    stmt = select(LedgerEntry).where(LedgerEntry.shipment_id == shipment_id).order_by(LedgerEntry.id)
    return [
        {
            "occurred_at": _iso(entry.occurred_at),
            "event": entry.event_kind,
            "rule": entry.rule,
            "rule_set": entry.rule_set,
            "bucket": entry.bucket,
            "units": entry.units,
            "unit": entry.unit,
            "money": None if entry.amount is None else format(entry.amount.normalize(), "f"),
            "currency": entry.currency,
        }
        for entry in session.scalars(stmt)
    ]
