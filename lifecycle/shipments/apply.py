"""Apply parsed 17TRACK pushes to shipments: the state machine of invariant 3.

Works on a whole inbox batch at once: shipments are loaded (and locked) in one query, adopted
numbers inserted in one statement, transitions and stoptrack operations in one each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting import events17
from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.operations.service import STOPTRACK, cancel_pending_stoptrack, stoptrack_row
from lifecycle.outbound import record as outbound
from lifecycle.providers import seventeentrack as st
from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment, Transition
from lifecycle.sqlutil import insert_ignoring_conflicts
from lifecycle.status import TERMINAL_STATUSES

ACTIVE_TRACKING = ("pending", "tracking")
KNOWN_EVENTS = (st.EVENT_UPDATED, st.EVENT_STOPPED)


@dataclass
class BatchEffects:
    outcomes: dict[int, str] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    seen_keys: set[tuple[int, str]] = field(default_factory=set)
    stopped_shipment_ids: list[int] = field(default_factory=list)
    # Delivered, then moving again before the auto-stop went out: its stoptrack is withdrawn.
    resumed_shipment_ids: list[int] = field(default_factory=list)
    # Filled only when the rule set in force charges status update cycles.
    collect_cycles: bool = False
    received: dict[int, datetime] = field(default_factory=dict)
    billable: list[BillableEvent] = field(default_factory=list)


def dedupe_key(push: st.Push) -> str:
    when = push.event_time.isoformat() if push.event_time else ""
    raw = f"{push.event}|{push.status}|{push.sub_status}|{when}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def apply_pushes(
    session: Session,
    pushes: list[tuple[int, st.Push]],
    collect_cycles: bool = False,
    received: dict[int, datetime] | None = None,
) -> BatchEffects:
    """Apply pushes in inbox order; returns each inbox row's outcome (and billable update cycles)."""
    effects = BatchEffects(collect_cycles=collect_cycles, received=received or {})
    known = [(inbox_id, p) for inbox_id, p in pushes if p.event in KNOWN_EVENTS]
    shipments = _load_or_adopt(session, [push for _, push in known])
    effects.seen_keys = _existing_keys(session, shipments.values(), known)
    for inbox_id, push in pushes:
        if push.event == st.EVENT_UPDATED:
            outcome = _apply_update(effects, _resolve(shipments, push), push, inbox_id)
        elif push.event == st.EVENT_STOPPED:
            outcome = _apply_stopped(effects, _resolve(shipments, push), inbox_id)
        else:
            # Stored and reported, never applied: a new provider event must not invent shipments.
            outcome = "unknown_event"
        effects.outcomes[inbox_id] = outcome
    if effects.transitions:
        session.execute(Transition.__table__.insert(), effects.transitions)
        outbound.record_transitions(session, effects.transitions)
    insert_ignoring_conflicts(session, Operation, effects.operations, ["idempotency_key"])
    cancel_pending_stoptrack(session, effects.stopped_shipment_ids)
    cancel_pending_stoptrack(session, effects.resumed_shipment_ids, reason="moving again after delivery")
    return effects


def _resolve(shipments: dict[tuple[str, int], Shipment], push: st.Push) -> Shipment:
    exact = shipments.get((push.number, push.carrier))
    if exact is not None:
        return exact
    # Registered with auto-detection: the push tells us the carrier 17TRACK detected.
    detecting = shipments.get((push.number, UNKNOWN_CARRIER))
    if detecting is not None:
        detecting.carrier = push.carrier
        shipments[(push.number, push.carrier)] = detecting
        return detecting
    for (number, _carrier), shipment in shipments.items():
        if number == push.number:
            return shipment
    raise LookupError(f"no shipment row for {push.number}/{push.carrier}")


def _load_or_adopt(session: Session, pushes: Iterable[st.Push]) -> dict[tuple[str, int], Shipment]:
    known = lock_shipments(session, {p.number for p in pushes})
    numbers_known = {number for number, _ in known}
    missing: dict[tuple[str, int], st.Push] = {}
    for push in pushes:
        key = (push.number, push.carrier)
        if key in known or key in missing:
            continue
        if push.carrier == UNKNOWN_CARRIER and push.number in numbers_known:
            continue
        if (push.number, UNKNOWN_CARRIER) in known:
            continue
        missing[key] = push
    if not missing:
        return known
    now = utcnow()
    rows = [_adopted_row(push, now) for _, push in sorted(missing.items())]
    insert_ignoring_conflicts(session, Shipment, rows, ["provider", "number", "carrier"])
    return lock_shipments(session, {number for number, _ in missing} | numbers_known)


def _adopted_row(push: st.Push, now: datetime) -> dict[str, Any]:
    return {
        "provider": st.PROVIDER,
        "number": push.number,
        "carrier": push.carrier,
        "status": "pending",
        "tracking": "tracking",
        "origin": "adopted",
        "tag": push.tag,
        "registration_generation": 1,
        "created_at": now,
        "updated_at": now,
    }


def lock_shipments(
    session: Session, numbers: set[str], provider: str = st.PROVIDER
) -> dict[tuple[str, int], Shipment]:
    # Locking in id order keeps two workers' batches from deadlocking on each other.
    stmt = (
        select(Shipment)
        .where(Shipment.provider == provider, Shipment.number.in_(sorted(numbers)))
        .order_by(Shipment.id)
        .with_for_update()
    )
    return {(s.number, s.carrier): s for s in session.scalars(stmt)}


