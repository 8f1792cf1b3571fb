"""CargoAi AWBs: queueing subscriptions (never a second active one), expiry and renewal.

Every subscription is billed, a repeat of the same AWB too (awb.md §1.5), so the local check
comes first: an AWB with an active subscription here is never subscribed again by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.cargoai import awb
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.requests import Outcome, Registration
from lifecycle.shipments.rows import AnyShipment
from lifecycle.sqlutil import insert_ignoring_conflicts

PROVIDER = "cargoai"
SUBSCRIPTION_LIFETIME = timedelta(weeks=3)
# How long before its end a subscription is renewed (or, past its end, expired).
RENEW_WITHIN = timedelta(days=1)
LIVE = ("pending", "tracking", "stopping")
NO_KEY = (
    "CargoAi is not configured: set CARGOAI_API_KEY (and restart) to track AWBs, "
    "or pass --provider 17track to send this number to 17TRACK"
)


def subscribe(session: Session, requests: Sequence[Registration], default_mode: str) -> list[Outcome]:
    outcomes = []
    for request in requests:
        try:
            number = awb.normalise(request.number)
        except ValueError as exc:
            outcomes.append(Outcome(request.number, False, str(exc)))
            continue
        outcomes.append(_queue_one(session, number, request, request.mode or default_mode))
    return outcomes


def _queue_one(session: Session, number: str, request: Registration, mode: str) -> Outcome:
    shipment = session.scalars(
        select(Shipment).where(Shipment.provider == PROVIDER, Shipment.number == number)
    ).first()
    if shipment is not None and shipment.tracking in LIVE:
        until = shipment.subscription_expires_at
        note = f", subscription until {until:%Y-%m-%d}" if until else ""
        return Outcome(
            number, False, f"already tracked here ({shipment.tracking_mode}{note}); not billed again"
        )
    if shipment is None:
        shipment = Shipment(provider=PROVIDER, number=number, carrier=int(number[:3]), subscriptions=0)
        session.add(shipment)
    shipment.tracking, shipment.origin, shipment.tracking_mode = "pending", "registered", mode
    shipment.tag, shipment.error_code, shipment.last_error = request.tag, None, None
    shipment.stopped_at = None
    session.flush()
    if mode == "pull":
        shipment.tracking, shipment.registered_at = "tracking", utcnow()
        return Outcome(
            number, True, "tracked by polling (pull mode, within the monthly call budget)", shipment.carrier
        )
    payload = {"emails": list(request.emails), "airline_code": request.airline_code}
    queue_subscription(session, shipment, payload)
    return Outcome(number, True, "queued: CargoAi subscription (billed per subscription)", shipment.carrier)


def queue_subscription(session: Session, shipment: Shipment, payload: dict[str, object]) -> bool:
    """One subscribe operation per subscription number, so deciding twice sends once."""
    now = utcnow()
    row = {
        "provider": PROVIDER, "kind": "subscribe", "shipment_id": shipment.id, "number": shipment.number,
        "carrier": shipment.carrier, "payload": payload,
        "idempotency_key": f"cargoai:subscribe:{shipment.number}:{(shipment.subscriptions or 0) + 1}",
        "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
    }  # fmt: skip
    return insert_ignoring_conflicts(session, Operation, [row], ["idempotency_key"]) == 1


def due_for_renewal(now: datetime, within: timedelta = RENEW_WITHIN) -> Select[tuple[Shipment]]:
    """Tracked push subscriptions that end within `within`: each is renewed or expired (per policy).

    A statement, not a list: the renewal job reads it in bounded, locked batches (cleanup/runs.py).
    """
    return select(Shipment).where(
        Shipment.provider == PROVIDER,
        Shipment.tracking_mode == "push",
        Shipment.tracking == "tracking",
        Shipment.subscription_expires_at < now + within,
    )


def renewal_action(shipment: Shipment, renew: bool, now: datetime) -> str | None:
    """What is due for one AWB: `renew` its subscription while undelivered (if the policy says so),
    `expire` it once ended, None while an unrenewed subscription still runs."""
    if renew and shipment.status != "delivered":
        return "renew"
    ends = shipment.subscription_expires_at
    return "expire" if ends is not None and ends <= now else None


def renew(session: Session, shipment: Shipment) -> bool:
    """Queue the renewal (a new, billed subscription); True if queued now, not by an earlier run."""
    return queue_subscription(session, shipment, {"emails": [], "airline_code": None, "renewal": True})


def expire(shipment: Shipment, now: datetime) -> None:
    shipment.tracking, shipment.stopped_at = "stopped", now
    shipment.last_error = "CargoAi subscription expired after 3 weeks (renewal is off)"


def unsubscribe_row(shipment: AnyShipment) -> dict[str, object]:
    """The outbox row that ends an AWB's subscription, one per subscription: the DLV callback and
    the safety net decide the same business event, so they queue it once."""
    now = utcnow()
    return {
        "provider": PROVIDER, "kind": "unsubscribe", "shipment_id": shipment.id,
        "number": shipment.number, "carrier": shipment.carrier, "payload": {},
        "idempotency_key": f"cargoai:unsubscribe:{shipment.number}:{shipment.subscriptions}",
        "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
    }  # fmt: skip
