"""Read models: shipments as the JSON shape of DESIGN.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment, Transition


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def shipment_json(shipment: Shipment) -> dict[str, Any]:
    return {
        "provider": shipment.provider,
        "number": shipment.number,
        "carrier": None if shipment.carrier == UNKNOWN_CARRIER else shipment.carrier,
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
    status: str | None = None,
    tracking: str | None = None,
    number: str | None = None,
    limit: int = 1000,
) -> list[Shipment]:
    stmt = select(Shipment).order_by(Shipment.id).limit(limit)
    if status:
        stmt = stmt.where(Shipment.status == status)
    if tracking:
        stmt = stmt.where(Shipment.tracking == tracking)
    if number:
        stmt = stmt.where(Shipment.number == number)
    return list(session.scalars(stmt))


def history(session: Session, shipment_id: int) -> list[Transition]:
    stmt = select(Transition).where(Transition.shipment_id == shipment_id).order_by(Transition.id)
    return list(session.scalars(stmt))
