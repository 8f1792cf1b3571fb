"""Mirror 17TRACK's own housekeeping, so our tracking state never says what the provider does not.

reference/17track.md ("Auto-stop rules"): tracking stops 15 days after delivery without a data change
and after 30 days without an event change; a stopped number is deleted 90 days later if nothing
changed. 17TRACK does this silently (at most a TRACKING_STOPPED push, which may be lost), so each
rule is applied here when its time has passed, and an alert is raised MIRROR_17TRACK_WARN_DAYS
before a number is deleted: a free retrack (once per number) keeps it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select

from lifecycle.cleanup.runs import JobContext, batches, describe, raise_alert, resolve_alert
from lifecycle.operations.service import cancel_pending
from lifecycle.providers.seventeentrack.kinds import STOPTRACK
from lifecycle.shipments.models import Shipment

JOB = "mirror-17track"
STOP_AFTER_DELIVERY = timedelta(days=15)
STOP_AFTER_SILENCE = timedelta(days=30)
DELETE_AFTER_STOP = timedelta(days=90)


def mirror_housekeeping(context: JobContext) -> None:
    """Apply 17TRACK's auto-stops and deletions whose time has passed; warn before a deletion."""
    _auto_stop(context, "delivered", Shipment.status == "delivered", STOP_AFTER_DELIVERY)
    _auto_stop(context, "silent", Shipment.status != "delivered", STOP_AFTER_SILENCE)
    _warn_before_deletion(context)
    _delete_expired(context)


def _quiet_since(cutoff: datetime) -> ColumnElement[bool]:
    """No event newer than `cutoff`, and registered before it (17TRACK counts from its own start)."""
    return or_(Shipment.last_event_at.is_(None), Shipment.last_event_at < cutoff) & (
        Shipment.registered_at < cutoff
    )


def _auto_stop(context: JobContext, rule: str, condition: ColumnElement[bool], after: timedelta) -> None:
    tracked = Shipment.tracking.in_(["tracking", "stopping"])
    stmt = select(Shipment).where(
        Shipment.provider == "17track", tracked, condition, _quiet_since(context.now - after)
    )
    for session, shipments in batches(context, stmt, Shipment.id):
        context.tally(f"stopped_{rule}", len(shipments))
        for shipment in shipments:
            context.example("stopped_numbers", {**describe(shipment), "rule": rule})
        if context.dry_run:
            continue
        for shipment in shipments:
            last_change = max(filter(None, (shipment.last_event_at, shipment.registered_at)))
            shipment.tracking = "stopped"
            shipment.stopped_at = min(last_change + after, context.now)
            shipment.last_error = f"stopped by 17TRACK: {after.days} days without a change ({rule})"
        # 17TRACK has stopped them already: a stoptrack still waiting would only spend a call.
        cancel_pending(session, [s.id for s in shipments], [STOPTRACK])


def _stopped_before(cutoff: datetime) -> ColumnElement[bool]:
    not_seen_since = or_(Shipment.last_seen_at.is_(None), Shipment.last_seen_at < cutoff)
    return (Shipment.stopped_at < cutoff) & not_seen_since


def _warn_before_deletion(context: JobContext) -> None:
    warn = timedelta(days=context.settings.mirror_17track_warn_days)
    stmt = select(Shipment).where(
        Shipment.provider == "17track",
        Shipment.tracking == "stopped",
        _stopped_before(context.now - DELETE_AFTER_STOP + warn),
    )
    for session, shipments in batches(context, stmt, Shipment.id):
        for shipment in shipments:
            if context.dry_run:
                context.add("would_warn")
                continue
            deleted_on = _deletion_date(shipment)
            message = (
                f"17TRACK will delete {shipment.number} (carrier {shipment.carrier or 'auto'}) on "
                f"{deleted_on:%Y-%m-%d}: stopped, no update for 90 days. Retrack it (free, once) "
                "to keep it; registering it after the deletion is charged again."
            )
            details = {**describe(shipment), "deleted_on": deleted_on.date().isoformat()}
            if raise_alert(session, JOB, _warning_key(shipment), message, details):
                context.add("warned")


def _delete_expired(context: JobContext) -> None:
    stmt = select(Shipment).where(
        Shipment.provider == "17track",
        Shipment.tracking == "stopped",
        _stopped_before(context.now - DELETE_AFTER_STOP),
    )
    for session, shipments in batches(context, stmt, Shipment.id):
        context.tally("deleted", len(shipments))
        for shipment in shipments:
            context.example("deleted_numbers", describe(shipment))
            if context.dry_run:
                continue
            shipment.tracking = "deleted"
            shipment.deleted_at = min(_deletion_date(shipment), context.now)
            shipment.last_error = "deleted by 17TRACK: 90 days stopped without an update"
            resolve_alert(session, _warning_key(shipment))


def _deletion_date(shipment: Shipment) -> datetime:
    last = max(filter(None, (shipment.stopped_at, shipment.last_seen_at)))
    return last + DELETE_AFTER_STOP


def _warning_key(shipment: Shipment) -> str:
    # One warning per registration (a retracked or re-registered number may be warned again).
    generation = f"{shipment.registration_generation}:{int(shipment.retracked)}"
    return f"17track-delete:{shipment.number}:{shipment.carrier}:{generation}"
