"""17TRACK registrations stored as sets: a chunk of requests costs a handful of statements.

One SELECT of the shipments already here for the chunk's numbers (plain rows, no ORM objects), one
INSERT … RETURNING of the new shipments, one executemany UPDATE of the deleted or rejected ones
registered again, and one INSERT of their `register` operations (on PostgreSQL both INSERTs are
`INSERT … SELECT FROM unnest(arrays)`; on SQLite executemany). The ORM's unit of work per row is
what made a large CSV import crawl; the decisions themselves are made in registration.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    JSON,
    BindParameter,
    Column,
    Insert,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.requests import Registration
from lifecycle.sqlutil import insert_ignoring_conflicts

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
    _insert_new(session, [q for q in queued if not q.again], now)
    _reset_again(session, [q for q in queued if q.again], now)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_OPERATIONS_INSERT, _operation_params(queued, now))
    else:
        operations = [_register_row(q, now) for q in queued]
        insert_ignoring_conflicts(session, Operation, operations, ["idempotency_key"])


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


def _insert_new(session: Session, new: Sequence[Queued], now: datetime) -> None:
    if not new:
        return
    if session.get_bind().dialect.name == "postgresql":
        returned = session.execute(_UNNEST_INSERT, _unnest_params(new, now))
    else:
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
# What differs from row to row travels as one array per column; the rest is one value per chunk:
# the provider and every column with a Python-side default (the server would not fill those in).
_PER_ROW = ("number", "carrier", "tag", "lang")
_SHARED = [SHIPMENTS.c.provider] + [
    c for c in SHIPMENTS.c if c.default is not None and c.name not in _PER_ROW and not c.primary_key
]


def _unnest_insert(
    table: Table, per_row: Sequence[str], shared: Sequence[Column], conflict: str | None = None
) -> Insert:
    """PostgreSQL: `INSERT … SELECT FROM unnest(arrays)`, one statement per chunk whose text never
    depends on the number of rows (a multi-row VALUES list of a thousand rows costs more to build
    and parse than to run). JSON columns travel as text arrays, cast by the server."""
    arrays = [cast(bindparam(name), ARRAY(_array_type(table.c[name]))) for name in per_row]
    rows = func.unnest(*arrays).table_valued(*per_row).render_derived()
    from_rows = [cast(rows.c[name], table.c[name].type) for name in per_row]
    values = [cast(bindparam(f"shared_{c.name}", type_=c.type), c.type) for c in shared]
    stmt = pg_insert(table).from_select([*per_row, *(c.name for c in shared)], select(*from_rows, *values))
    return stmt.on_conflict_do_nothing(index_elements=[conflict]) if conflict else stmt


def _array_type(column: Column) -> TypeEngine:
    return Text() if isinstance(column.type, JSON) else column.type


def _unnest_params(new: Sequence[Queued], now: datetime) -> dict[str, object]:
    params: dict[str, object] = {
        "number": [q.known.number for q in new],
        "carrier": [q.known.carrier for q in new],
        "tag": [q.request.tag for q in new],
        "lang": [q.request.lang for q in new],
    }
    values = {c.name: c.default.arg for c in _SHARED if c.default is not None and c.default.is_scalar}
    values |= _fields(new[0].request)  # its per-row fields (tag, lang) are left out below
    values |= {"provider": PROVIDER, "registration_generation": 1, "created_at": now, "updated_at": now}
    params |= {f"shared_{c.name}": values[c.name] for c in _SHARED}
    return params


_UNNEST_INSERT = _unnest_insert(SHIPMENTS, _PER_ROW, _SHARED).returning(*_RETURNED)


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


OPERATIONS = Operation.__table__
_OPERATION_PER_ROW = ("shipment_id", "number", "carrier", "payload", "idempotency_key")
_OPERATION_SHARED = [
    OPERATIONS.c[name] for name in ("provider", "kind", "status", "attempts", "next_attempt_at", "created_at")
]
_OPERATIONS_INSERT = _unnest_insert(OPERATIONS, _OPERATION_PER_ROW, _OPERATION_SHARED, "idempotency_key")


def _operation_params(queued: Sequence[Queued], now: datetime) -> dict[str, object]:
    rows = [_register_row(q, now) for q in queued]
    params: dict[str, object] = {name: [row[name] for row in rows] for name in _OPERATION_PER_ROW}
    params["payload"] = [json.dumps(row["payload"]) for row in rows]
    params |= {f"shared_{c.name}": rows[0][c.name] for c in _OPERATION_SHARED}
    return params
