"""Turning transitions into outbound events, inside the transaction that records the transitions.

Called by the appliers right after they insert a batch of transitions, so an event exists exactly
when its transition does (a rolled-back batch leaves neither). It must keep the inbox drain fast:
one small endpoint query, one multi-row insert of events and one of deliveries per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.outbound.models import PENDING, Delivery, Endpoint, OutboundEvent
from lifecycle.shipments.queries import shipment_json
from lifecycle.shipments.rows import ShipmentRow
from lifecycle.sqlutil import insert_rows

# Transition kinds that are told: a new status (typed by that status), a newer event without a
# status change, and tracking stopped by the provider. Stale events change nothing and are not.
UPDATED = "tracking_updated"
STOPPED = "tracking_stopped"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def event_type(transition: dict[str, Any]) -> str | None:
    kind = transition["kind"]
    if kind == "transition":
        return transition["to_status"]
    if kind == "update":
        return UPDATED
    if kind == "stopped":
        return STOPPED
    return None


def record_transitions(
    session: Session, transitions: Sequence[dict[str, Any]], shipments: Mapping[int, ShipmentRow]
) -> int:
    """Insert one event per told transition, and a delivery per subscribed endpoint; returns deliveries.

    `shipments`: the batch's by id, loaded and locked by the applier (every transition is of one)."""
    now = utcnow()
    events = [_event_row(shipments[row["shipment_id"]], row, now) for row in transitions if event_type(row)]
    if not events:
        return 0
    endpoints = subscribed_endpoints(session)
    if not any(_wants(wanted, e["type"]) for _, wanted in endpoints for e in events):
        # Kept for replays even when no endpoint listens: one fixed statement over arrays.
        insert_rows(session, OutboundEvent.__table__, events)  # type: ignore[arg-type]
        return 0
    stmt = insert(OutboundEvent).returning(OutboundEvent.id, sort_by_parameter_order=True)
    ids = session.scalars(stmt, events).all()
    deliveries = [
        _delivery_row(endpoint_id, event_id, event["shipment_id"], now)
        for event_id, event in zip(ids, events, strict=True)
        for endpoint_id, wanted in endpoints
        if _wants(wanted, event["type"])
    ]
    session.execute(insert(Delivery), deliveries)
    _signal_after_commit(session)
    return len(deliveries)


def subscribed_endpoints(
    session: Session, endpoint_id: int | None = None
) -> list[tuple[int, list[str] | None]]:
    stmt = select(Endpoint.id, Endpoint.events).where(Endpoint.enabled.is_(True)).order_by(Endpoint.id)
    if endpoint_id is not None:
        stmt = stmt.where(Endpoint.id == endpoint_id)
    return [(row.id, row.events) for row in session.execute(stmt)]


def _wants(wanted: Iterable[str] | None, kind: str) -> bool:
    return wanted is None or kind in wanted


def _delivery_row(endpoint_id: int, event_id: int, shipment_id: int | None, now: datetime) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "shipment_id": shipment_id,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _event_row(shipment: ShipmentRow, transition: dict[str, Any], now: datetime) -> dict[str, Any]:
    kind = event_type(transition)
    public_id = f"msg_{uuid.uuid4().hex}"
    data = shipment_json(shipment)
    # A batch may move one shipment twice: each event shows the status of its own transition.
    data |= {"status": transition["to_status"], "sub_status": transition["sub_status"]}
    payload = {
        "type": kind,
        "id": public_id,
        "timestamp": iso(now),
        "data": {
            "shipment": data,
            "transition": {
                "kind": transition["kind"],
                "from": transition["from_status"],
                "to": transition["to_status"],
                "sub_status": transition["sub_status"],
                "event_time": iso(transition["event_time"]),
                "description": transition["description"],
            },
        },
    }
    return {
        "public_id": public_id,
        "type": kind,
        "shipment_id": transition["shipment_id"],
        "payload": payload,
        "created_at": now,
    }


def _signal_after_commit(session: Session) -> None:
    from lifecycle.outbound import wakeup

    wakeup.after_commit(session)
