"""17TRACK registrations: local checks first, then one `register` operation per number.

Every registration costs quota, so a (number, carrier) already registered here and not deleted is
never sent again, and obvious garbage is refused before any call (reference/17track.md §1, §2.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack.kinds import registration_key
from lifecycle.providers.seventeentrack.numbers import NUMBER_PATTERN, normalise
from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment
from lifecycle.shipments.requests import Outcome, Registration
from lifecycle.sqlutil import insert_ignoring_conflicts

PROVIDER = "17track"
# States in which the number may be registered (again): never sent, refused, or deleted.
REGISTRABLE = ("deleted", "rejected")


def check_number(raw: str) -> str:
    """The normalised number, or ValueError saying what is wrong with it."""
    number = normalise(raw)
    if not number:
        raise ValueError("empty tracking number")
    if not 5 <= len(number) <= 50:
        raise ValueError(f"{len(number)} characters; 17TRACK numbers have 5 to 50")
    if not NUMBER_PATTERN.match(number):
        bad = sorted({c for c in number if not (c.isascii() and (c.isalnum() or c == "-"))})
        raise ValueError(f"characters not allowed: {''.join(bad)!r} (letters, digits and '-' only)")
    return number


def register(session: Session, requests: Sequence[Registration]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(requests)
    valid: dict[int, Registration] = {}
    for index, request in enumerate(requests):
        try:
            number = check_number(request.number)
        except ValueError as exc:
            outcomes[index] = Outcome(request.number, False, str(exc))
            continue
        valid[index] = Registration(
            number, request.carrier or None, request.lang or None, request.tag or None
        )
    existing = _existing(session, {r.number for r in valid.values()})
    queued: list[Shipment] = []
    for index, request in valid.items():
        outcome, shipment = _decide(session, existing, request)
        outcomes[index] = outcome
        if shipment is not None:
            queued.append(shipment)
    session.flush()
    insert_ignoring_conflicts(session, Operation, [_register_row(s) for s in queued], ["idempotency_key"])
    return [o for o in outcomes if o is not None]


def _existing(session: Session, numbers: set[str]) -> dict[str, list[Shipment]]:
    found: dict[str, list[Shipment]] = {}
    if numbers:
        stmt = select(Shipment).where(Shipment.provider == PROVIDER, Shipment.number.in_(numbers))
        for shipment in session.scalars(stmt):
            found.setdefault(shipment.number, []).append(shipment)
    return found


def _decide(
    session: Session, existing: dict[str, list[Shipment]], request: Registration
) -> tuple[Outcome, Shipment | None]:
    rows = existing.setdefault(request.number, [])
    carrier = request.carrier or UNKNOWN_CARRIER
    live = [s for s in rows if s.tracking not in REGISTRABLE]
    clash = [s for s in live if not request.carrier or s.carrier in (carrier, UNKNOWN_CARRIER)]
    if clash:
        known = clash[0]
        where = f"carrier {known.carrier}" if known.carrier else "carrier being detected"
        return Outcome(request.number, False, f"already registered here ({where}, {known.tracking})"), None
    reusable = next((s for s in rows if s.carrier == carrier), None)
    if reusable is not None:
        # Registering a deleted number again is a new registration (and 17TRACK charges it again).
        reusable.registration_generation += 1
        shipment = reusable
    else:
        shipment = Shipment(provider=PROVIDER, number=request.number, carrier=carrier)
        session.add(shipment)
        rows.append(shipment)
    _reset_for_registration(shipment, request)
    note = "" if request.carrier else " (carrier auto-detected by 17TRACK)"
    return Outcome(request.number, True, "queued for registration" + note, request.carrier), shipment


def _reset_for_registration(shipment: Shipment, request: Registration) -> None:
    shipment.tracking = "pending"
    shipment.origin = "registered"
    shipment.tag, shipment.lang = request.tag, request.lang
    shipment.error_code = shipment.last_error = None
    shipment.deleted_at = shipment.stopped_at = None
    shipment.retracked, shipment.carrier_changes = False, 0


def _register_row(shipment: Shipment) -> dict[str, object]:
    now = utcnow()
    return {
        "provider": PROVIDER,
        "kind": "register",
        "shipment_id": shipment.id,
        "number": shipment.number,
        "carrier": shipment.carrier,
        "payload": {"tag": shipment.tag, "lang": shipment.lang},
        "idempotency_key": f"17track:register:{registration_key(shipment)}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
