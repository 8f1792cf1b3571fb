"""Lifecycle commands on registered numbers: checked locally, then queued in the outbox.

The local checks mirror 17TRACK's own rules (reference/17track.md §2.3–2.5), so a request the
provider would refuse is refused here, with the reason, before it costs a call.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack.kinds import registration_key, stoptrack_row
from lifecycle.providers.seventeentrack.webhook import PROVIDER
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.requests import Outcome
from lifecycle.sqlutil import insert_ignoring_conflicts

MAX_CARRIER_CHANGES = 5
DELETE_WARNING = "deleting is final at 17TRACK: registering this number again is charged again"


class CommandRefused(Exception):
    """The command would be refused by the provider (or makes no sense): nothing was queued."""


def find(session: Session, number: str, carrier: int | None = None) -> Shipment:
    """The live shipment for a number (and carrier, needed when it is registered under several)."""
    # Normalised like registration, but not format-checked: adopted numbers come as 17TRACK has them.
    number = number.strip().upper()
    stmt = select(Shipment).where(Shipment.provider == PROVIDER, Shipment.number == number)
    if carrier:
        stmt = stmt.where(Shipment.carrier == carrier)
    rows = [s for s in session.scalars(stmt) if s.tracking != "deleted"]
    if not rows:
        raise CommandRefused(f"{number} is not registered here")
    if len(rows) > 1:
        carriers = ", ".join(str(s.carrier) for s in rows)
        raise CommandRefused(f"{number} is registered under carriers {carriers}: say which with --carrier")
    return rows[0]


def queue(session: Session, kind: str, shipment: Shipment, key: str, payload: dict[str, Any]) -> bool:
    now = utcnow()
    row = {
        "provider": PROVIDER,
        "kind": kind,
        "shipment_id": shipment.id,
        "number": shipment.number,
        "carrier": shipment.carrier,
        "payload": payload,
        "idempotency_key": f"17track:{kind}:{key}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return insert_ignoring_conflicts(session, Operation, [row], ["idempotency_key"]) == 1


def stop(session: Session, number: str, carrier: int | None = None) -> Outcome:
    shipment = find(session, number, carrier)
    if shipment.tracking != "tracking":
        raise CommandRefused(
            f"{shipment.number} is {shipment.tracking}; only a tracked number can be stopped"
        )
    insert_ignoring_conflicts(session, Operation, [stoptrack_row(shipment)], ["idempotency_key"])
    shipment.tracking = "stopping"
    return Outcome(shipment.number, True, "queued: stoptrack", shipment.carrier)


def retrack(session: Session, number: str, carrier: int | None = None) -> Outcome:
    shipment = find(session, number, carrier)
    if shipment.retracked:
        raise CommandRefused(f"{shipment.number} was already retracked once; 17TRACK allows one retrack")
    if shipment.tracking != "stopped":
        raise CommandRefused(
            f"{shipment.number} is {shipment.tracking}; only a stopped number can be retracked"
        )
    if not queue(session, "retrack", shipment, registration_key(shipment), {}):
        raise CommandRefused(f"a retrack of {shipment.number} is already queued")
    return Outcome(shipment.number, True, "queued: retrack (free, once per number)", shipment.carrier)


def change_carrier(session: Session, number: str, new_carrier: int, carrier: int | None = None) -> Outcome:
    shipment = find(session, number, carrier)
    if shipment.tracking == "stopped":
        raise CommandRefused(
            f"{shipment.number} is stopped; 17TRACK does not change a stopped number's carrier"
        )
    if shipment.first_result_at is None:
        raise CommandRefused(
            f"{shipment.number} has no tracking result yet; change the carrier after the first"
        )
    if shipment.carrier_changes >= MAX_CARRIER_CHANGES:
        raise CommandRefused(
            f"{shipment.number} already had {MAX_CARRIER_CHANGES} carrier changes, the limit"
        )
    if new_carrier == shipment.carrier:
        raise CommandRefused(f"{shipment.number} is already on carrier {new_carrier}")
    key = f"{registration_key(shipment)}:{shipment.carrier_changes + 1}"
    if not queue(session, "changecarrier", shipment, key, {"carrier_new": new_carrier}):
        raise CommandRefused(f"a carrier change of {shipment.number} is already queued")
    left = MAX_CARRIER_CHANGES - shipment.carrier_changes - 1
    return Outcome(
        shipment.number, True, f"queued: carrier → {new_carrier} ({left} free change(s) left after)"
    )


def delete(session: Session, number: str, carrier: int | None = None) -> Outcome:
    shipment = find(session, number, carrier)
    if shipment.tracking in ("pending", "rejected"):
        raise CommandRefused(f"{shipment.number} is {shipment.tracking} at 17TRACK; nothing to delete")
    if not queue(session, "deletetrack", shipment, registration_key(shipment), {}):
        raise CommandRefused(f"a delete of {shipment.number} is already queued")
    return Outcome(shipment.number, True, f"queued: deletetrack ({DELETE_WARNING})", shipment.carrier)


def change_info(
    session: Session,
    number: str,
    *,
    tag: str | None = None,
    lang: str | None = None,
    carrier: int | None = None,
) -> Outcome:
    shipment = find(session, number, carrier)
    changes = {k: v for k, v in (("tag", tag), ("lang", lang)) if v is not None}
    if not changes:
        raise CommandRefused("nothing to change: give a tag and/or a lang")
    # Each request is its own business event; the uuid keeps two identical requests apart.
    queue(session, "changeinfo", shipment, f"{registration_key(shipment)}:{uuid.uuid4().hex}", changes)
    note = " (setting lang on a number without one costs 1 quota)" if lang and not shipment.lang else ""
    return Outcome(shipment.number, True, f"queued: changeinfo {changes}{note}", shipment.carrier)


def sync(session: Session, number: str, carrier: int | None = None, reason: str = "manual") -> Outcome:
    """Pull current data with gettrackinfo (free) to backfill missed pushes."""
    shipment = find(session, number, carrier)
    if shipment.tracking in ("pending", "rejected"):
        raise CommandRefused(f"{shipment.number} is {shipment.tracking}; there is nothing to fetch yet")
    key = f"{registration_key(shipment)}:{reason}:{uuid.uuid4().hex}"
    queue(session, "gettrackinfo", shipment, key, {})
    return Outcome(shipment.number, True, "queued: gettrackinfo", shipment.carrier)
