"""Stopping a shipment's tracking, whatever its provider: the adapter says whether that takes a call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from lifecycle.operations.models import Operation
from lifecycle.providers import registry
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import insert_ignoring_conflicts


def stop(session: Session, shipment: Shipment, now: datetime) -> bool:
    """Queue the provider's stop operation (`stopping` until it is answered), or stop at once when
    stopping needs no call. True when an operation was queued; deciding twice queues it once."""
    row = registry.get(shipment.provider).stop_row(shipment)
    if row is None:
        shipment.tracking, shipment.stopped_at = "stopped", now
        return False
    insert_ignoring_conflicts(session, Operation, [row], ["idempotency_key"])
    shipment.tracking = "stopping"
    return True
