"""Shipments as the drain reads, locks and writes them: plain rows, not ORM objects.

A drained batch touches hundreds of shipments and changes a dozen columns of each, then writes
them back in one statement. Loading them as ORM objects cost more than the state machine itself
(identity map, attribute instrumentation, change tracking, a flush with nothing left to write), so
the batch's shipments are read with one locking SELECT into `ShipmentRow`s, plain attributes
named as the table's columns, and the changed ones are written with `sqlutil.update_by_id`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import one_of, update_by_id

_TABLE = Shipment.__table__
COLUMNS = tuple(column.name for column in _TABLE.columns)
# What the state machine changes on a shipment; updated_at is set whenever one of them changed.
WRITTEN = (
    "carrier", "carrier_name", "status", "sub_status", "tracking", "last_seen_at", "last_event_at",
    "status_event_at", "last_event_description", "first_result_at", "stopped_at",
)  # fmt: skip


class ShipmentRow:
    """One locked shipment row: every column of `shipments` as a plain attribute (the names and
    types of the `Shipment` model), and the written columns as they were read."""

    __slots__ = (*COLUMNS, "_as_read")

    def __init__(self, values: Iterable[Any]) -> None:
        for name, value in zip(COLUMNS, values, strict=True):
            setattr(self, name, value)
        self._as_read = self._written()

    def _written(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in WRITTEN)

    def changed(self) -> bool:
        return self._written() != self._as_read


# What the helpers shared by the drain and the rest of the service read a shipment as.
AnyShipment = Shipment | ShipmentRow


def lock_shipments(
    session: Session, numbers: Iterable[str], provider: str
) -> dict[tuple[str, int], ShipmentRow]:
    """The provider's shipments with these numbers, locked FOR UPDATE, by (number, carrier)."""
    # Locking in id order keeps two workers' batches from deadlocking on each other.
    stmt = (
        select(*_TABLE.columns)
        .where(_TABLE.c.provider == provider, one_of(session, _TABLE.c.number, sorted(set(numbers))))
        .order_by(_TABLE.c.id)
        .with_for_update()
    )
    rows = [ShipmentRow(values) for values in session.execute(stmt)]
    return {(row.number, row.carrier): row for row in rows}


def write_changed(session: Session, rows: Iterable[ShipmentRow]) -> int:
    """Write back the rows whose written columns changed, in one statement; returns how many."""
    now = utcnow()
    changed = [row for row in {id(row): row for row in rows}.values() if row.changed()]
    values = [
        {"id": row.id, "updated_at": now} | {name: getattr(row, name) for name in WRITTEN} for row in changed
    ]
    update_by_id(session, _TABLE, values)
    return len(values)