def _existing_keys(
    session: Session, shipments: Iterable[Shipment], pushes: list[tuple[int, st.Push]]
) -> set[tuple[int, str]]:
    ids = [s.id for s in shipments]
    keys = {dedupe_key(p) for _, p in pushes}
    if not ids:
        return set()
    stmt = select(Transition.shipment_id, Transition.dedupe_key).where(
        Transition.shipment_id.in_(ids), Transition.dedupe_key.in_(keys)
    )
    return {tuple(row) for row in session.execute(stmt)}


def _is_newer(last: datetime | None, status: str, push: st.Push) -> bool:
    """Whether the push is newer than the event at `last` (invariant 3; terminal states need a
    strictly newer event)."""
    if push.event_time is None:
        # "Not found yet" pushes carry no event; they may only fill in an empty shipment.
        return last is None
    if last is None or push.event_time > last:
        return True
    return push.event_time == last and status not in TERMINAL_STATUSES


def _apply_update(effects: BatchEffects, shipment: Shipment, push: st.Push, inbox_id: int) -> str:
    key = dedupe_key(push)
    shipment.last_seen_at = utcnow()
    if (shipment.id, key) in effects.seen_keys:
        return "duplicate"
    effects.seen_keys.add((shipment.id, key))
    newer, sets_status = _how_it_applies(shipment, push)
    to_status = push.status if sets_status else shipment.status
    kind = (
        "stale" if not (newer or sets_status) else "transition" if to_status != shipment.status else "update"
    )
    if kind == "stale":
        # Kept in the history with the status it reported, changing nothing.
        effects.transitions.append(
            _transition_row(shipment, push, inbox_id, kind, push.status or to_status, key)
        )
        return "stale"
    effects.transitions.append(_transition_row(shipment, push, inbox_id, kind, to_status, key))  # type: ignore[arg-type]
    if effects.collect_cycles:
        tracked = shipment.tracking in ACTIVE_TRACKING and shipment.status != "delivered"
        received_at = effects.received.get(inbox_id) or utcnow()
        effects.billable.append(events17.update_cycle(shipment, key, tracked, received_at))
    if push.carrier_name:
        shipment.carrier_name = push.carrier_name
    if newer:
        shipment.sub_status = push.sub_status
        shipment.last_event_at = push.event_time or shipment.last_event_at
        shipment.last_event_description = push.description
    if sets_status:
        shipment.status_event_at = push.event_time or shipment.status_event_at
    shipment.first_result_at = shipment.first_result_at or utcnow()
    if shipment.tracking == "pending":
        shipment.tracking = "tracking"
    _set_status(effects, shipment, to_status)  # type: ignore[arg-type]
    return "applied" if push.status else "unknown_status"


def _how_it_applies(shipment: Shipment, push: st.Push) -> tuple[bool, bool]:
    """(newer than the last event, sets the status). An older push still sets the status when the
    pushes since carried statuses we do not know: the status keeps its own watermark, so any order
    of arrival ends in the same state."""
    newer = _is_newer(shipment.last_event_at, shipment.status, push)
    if push.status is None:
        return newer, False
    # None: no event has set the status yet (migration 0009 filled it in for older rows).
    return newer, newer or _is_newer(shipment.status_event_at, shipment.status, push)


def _set_status(effects: BatchEffects, shipment: Shipment, to_status: str) -> None:
    """The status, and the auto-stop it implies: queued on delivery, withdrawn (while unsent) when a
    newer event shows the parcel moving again, as a return after a delivery scan does."""
    was = shipment.status
    shipment.status = to_status
    if to_status == "delivered" and shipment.tracking in ACTIVE_TRACKING:
        shipment.tracking = "stopping"
        effects.operations.append(stoptrack_row(shipment))
    elif was == "delivered" and to_status not in TERMINAL_STATUSES and shipment.tracking == "stopping":
        shipment.tracking = "tracking"
        effects.operations = [
            row for row in effects.operations
            if not (row["shipment_id"] == shipment.id and row["kind"] == STOPTRACK)
        ]  # fmt: skip
        effects.resumed_shipment_ids.append(shipment.id)


def _apply_stopped(effects: BatchEffects, shipment: Shipment, inbox_id: int) -> str:
    if shipment.tracking == "stopped":
        return "duplicate"
    effects.transitions.append(
        {
            "shipment_id": shipment.id,
            "inbox_id": inbox_id,
            "kind": "stopped",
            "from_status": shipment.status,
            "to_status": shipment.status,
            "sub_status": shipment.sub_status,
            "event_time": None,
            "description": "TRACKING_STOPPED",
            "dedupe_key": f"stopped:{inbox_id}",
            "recorded_at": utcnow(),
        }
    )
    shipment.tracking = "stopped"
    shipment.stopped_at = utcnow()
    effects.stopped_shipment_ids.append(shipment.id)
    return "stopped"


def _transition_row(
    shipment: Shipment, push: st.Push, inbox_id: int, kind: str, to_status: str, key: str
) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "inbox_id": inbox_id,
        "kind": kind,
        "from_status": shipment.status,
        "to_status": to_status,
        "sub_status": push.sub_status,
        "event_time": push.event_time,
        "description": push.description,
        "dedupe_key": key,
        "recorded_at": utcnow(),
    }
