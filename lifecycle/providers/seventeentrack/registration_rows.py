"""17TRACK registrations stored as sets: a chunk of requests costs a handful of statements.

One SELECT of the shipments already here for the chunk's numbers (plain rows, no ORM objects), one
executemany UPDATE of the deleted or rejected ones registered again, then on PostgreSQL one COPY
and one statement for the new shipments and every `register` operation (registration_copy), on
SQLite an executemany INSERT … RETURNING of the new shipments and one of the operations. The ORM's
unit of work per row is what made a large CSV import crawl; the decisions are made in registration.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, insert, select, update
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import registration_copy
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.requests import Registration
from lifecycle.sqlutil import insert_ignoring_conflicts, is_psycopg

PROVIDER = "17track"
SHIPMENTS = Shipment.__table__


@dataclass(slots=True)
class Known:
    """A (number, carrier) shipment as the decisions see it; `id` is None until it is inserted."""

    id: int | None
    number: str
    carrier: int
    tracking: str
    generation: int


@dataclass(slots=True)
class Queued:
    """A registration decided on: `known` was updated in place (tracking pending, generation)."""

    known: Known
    request: Registration
    again: bool  # a deleted or rejected shipment registered again, rather than a new one


def existing(session: Session, numbers: Iterable[str]) -> dict[str, list[Known]]:
    """The shipments already here for these numbers, oldest first, by number."""
    found: dict[str, list[Known]] = {}
    wanted = set(numbers)
    if not wanted:
        return found
    stmt = (
        select(
            Shipment.id,
            Shipment.number,
            Shipment.carrier,
            Shipment.tracking,
            Shipment.registration_generation,
        )
        .where(Shipment.provider == PROVIDER, Shipment.number.in_(_literal_list(wanted)))
        .order_by(Shipment.id)
    )
    for row in session.execute(stmt):
        found.setdefault(row.number, []).append(Known(*row))
    return found


def _literal_list(values: set[str]) -> BindParameter[list[str]]:
    """The numbers written into the SQL text. As bound parameters the statement's text would be the
    same every chunk, psycopg would prepare it, and PostgreSQL could keep a generic plan made while
    the table was still small (a sequential scan: seconds per chunk once it holds a million rows)."""
    return bindparam("numbers", sorted(values), expanding=True, literal_execute=True)


def save(session: Session, queued: Sequence[Queued]) -> None:
    """Store the decided registrations: shipments inserted or reset, then one operation each."""
    if not queued:
        return
    now = utcnow()
    _reset_again(session, [q for q in queued if q.again], now)
    if is_psycopg(session):
        registration_copy.store(session, [_batch_row(q) for q in queued], _shared_values(now), now)
        return
    _insert_new(session, [q for q in queued if not q.again], now)
    insert_ignoring_conflicts(
        session, Operation, [_register_row(q, now) for q in queued], ["idempotency_key"]
    )


def _fields(request: Registration) -> dict[str, object]:
    """What a registration (re)sets on its shipment, new or registered again."""
    return {
        "tracking": "pending",
        "origin": "registered",
        "tag": request.tag,
        "lang": request.lang,
        "error_code": None,
        "last_error": None,
        "deleted_at": None,
        "stopped_at": None,
        "retracked": False,
        "carrier_changes": 0,
    }


def _batch_row(queued: Queued) -> tuple:
    """A row of registration_copy's batch: the shipment's id only when it is registered again."""
    known, request = queued.known, queued.request
    return (
        known.id if queued.again else None,
        known.number,
        known.carrier,
        request.tag,
        request.lang,
        known.generation,
    )


def _shared_values(now: datetime) -> dict[str, object]:
    """What every new shipment gets (registration_copy.SHARED): defaults, then a new one's fields."""
    shared = registration_copy.SHARED
    values = {c.name: c.default.arg for c in shared if c.default is not None and c.default.is_scalar}
    values |= {name: value for name, value in _fields(Registration("", None)).items() if name in values}
    values |= {"provider": PROVIDER, "registration_generation": 1, "created_at": now, "updated_at": now}
    return {c.name: values[c.name] for c in shared}


def _insert_new(session: Session, new: Sequence[Queued], now: datetime) -> None:
    """SQLite: executemany … RETURNING, to learn each new shipment's id for its operation."""
    if not new:
        return
    rows = [
        {"provider": PROVIDER, "number": q.known.number, "carrier": q.known.carrier, **_fields(q.request)}
        | {"registration_generation": q.known.generation, "created_at": now, "updated_at": now}
        for q in new
    ]
    returned = session.execute(insert(SHIPMENTS).returning(*_RETURNED), rows)
    # A chunk never queues the same (number, carrier) twice, so the pair finds each row's id.
    ids = {(number, carrier): id_ for id_, number, carrier in returned}
    for q in new:
        q.known.id = ids[(q.known.number, q.known.carrier)]


_RETURNED = (SHIPMENTS.c.id, SHIPMENTS.c.number, SHIPMENTS.c.carrier)


def _reset_again(session: Session, again: Sequence[Queued], now: datetime) -> None:
    if not again:
        return
    # Bound names must differ from the column names an UPDATE's SET clause reserves.
    values = {"registration_generation": None, "updated_at": None, **_fields(again[0].request)}
    stmt = (
        update(SHIPMENTS)
        .where(SHIPMENTS.c.id == bindparam("shipment_id"))
        .values({column: bindparam(f"new_{column}") for column in values})
    )
    rows = [
        {
            "shipment_id": q.known.id,
            "new_registration_generation": q.known.generation,
            "new_updated_at": now,
            **{f"new_{column}": value for column, value in _fields(q.request).items()},
        }
        for q in again
    ]
    session.execute(stmt, rows)


def _register_row(queued: Queued, now: datetime) -> dict[str, object]:
    known, request = queued.known, queued.request
    return {
        "provider": PROVIDER,
        "kind": "register",
        "shipment_id": known.id,
        "number": known.number,
        "carrier": known.carrier,
        "payload": {"tag": request.tag, "lang": request.lang},
        # The same key as kinds.registration_key gives for the stored shipment.
        "idempotency_key": f"17track:register:{known.number}:{known.carrier}:{known.generation}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
