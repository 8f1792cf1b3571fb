"""Apply CargoAi callbacks (and pulled tracking) to AWB shipments.

A callback carries the whole history (`oldEvents`, `newEvents`, `events`), and airlines re-publish
and rebook, so each event is applied once, keyed on AWB + code + time + location. The status
follows the newest dated event; an older one is kept in the history but moves nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.outbound import record as outbound
from lifecycle.providers import cargoai
from lifecycle.shipments.apply import BatchEffects, lock_shipments
from lifecycle.shipments.models import Shipment, Transition
from lifecycle.sqlutil import insert_ignoring_conflicts
from lifecycle.status import TERMINAL_STATUSES

ACTIVE = ("pending", "tracking")


def apply_callbacks(session: Session, callbacks: list[tuple[int, cargoai.Callback]]) -> BatchEffects:
    effects = BatchEffects()
    shipments = _load_or_adopt(session, {cb.awb for _, cb in callbacks})
    effects.seen_keys = _existing_keys(session, [s.id for s in shipments.values()])
    for inbox_id, callback in callbacks:
        shipment = shipments[callback.awb]
        shipment.last_seen_at = utcnow()
        fresh = [e for e in callback.events if (shipment.id, e.dedupe_key) not in effects.seen_keys]
        for event in fresh:
            effects.seen_keys.add((shipment.id, event.dedupe_key))
            _apply_event(effects, shipment, event, inbox_id)
        effects.outcomes[inbox_id] = "applied" if fresh else "duplicate"
    if effects.transitions:
        session.execute(Transition.__table__.insert(), effects.transitions)
        outbound.record_transitions(session, effects.transitions)
    insert_ignoring_conflicts(session, Operation, effects.operations, ["idempotency_key"])
    return effects


def _load_or_adopt(session: Session, awbs: set[str]) -> dict[str, Shipment]:
    known = {number: s for (number, _), s in lock_shipments(session, awbs, cargoai.PROVIDER).items()}
    missing = sorted(awbs - set(known))
    if missing:
        now = utcnow()
        rows = [
            {
                "provider": cargoai.PROVIDER,
                "number": awb,
                "carrier": int(awb[:3]),
                "status": "pending",
                "tracking": "tracking",
                "origin": "adopted",
                "tracking_mode": "push",
                "registration_generation": 1,
                "created_at": now,
                "updated_at": now,
            }  # fmt: skip
            for awb in missing
        ]
        insert_ignoring_conflicts(session, Shipment, rows, ["provider", "number", "carrier"])
        known = {number: s for (number, _), s in lock_shipments(session, awbs, cargoai.PROVIDER).items()}
    return known


def _existing_keys(session: Session, shipment_ids: list[int]) -> set[tuple[int, str]]:
    if not shipment_ids:
        return set()
    stmt = select(Transition.shipment_id, Transition.dedupe_key).where(
        Transition.shipment_id.in_(shipment_ids)
    )
    return {(sid, key) for sid, key in session.execute(stmt)}


def _is_newer(shipment: Shipment, when: datetime | None) -> bool:
    last = shipment.last_event_at
    if when is None:
        return last is None and shipment.status == "pending"
    if last is None or when > last:
        return True
    return when == last and shipment.status not in TERMINAL_STATUSES


def _apply_event(effects: BatchEffects, shipment: Shipment, event: cargoai.AwbEvent, inbox_id: int) -> None:
    newer = _is_newer(shipment, event.time)
    to_status = event.status or shipment.status
    kind = ("transition" if to_status != shipment.status else "update") if newer else "stale"
    effects.transitions.append(_row(shipment, event, inbox_id, kind, to_status))
    if not newer:
        return
    shipment.status = to_status
    shipment.sub_status = event.code  # unknown codes are kept verbatim here
    shipment.last_event_at = event.time or shipment.last_event_at
    shipment.last_event_description = " ".join(filter(None, (event.code, event.location, event.flight)))
    shipment.first_result_at = shipment.first_result_at or utcnow()
    if to_status == "delivered" and shipment.tracking in ACTIVE:
        _stop_after_delivery(effects, shipment)


def _stop_after_delivery(effects: BatchEffects, shipment: Shipment) -> None:
    """DLV: unsubscribe (pushed AWBs); a polled AWB simply stops being polled."""
    if shipment.tracking_mode == "pull":
        shipment.tracking, shipment.stopped_at = "stopped", utcnow()
        return
    shipment.tracking = "stopping"
    now = utcnow()
    effects.operations.append({
        "provider": cargoai.PROVIDER, "kind": "unsubscribe", "shipment_id": shipment.id,
        "number": shipment.number, "carrier": shipment.carrier, "payload": {},
        "idempotency_key": f"cargoai:unsubscribe:{shipment.number}:{shipment.subscriptions}",
        "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
    })  # fmt: skip


def _row(
    shipment: Shipment, event: cargoai.AwbEvent, inbox_id: int, kind: str, to_status: str
) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "inbox_id": inbox_id,
        "kind": kind,
        "from_status": shipment.status,
        "to_status": to_status,
        "sub_status": event.code,
        "event_time": event.time,
        "description": " ".join(filter(None, (event.code, event.location, event.flight))),
        "dedupe_key": event.dedupe_key,
        "recorded_at": utcnow(),
    }
