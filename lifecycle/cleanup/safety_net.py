"""Safety-net stop: ended shipments still tracked get the stop that a lost push or an old bug missed.

The normal path queues the stop when the `delivered` push is applied. A shipment that is delivered,
returned or expired and still `tracking` hours later keeps costing (per-cycle rules, CargoAi
subscriptions) and keeps 17TRACK pushing; this job queues its stoptrack (17TRACK) or unsubscribe
(CargoAi push; a polled AWB simply stops being polled).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lifecycle.cleanup.runs import JobContext, batches, describe
from lifecycle.operations.models import Operation
from lifecycle.operations.service import stoptrack_row
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import insert_ignoring_conflicts
from lifecycle.status import TERMINAL_STATUSES


def stop_ended(context: JobContext) -> None:
    """Queue the stop of every ended shipment still tracked SAFETY_NET_AFTER_HOURS after its event."""
    cutoff = context.now - timedelta(hours=context.settings.safety_net_after_hours)
    stmt = select(Shipment).where(
        Shipment.tracking == "tracking",
        Shipment.status.in_(sorted(TERMINAL_STATUSES)),
        or_(
            Shipment.last_event_at < cutoff,
            and_(Shipment.last_event_at.is_(None), Shipment.updated_at < cutoff),
        ),
    )
    for session, shipments in batches(context, stmt, Shipment.id):
        for shipment in shipments:
            context.example("shipments", describe(shipment))
            context.tally("stopped")
            if not context.dry_run:
                _queue_stop(session, shipment, context)


def _queue_stop(session: Session, shipment: Shipment, context: JobContext) -> None:
    if shipment.provider == "cargoai" and shipment.tracking_mode == "pull":
        shipment.tracking, shipment.stopped_at = "stopped", context.now
        return
    row = stoptrack_row(shipment) if shipment.provider == "17track" else _unsubscribe_row(shipment, context)
    insert_ignoring_conflicts(session, Operation, [row], ["idempotency_key"])
    shipment.tracking = "stopping"
    context.add("operations_queued")


def _unsubscribe_row(shipment: Shipment, context: JobContext) -> dict[str, Any]:
    # The same business event (and key) as the unsubscribe the DLV callback would have queued.
    return {
        "provider": "cargoai", "kind": "unsubscribe", "shipment_id": shipment.id,
        "number": shipment.number, "carrier": shipment.carrier, "payload": {},
        "idempotency_key": f"cargoai:unsubscribe:{shipment.number}:{shipment.subscriptions}",
        "status": "pending", "attempts": 0, "next_attempt_at": context.now, "created_at": context.now,
    }  # fmt: skip
