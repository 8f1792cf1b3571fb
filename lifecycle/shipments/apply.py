"""Apply canonical events to shipments: the state machine of invariant 3, for every provider.

Works on a whole inbox batch of one provider at once: shipments are read and locked in one query
as plain rows (`rows.py`), adopted numbers inserted in one statement, and the changed shipments,
the transitions and the operations written in one statement each. What differs between providers
(how a delivered shipment is stopped, what an update costs, what an adopted row records) is asked
of the provider's adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.operations.service import cancel_pending
from lifecycle.outbound import record as outbound
from lifecycle.providers.base import STOPPED, UPDATE, CanonicalEvent, ParsedBody, Provider
from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment, Transition
from lifecycle.shipments.rows import ShipmentRow, lock_shipments, write_changed
from lifecycle.sqlutil import insert_ignoring_conflicts, insert_rows, one_of
from lifecycle.status import TERMINAL_STATUSES

ACTIVE_TRACKING = ("pending", "tracking")


@dataclass
class BatchEffects:
    outcomes: dict[int, str] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    seen_keys: set[tuple[int, str]] = field(default_factory=set)
    stopped_shipment_ids: list[int] = field(default_factory=list)
    # Delivered, then moving again before the auto-stop went out: its stop is withdrawn.
    resumed_shipment_ids: list[int] = field(default_factory=list)
    # Filled only when the rule set in force charges status update cycles.
    collect_cycles: bool = False
    received: dict[int, datetime] = field(default_factory=dict)
    billable: list[BillableEvent] = field(default_factory=list)


@dataclass
class _Batch:
    adapter: Provider
    effects: BatchEffects
    shipments: dict[tuple[str, int], ShipmentRow]


def apply_bodies(
    session: Session,
    adapter: Provider,
    bodies: list[tuple[int, ParsedBody]],
    collect_cycles: bool = False,
    received: dict[int, datetime] | None = None,
) -> BatchEffects:
    """Apply parsed bodies in inbox order; returns each inbox row's outcome (and billable cycles)."""
    effects = BatchEffects(collect_cycles=collect_cycles, received=received or {})
    applicable = [e for _, body in bodies for e in body.events if e.kind in (UPDATE, STOPPED)]
    batch = _Batch(adapter, effects, _load_or_adopt(session, adapter, applicable))
    effects.seen_keys = _existing_keys(session, batch.shipments.values(), applicable)
    for inbox_id, body in bodies:
        outcomes = [_apply_event(batch, event, inbox_id) for event in body.events]
        effects.outcomes[inbox_id] = _row_outcome(body, outcomes)
    write_changed(session, batch.shipments.values())
    if effects.transitions:
        insert_rows(session, Transition.__table__, effects.transitions)
        by_id = {shipment.id: shipment for shipment in batch.shipments.values()}
        outbound.record_transitions(session, effects.transitions, by_id)
    insert_ignoring_conflicts(session, Operation, effects.operations, ["idempotency_key"])
    stop_kinds = [adapter.stop_kind] if adapter.stop_kind else []
    cancel_pending(session, effects.stopped_shipment_ids, stop_kinds)
    cancel_pending(session, effects.resumed_shipment_ids, stop_kinds, reason="moving again after delivery")
    return effects


def _row_outcome(body: ParsedBody, outcomes: list[str]) -> str:
    if body.history:
        # The body repeats what was reported before: it counts as applied if anything in it was new.
        return "applied" if any(o != "duplicate" for o in outcomes) else "duplicate"
    return outcomes[0] if len(outcomes) == 1 else "applied" if outcomes else "duplicate"


def _apply_event(batch: _Batch, event: CanonicalEvent, inbox_id: int) -> str:
    if event.kind == UPDATE:
        return _apply_update(batch, _resolve(batch.shipments, event), event, inbox_id)
    if event.kind == STOPPED:
        return _apply_stopped(batch.effects, _resolve(batch.shipments, event), event, inbox_id)
    # Stored and reported, never applied: a new provider event must not invent shipments.
    return "unknown_event"


