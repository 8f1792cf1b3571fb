"""The set-based SQL helpers the drain writes through (lifecycle/sqlutil.py), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from lifecycle.db import UTCDateTime
from lifecycle.extensions import db
from lifecycle.outbound.models import OutboundEvent
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import insert_rows, one_of, update_by_id


def _shipment(number: str, **columns: object) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {"provider": "17track", "number": number, "carrier": 3011, "status": "pending",
            "tracking": "tracking", "origin": "api", "registration_generation": 1,
            "created_at": now, "updated_at": now} | columns  # fmt: skip


def test_one_of_finds_exactly_the_values_given(app):
    numbers = [f"RR{i:09d}CN" for i in range(300)] + ["O'NEIL-1", "ÜNICODE-2"]
    with db.new_session() as session, session.begin():
        session.add_all(Shipment(**_shipment(number)) for number in numbers)
    with db.new_session() as session:
        for wanted in (numbers[:1], numbers[5:250], numbers[-2:], []):
            found = session.scalars(select(Shipment.number).where(one_of(session, Shipment.number, wanted)))
            assert sorted(found) == sorted(wanted)


def test_one_of_is_one_statement_text_whatever_the_number_of_values_on_postgresql(app):
    with db.new_session() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("on SQLite it is a plain IN list")

        def sql(count: int) -> str:
            stmt = select(Shipment.id).where(
                one_of(session, Shipment.number, [f"N{i}" for i in range(count)])
            )
            # As executed: an IN list is expanded into one placeholder per value at this step.
            compiled = stmt.compile(
                dialect=postgresql.psycopg.dialect(), compile_kwargs={"render_postcompile": True}
            )
            return str(compiled)

        assert sql(1) == sql(500)


def test_rows_written_over_arrays_get_defaults_json_and_utc_times(app):
    """insert_rows and update_by_id bind whole columns at once: defaults filled per row, JSON
    encoded, aware times stored as UTC (what the ORM would have written)."""
    paris = timezone(timedelta(hours=2))
    with db.new_session() as session, session.begin():
        session.add(Shipment(**_shipment("RR1")))
        session.flush()
        shipment_id = session.scalar(select(Shipment.id))
        events = [{"public_id": f"msg_{i}", "type": "delivered", "shipment_id": shipment_id,
                   "payload": {"n": i, "text": "é"}} for i in range(3)]  # fmt: skip
        insert_rows(session, OutboundEvent.__table__, events)
        at = datetime(2026, 5, 1, 14, 0, tzinfo=paris)
        update_by_id(
            session, Shipment.__table__, [{"id": shipment_id, "status": "delivered", "last_seen_at": at}]
        )
    with db.new_session() as session:
        stored = session.scalars(select(OutboundEvent).order_by(OutboundEvent.public_id)).all()
        assert [e.payload for e in stored] == [{"n": i, "text": "é"} for i in range(3)]
        assert all(e.created_at is not None and e.created_at.tzinfo is UTC for e in stored)
        shipment = session.get(Shipment, shipment_id)
        assert shipment.status == "delivered"
        assert shipment.last_seen_at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_update_by_id_refuses_a_naive_time_on_both_backends(app):
    """A naive datetime is refused, never stored as if it were UTC (the arrays' fast path too)."""
    with db.new_session() as session, session.begin():
        session.add(Shipment(**_shipment("RR1")))
        session.flush()
        shipment_id = session.scalar(select(Shipment.id))
        with pytest.raises(Exception, match="naive datetime"):
            update_by_id(
                session, Shipment.__table__, [{"id": shipment_id, "last_seen_at": datetime(2026, 5, 1)}]
            )


def test_utc_columns_store_naive_utc_and_refuse_naive_times():
    column = UTCDateTime()
    assert column.process_bind_param(datetime(2026, 5, 1, 12, 0, tzinfo=UTC), None) == datetime(
        2026, 5, 1, 12, 0
    )
    two_hours_east = timezone(timedelta(hours=2))
    assert column.process_bind_param(datetime(2026, 5, 1, 14, 0, tzinfo=two_hours_east), None) == datetime(
        2026, 5, 1, 12, 0
    )
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 5, 1, 12, 0), None)
