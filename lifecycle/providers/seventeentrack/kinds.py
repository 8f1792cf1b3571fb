"""The 17TRACK operation kinds: how each becomes a request item and what each answer does.

Each handler applies one per-item answer to the operation's shipment. Rejections return one of
DONE (the goal holds anyway), FAILED (kept with its code and message) or HOLD (quota: pause the
kind and keep the operation queued).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.providers.seventeentrack.webhook import PROVIDER
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.rows import AnyShipment

DONE, FAILED, HOLD = "done", "failed", "hold"
STOPTRACK = "stoptrack"


def registration_key(shipment: AnyShipment) -> str:
    """Number, carrier and registration generation: what 17TRACK charges and tracks as one."""
    return f"{shipment.number}:{shipment.carrier}:{shipment.registration_generation}"


def stoptrack_row(shipment: AnyShipment) -> dict[str, Any]:
    """The outbox row that stops tracking a delivered shipment (one per registration)."""
    # A retracked number may be stopped once more, so the retrack is part of the business event.
    key = f"17track:stoptrack:{registration_key(shipment)}:{int(shipment.retracked)}"
    now = utcnow()
    return {
        "provider": PROVIDER,
        "kind": STOPTRACK,
        "shipment_id": shipment.id,
        "number": shipment.number,
        "carrier": shipment.carrier,
        "idempotency_key": key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


ERR_DAILY_LIMIT = -18019907
ERR_QUOTA_OUT = -18019908
QUOTA_ERRORS = frozenset({ERR_DAILY_LIMIT, ERR_QUOTA_OUT})

Accept = Callable[[Session, Operation, Shipment | None, dict[str, Any]], None]
Reject = Callable[[Session, Operation, Shipment | None, int | None, str], str]


@dataclass(frozen=True)
class Kind:
    name: str
    endpoint: str
    item: Callable[[Operation], dict[str, Any]]
    accept: Accept
    reject: Reject
    feeds_inbox: bool = False


def _number_and_carrier(op: Operation) -> dict[str, Any]:
    # Carrier 0 means "auto-detect / not known yet": let 17TRACK match on the number alone.
    return {"number": op.number, "carrier": op.carrier} if op.carrier else {"number": op.number}


def _register_item(op: Operation) -> dict[str, Any]:
    extra = {k: v for k, v in op.payload.items() if k in ("tag", "lang") and v}
    return {**_number_and_carrier(op), **extra}


def _registered(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    if shipment is None:
        return
    detected = item.get("carrier")
    if isinstance(detected, int) and detected and shipment.carrier != detected:
        shipment.carrier = detected
    shipment.tracking = "tracking"
    shipment.registered_at = utcnow()
    shipment.error_code = None
    shipment.last_error = None


def _register_rejected(
    session: Session, op: Operation, shipment: Shipment | None, code: int | None, message: str
) -> str:
    if code in QUOTA_ERRORS:
        return HOLD
    if code == st.ERR_ALREADY_REGISTERED:
        # Registered earlier (here or elsewhere): the goal holds and 17TRACK charged nothing now.
        _registered(session, op, shipment, {})
        return DONE
    if shipment is not None:
        shipment.tracking = "rejected"
        shipment.error_code = code
        shipment.last_error = message
    return FAILED


def _stopped(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    if shipment is not None and shipment.tracking in ("stopping", "tracking", "pending"):
        shipment.tracking = "stopped"
        shipment.stopped_at = utcnow()


def _stop_rejected(
    session: Session, op: Operation, shipment: Shipment | None, code: int | None, message: str
) -> str:
    # Already stopped, or not registered at 17TRACK: either way nothing is tracked any more.
    if code in (st.ERR_ALREADY_STOPPED, st.ERR_NOT_REGISTERED):
        _stopped(session, op, shipment, {})
        return DONE
    if shipment is not None:
        if shipment.tracking == "stopping":
            shipment.tracking = "tracking"
        shipment.last_error = f"stoptrack rejected: {code} {message}"
    return FAILED


def _retracked(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    if shipment is not None:
        shipment.tracking = "tracking"
        shipment.retracked = True
        shipment.stopped_at = None


def _retrack_rejected(
    session: Session, op: Operation, shipment: Shipment | None, code: int | None, message: str
) -> str:
    if shipment is not None:
        shipment.retracked = shipment.retracked or code == -18019905
        shipment.last_error = f"retrack rejected: {code} {message}"
    return FAILED


def _deleted(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    if shipment is not None:
        shipment.tracking = "deleted"
        shipment.deleted_at = utcnow()


def _delete_rejected(
    session: Session, op: Operation, shipment: Shipment | None, code: int | None, message: str
) -> str:
    if code == st.ERR_NOT_REGISTERED:
        _deleted(session, op, shipment, {})
        return DONE
    if shipment is not None:
        shipment.last_error = f"deletetrack rejected: {code} {message}"
    return FAILED


def _carrier_item(op: Operation) -> dict[str, Any]:
    return {"number": op.number, "carrier_old": op.carrier, "carrier_new": op.payload["carrier_new"]}


def _carrier_changed(
    session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]
) -> None:
    if shipment is not None:
        shipment.carrier = op.payload["carrier_new"]
        shipment.carrier_changes += 1


def _info_item(op: Operation) -> dict[str, Any]:
    return {**_number_and_carrier(op), **op.payload}


def _info_changed(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    if shipment is not None:
        shipment.tag = op.payload.get("tag", shipment.tag)
        shipment.lang = op.payload.get("lang", shipment.lang)


def _track_info(session: Session, op: Operation, shipment: Shipment | None, item: dict[str, Any]) -> None:
    # Pulled data takes the same road as a push: into the inbox, applied by the same state machine.
    body = json.dumps({"event": st.EVENT_UPDATED, "data": item}, separators=(",", ":")).encode()
    session.add(InboxEvent(provider=st.PROVIDER, source="gettrackinfo", body=body))


def _failed_with_note(prefix: str) -> Reject:
    def reject(
        session: Session, op: Operation, shipment: Shipment | None, code: int | None, message: str
    ) -> str:
        if shipment is not None:
            shipment.last_error = f"{prefix} rejected: {code} {message}"
        return FAILED

    return reject


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("register", "register", _register_item, _registered, _register_rejected),
        Kind("stoptrack", "stoptrack", _number_and_carrier, _stopped, _stop_rejected),
        Kind("retrack", "retrack", _number_and_carrier, _retracked, _retrack_rejected),
        Kind("deletetrack", "deletetrack", _number_and_carrier, _deleted, _delete_rejected),
        Kind(
            "changecarrier",
            "changecarrier",
            _carrier_item,
            _carrier_changed,
            _failed_with_note("changecarrier"),
        ),
        Kind("changeinfo", "changeinfo", _info_item, _info_changed, _failed_with_note("changeinfo")),
        Kind(
            "gettrackinfo",
            "gettrackinfo",
            _number_and_carrier,
            _track_info,
            _failed_with_note("gettrackinfo"),
            feeds_inbox=True,
        ),
    )
}
