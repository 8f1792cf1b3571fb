"""Stale shipments of every provider: no new event for STALE_NO_EVENT_DAYS, or not found for
STALE_NOT_FOUND_DAYS.

A number the carrier stopped reporting, or one never found (a typo, a label never used), is
listed, whichever provider tracks it: a quiet number costs the same everywhere (17TRACK's quota, a
billed CargoAi subscription, a generic feed nobody reads). With STALE_ACTION=stop it is stopped the
way its adapter stops it (as the safety net does): 17TRACK's stoptrack or CargoAi's unsubscribe is
queued; a polled AWB or a generic shipment simply stops. The run counts them per provider. A
`--dry-run` lists what a real run would stop, and stops nothing. 17TRACK itself stops a number
after 30 days without an event (`mirror-17track`), so the default threshold (20 days) is earlier
than that.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select

from lifecycle.cleanup.runs import JobContext, batches, describe
from lifecycle.shipments import stopping
from lifecycle.shipments.models import Shipment
from lifecycle.status import TERMINAL_STATUSES


def stale_shipments(context: JobContext) -> None:
    """List (and with STALE_ACTION=stop, stop) tracked shipments of every provider gone quiet or
    never found, counted per provider."""
    config = context.settings
    no_event_cutoff = context.now - timedelta(days=config.stale_no_event_days)
    not_found_cutoff = context.now - timedelta(days=config.stale_not_found_days)
    quiet = (
        Shipment.status.not_in(sorted(TERMINAL_STATUSES | {"not_found"}))
        & or_(Shipment.last_event_at.is_(None), Shipment.last_event_at < no_event_cutoff)
        & (Shipment.registered_at < no_event_cutoff)
    )
    never_found = (Shipment.status == "not_found") & (Shipment.registered_at < not_found_cutoff)
    stmt = select(Shipment).where(Shipment.tracking == "tracking", or_(quiet, never_found))
    stop = config.stale_action == "stop" and not context.dry_run
    context.counts["action"] = config.stale_action
    by_provider: dict[str, int] = context.counts.setdefault("by_provider", {})
    for session, shipments in batches(context, stmt, Shipment.id):
        for shipment in shipments:
            reason = "not_found" if shipment.status == "not_found" else "no_event"
            context.add(reason)
            by_provider[shipment.provider] = by_provider.get(shipment.provider, 0) + 1
            context.example("shipments", {**describe(shipment), "reason": reason})
            if stop:
                context.add("stopped")
                # A call to queue (stoptrack, unsubscribe), or stopped here and now (nothing to call).
                context.add("operations_queued", stopping.stop(session, shipment, context.now))
