"""The drain's shipments as plain rows (lifecycle/shipments/rows.py), on both backends: what is read
is every column as the model reads it, and only what the state machine changed is written back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.rows import COLUMNS, lock_shipments, write_changed

EARLIER = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def _add(session, number: str, carrier: int = 3011, provider: str = "17track") -> None:  # type: ignore[no-untyped-def]
    session.add(
        Shipment(
            provider=provider, number=number, carrier=carrier, status="in_transit", tracking="tracking",
            tag="t", last_seen_at=EARLIER, created_at=EARLIER, updated_at=EARLIER,
        )
    )  # fmt: skip


def test_a_locked_row_reads_every_column_as_the_model_does(app):
    with db.new_session() as session, session.begin():
        _add(session, "RR1")
        _add(session, "RR1", provider="cargoai")  # another provider's number is not this one
    with db.new_session() as session, session.begin():
        rows = lock_shipments(session, ["RR1", "RR9"], "17track")
        model = session.scalars(select(Shipment).where(Shipment.provider == "17track")).one()
        assert list(rows) == [("RR1", 3011)]
        row = rows[("RR1", 3011)]
        assert {name: getattr(row, name) for name in COLUMNS} == {
            name: getattr(model, name) for name in COLUMNS
        }
        assert row.last_seen_at.tzinfo is UTC  # aware, as the state machine compares event times


def test_only_changed_rows_are_written_and_they_get_a_new_updated_at(app):
    with db.new_session() as session, session.begin():
        for number in ("RR1", "RR2"):
            _add(session, number)
    before = utcnow()
    with db.new_session() as session, session.begin():
        rows = lock_shipments(session, ["RR1", "RR2"], "17track")
        moved = rows[("RR1", 3011)]
        moved.status, moved.last_event_description = "delivered", "Delivered to the door"
        assert write_changed(session, [*rows.values(), moved]) == 1  # the same row twice is one write
    with db.new_session() as session:
        stored = {s.number: s for s in session.scalars(select(Shipment))}
    assert (stored["RR1"].status, stored["RR1"].last_event_description) == (
        "delivered",
        "Delivered to the door",
    )
    assert stored["RR1"].updated_at >= before
    assert (stored["RR2"].status, stored["RR2"].updated_at) == ("in_transit", EARLIER)
    assert stored["RR1"].tag == "t"  # columns the state machine never writes are left alone


def test_a_row_changed_back_to_what_was_read_is_not_written(app):
    with db.new_session() as session, session.begin():
        _add(session, "RR1")
    with db.new_session() as session, session.begin():
        row = lock_shipments(session, ["RR1"], "17track")[("RR1", 3011)]
        row.status = "delivered"
        row.status = "in_transit"
        assert not row.changed()
        assert write_changed(session, [row]) == 0
