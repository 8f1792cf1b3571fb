"""Which 17TRACK operation results are billable events (DESIGN.md, "The cost accountant").

Computed from the shipment as it was *before* the answer is applied: whether a number already had
a language decides between a charged `lang_set` and a free `lang_change`.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.providers.seventeentrack.kinds import QUOTA_ERRORS
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.rows import AnyShipment

PROVIDER = "17track"


def _event(kind: str, key: str, op: Operation, **attrs: object) -> BillableEvent:
    return BillableEvent(PROVIDER, kind, key, utcnow(), shipment_id=op.shipment_id, attrs=attrs)


def for_answer(
    op: Operation, shipment: Shipment | None, item: dict, code: int | None = None
) -> list[BillableEvent]:
    """The billable events of one per-item answer: `code` is None when accepted, else the rejection."""
    generation = shipment.registration_generation if shipment else 1
    if op.kind == "register":
        return _register(op, item, code, generation)
    if code is not None:
        return []
    carrier = shipment.carrier if shipment else op.carrier
    pair = f"{op.number}:{carrier}:{generation}"
    if op.kind == "retrack":
        return [_event("retrack", f"17track:retrack:{pair}", op)]
    if op.kind == "deletetrack":
        return [_event("delete", f"17track:delete:{pair}", op)]
    if op.kind == "changecarrier":
        change = (shipment.carrier_changes if shipment else 0) + 1
        # The carrier it leaves is part of the key: the same number under two carriers is two
        # registrations, each with its own count of changes.
        key = f"17track:changecarrier:{pair}:{change}"
        return [_event("carrier_change", key, op, change_number=change)]
    if op.kind == "changeinfo" and op.payload.get("lang"):
        kind = "lang_change" if shipment and shipment.lang else "lang_set"
        return [_event(kind, f"17track:lang:{pair}:{op.id}", op, lang=op.payload["lang"])]
    return []


def _answer_was_lost(op: Operation) -> bool:
    """An earlier try's request may have been carried out with its answer lost (the sender marks
    it: lifecycle.operations.sender)."""
    return bool(op.payload.get("answer_lost"))


def _register(op: Operation, item: dict, code: int | None, generation: int) -> list[BillableEvent]:
    carrier = item.get("carrier") or op.carrier
    key = f"17track:register:{op.number}:{carrier}:{generation}"
    if code == st.ERR_ALREADY_REGISTERED and _answer_was_lost(op):
        # The earlier try registered the number (and was charged); this answer is its echo. The key
        # is the registration's own, so it is charged once whichever answer comes back.
        return [_event("register", key, op, lang=op.payload.get("lang"), inferred="answer lost")]
    if code in QUOTA_ERRORS or code == st.ERR_ALREADY_REGISTERED:
        # Held for quota, or registered elsewhere before: 17TRACK charges nothing for this answer.
        return []
    if code is not None:
        return [_event("register_rejected", key, op, code=code)]
    return [_event("register", key, op, lang=op.payload.get("lang"))]


def update_cycle(
    shipment: AnyShipment, dedupe_key: str, tracked: bool, received_at: datetime
) -> BillableEvent:
    """One status update cycle (a push that moved the shipment), for the per-cycle rule set.

    Dated by the push's arrival, so replaying the inbox charges it in the same month and bucket.
    """
    generation = shipment.registration_generation
    key = f"17track:cycle:{shipment.number}:{shipment.carrier}:{generation}:{dedupe_key}"
    attrs = {"tracking": tracked}
    return BillableEvent(PROVIDER, "update_cycle", key, received_at, shipment_id=shipment.id, attrs=attrs)