def _resolve(shipments: dict[tuple[str, int], ShipmentRow], event: CanonicalEvent) -> ShipmentRow:
    exact = shipments.get((event.number, event.carrier))
    if exact is not None:
        return exact
    # Registered with auto-detection: the event tells us the carrier the provider detected.
    detecting = shipments.get((event.number, UNKNOWN_CARRIER))
    if detecting is not None:
        detecting.carrier = event.carrier
        shipments[(event.number, event.carrier)] = detecting
        return detecting
    for (number, _carrier), shipment in shipments.items():
        if number == event.number:
            return shipment
    raise LookupError(f"no shipment row for {event.number}/{event.carrier}")


def _load_or_adopt(
    session: Session, adapter: Provider, events: Iterable[CanonicalEvent]
) -> dict[tuple[str, int], ShipmentRow]:
    events = list(events)
    known = lock_shipments(session, {e.number for e in events}, adapter.name)
    numbers_known = {number for number, _ in known}
    missing: dict[tuple[str, int], CanonicalEvent] = {}
    for event in events:
        key = (event.number, event.carrier)
        if key in known or key in missing or (event.number, UNKNOWN_CARRIER) in known:
            continue
        if event.carrier == UNKNOWN_CARRIER and event.number in numbers_known:
            continue
        missing[key] = event
    if not missing:
        return known
    now = utcnow()
    rows = [_adopted_row(adapter, event, now) for _, event in sorted(missing.items())]
    insert_ignoring_conflicts(session, Shipment, rows, ["provider", "number", "carrier"])
    # Only the adopted numbers are read again (with any row they share a number with: identical).
    return known | lock_shipments(session, {number for number, _ in missing}, adapter.name)


def _adopted_row(adapter: Provider, event: CanonicalEvent, now: datetime) -> dict[str, Any]:
    row = {
        "provider": adapter.name, "number": event.number, "carrier": event.carrier,
        "status": "pending", "tracking": "tracking", "origin": "adopted",
        "registration_generation": 1, "created_at": now, "updated_at": now,
    }  # fmt: skip
    return row | adapter.adopted(event, now)


def _existing_keys(
    session: Session, shipments: Iterable[ShipmentRow], events: list[CanonicalEvent]
) -> set[tuple[int, str]]:
    ids = [s.id for s in shipments]
    keys = {e.dedupe_key for e in events if e.dedupe_key}
    if not ids or not keys:
        return set()
    stmt = select(Transition.shipment_id, Transition.dedupe_key).where(
        one_of(session, Transition.shipment_id, ids), one_of(session, Transition.dedupe_key, keys)
    )
    return {tuple(row) for row in session.execute(stmt)}


def _is_newer(last: datetime | None, status: str, event: CanonicalEvent) -> bool:
    """Whether the event is newer than the event at `last` (invariant 3; terminal states need a
    strictly newer event)."""
    if event.event_time is None:
        # "Not found yet" events carry no time; they may only fill in an empty shipment.
        return last is None
    if last is None or event.event_time > last:
        return True
    return event.event_time == last and status not in TERMINAL_STATUSES


