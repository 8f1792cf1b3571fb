"""Safety-net stop: ended shipments still tracked get the stop that a lost push or an old bug missed.

The normal path queues the stop when the `delivered` push is applied. A shipment that is delivered,
returned or expired and still `tracking` hours later keeps costing (per-cycle rules, CargoAi
subscriptions) and keeps the provider pushing; this job queues the stop its provider's adapter
names (17TRACK's stoptrack, CargoAi's unsubscribe; a polled AWB simply stops being polled).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lifecycle.cleanup.runs import JobContext, batches, describe
from lifecycle.shipments import stopping
from lifecycle.shipments.models import Shipment
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
    # The same business event (and key) as the stop the delivered event would have queued.
    if stopping.stop(session, shipment, context.now):
        context.add("operations_queued")