def _apply_update(batch: _Batch, shipment: ShipmentRow, event: CanonicalEvent, inbox_id: int) -> str:
    effects, key = batch.effects, event.dedupe_key
    shipment.last_seen_at = utcnow()
    if (shipment.id, key) in effects.seen_keys:
        return "duplicate"
    effects.seen_keys.add((shipment.id, key))
    newer, sets_status = _how_it_applies(shipment, event)
    to_status = event.status if sets_status else shipment.status
    if not (newer or sets_status):
        # Kept in the history with the status it reported, changing nothing.
        reported = event.status or to_status
        effects.transitions.append(_transition_row(shipment, event, inbox_id, "stale", reported))  # type: ignore[arg-type]
        return "stale"
    kind = "transition" if to_status != shipment.status else "update"
    effects.transitions.append(_transition_row(shipment, event, inbox_id, kind, to_status))  # type: ignore[arg-type]
    if effects.collect_cycles:
        _charge_cycle(batch, shipment, key, inbox_id)
    if event.carrier_name:
        shipment.carrier_name = event.carrier_name
    if newer:
        shipment.sub_status = event.sub_status
        shipment.last_event_at = event.event_time or shipment.last_event_at
        shipment.last_event_description = event.description
    if sets_status:
        shipment.status_event_at = event.event_time or shipment.status_event_at
    shipment.first_result_at = shipment.first_result_at or utcnow()
    if shipment.tracking == "pending":
        shipment.tracking = "tracking"
    _set_status(batch, shipment, to_status)  # type: ignore[arg-type]
    return "applied" if event.status else "unknown_status"


def _charge_cycle(batch: _Batch, shipment: ShipmentRow, key: str, inbox_id: int) -> None:
    tracked = shipment.tracking in ACTIVE_TRACKING and shipment.status != "delivered"
    received_at = batch.effects.received.get(inbox_id) or utcnow()
    cycle = batch.adapter.update_cycle(shipment, key, tracked, received_at)
    if cycle is not None:
        batch.effects.billable.append(cycle)


def _how_it_applies(shipment: ShipmentRow, event: CanonicalEvent) -> tuple[bool, bool]:
    """(newer than the last event, sets the status). An older event still sets the status when the
    events since carried statuses we do not know: the status keeps its own watermark, so any order
    of arrival ends in the same state."""
    newer = _is_newer(shipment.last_event_at, shipment.status, event)
    if event.status is None:
        return newer, False
    # None: no event has set the status yet (migration 0009 filled it in for older rows).
    return newer, newer or _is_newer(shipment.status_event_at, shipment.status, event)


def _set_status(batch: _Batch, shipment: ShipmentRow, to_status: str) -> None:
    """The status, and the auto-stop it implies: queued on delivery, withdrawn (while unsent) when a
    newer event shows the parcel moving again, as a return after a delivery scan does."""
    was, effects = shipment.status, batch.effects
    shipment.status = to_status
    if to_status == "delivered" and shipment.tracking in ACTIVE_TRACKING:
        stop = batch.adapter.stop_row(shipment)
        if stop is None:  # stopping needs no call (a polled AWB is simply no longer polled)
            shipment.tracking, shipment.stopped_at = "stopped", utcnow()
        else:
            shipment.tracking = "stopping"
            effects.operations.append(stop)
    elif was == "delivered" and to_status not in TERMINAL_STATUSES and shipment.tracking == "stopping":
        shipment.tracking = "tracking"
        stop_kind = batch.adapter.stop_kind
        effects.operations = [
            row for row in effects.operations
            if not (row["shipment_id"] == shipment.id and row["kind"] == stop_kind)
        ]  # fmt: skip
        effects.resumed_shipment_ids.append(shipment.id)


def _apply_stopped(effects: BatchEffects, shipment: ShipmentRow, event: CanonicalEvent, inbox_id: int) -> str:
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
            "description": event.description or "stopped by the provider",
            "dedupe_key": f"stopped:{inbox_id}",
            "recorded_at": utcnow(),
        }
    )
    shipment.tracking = "stopped"
    shipment.stopped_at = utcnow()
    effects.stopped_shipment_ids.append(shipment.id)
    return "stopped"


def _transition_row(
    shipment: ShipmentRow, event: CanonicalEvent, inbox_id: int, kind: str, to_status: str
) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "inbox_id": inbox_id,
        "kind": kind,
        "from_status": shipment.status,
        "to_status": to_status,
        "sub_status": event.sub_status,
        "event_time": event.event_time,
        "description": event.description,
        "dedupe_key": event.dedupe_key,
        "recorded_at": utcnow(),
    }
