"""Poison rows found by fault and fuzz runs (issue 10): each fails alone, the rows around it apply."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.shipments.models import Shipment, Transition
from lifecycle.sqlutil import driver_cursor, is_retryable
from simulators.seventeentrack import pushes
from tests.helpers import at, count, delivered, in_transit, post_push, shipment


def _insert(app, body: bytes, provider: str = "17track") -> int:  # type: ignore[no-untyped-def]
    """Straight into the inbox, as a body that got past the webhook (or an older version of it)."""
    with app.app_context(), db.new_session() as session, session.begin():
        return session.execute(insert(InboxEvent).values(provider=provider, body=body)).inserted_primary_key[
            0
        ]


def _drain(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return inbox.drain(db.new_session, batch_size=50)


def _row(app, row_id: int) -> InboxEvent:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return session.get_one(InboxEvent, row_id)


def _failed(app) -> InboxEvent:  # type: ignore[no-untyped-def]
    # A session of its own, closed before anything else reads (SQLite has one writer at a time).
    with app.app_context(), db.new_session() as session:
        return session.scalars(select(InboxEvent).where(InboxEvent.status == "failed")).one()


def _with(payload: dict, path: tuple, value: object) -> bytes:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(payload).encode()


def _updated(number: str = "RR2") -> dict:
    return pushes.tracking_updated(number, 3011, "InTransit", "InTransit_PickedUp", at(3))


def _info(path: tuple, value: object) -> bytes:
    return _with(_updated(), ("data", "track_info", *path), value)


def _data(key: str, value: object) -> bytes:
    return _with(_updated(), ("data", key), value)


HUGE_INT = b'{"event":"TRACKING_UPDATED","data":{"number":"RR2","carrier":' + b"9" * 5000 + b"}}"
DEEP = b'{"event":"X","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
POISONS = {
    "status is a float": (_info(("latest_status", "status"), 1.5), "latest_status.status"),
    "status is a list": (_info(("latest_status", "status"), ["x"]), "latest_status.status"),
    "latest_status is a string": (_info(("latest_status",), "Delivered"), "latest_status"),
    "latest_event is a string": (_info(("latest_event",), "yesterday"), "latest_event"),
    "carrier over 32 bits": (_data("carrier", 2**40), "data.carrier"),
    "carrier is a bool": (_data("carrier", True), "data.carrier"),
    "number too long": (_data("number", "R" * 65), "data.number"),
    "number with a lone surrogate": (_data("number", "RR\ud800"), "lone surrogate"),
    "event time out of range": (
        _info(("latest_event", "time_utc"), "0001-01-01T00:00:00+05:00"),
        "unreadable event time",
    ),
    "integer over 4,300 digits": (HUGE_INT, "malformed JSON"),
    "nested too deeply": (DEEP, "malformed JSON"),
    "not utf-8": (b'{"event":"\xff"}', "malformed JSON"),
}


@pytest.mark.parametrize("name", list(POISONS))
def test_poison_push_fails_alone_with_a_readable_error(app, client, name):
    body, reason = POISONS[name]
    post_push(client, in_transit("RR1"))
    poison = _insert(app, body)
    post_push(client, delivered("RR3"))
    report = _drain(app)
    assert (report.processed, report.failed) == (2, 1)
    row = _row(app, poison)
    assert row.status == "failed" and reason in row.error and len(row.error) <= 500
    with app.app_context():
        assert shipment("RR1").status == "in_transit" and shipment("RR3").status == "delivered"
        assert count(InboxEvent, InboxEvent.status == "pending") == 0


def test_a_float_status_before_a_good_push_leaves_neither_pending(app, client):
    """The issue's own example: `latest_status.status = 1.5`, then a good push for the same number."""
    bad = _insert(app, POISONS["status is a float"][0])
    post_push(client, pushes.tracking_updated("RR2", 3011, "Delivered", None, at(5)))
    assert _drain(app).outcomes == {"failed": 1, "applied": 1}
    assert _row(app, bad).status == "failed"
    with app.app_context():
        assert shipment("RR2").status == "delivered"


def test_lone_surrogate_in_free_text_is_replaced_and_the_push_applies(app, client):
    payload = _updated()
    payload["data"]["track_info"]["latest_event"]["description"] = "Hub \ud800 Paris"
    _insert(app, json.dumps(payload).encode())
    assert _drain(app).outcomes == {"applied": 1}
    with app.app_context():
        assert shipment("RR2").last_event_description == "Hub \ufffd Paris"


def test_unknown_status_longer_than_its_column_is_kept_cut_not_fatal(app, client):
    post_push(client, pushes.tracking_updated("RR2", 3011, "Teleported", "X" * 300, at(2)))
    assert _drain(app).outcomes == {"unknown_status": 1}
    with app.app_context():
        assert len(shipment("RR2").sub_status) == 64


def _callback(awb: str, **event: object) -> bytes:
    base = {"code": "DEP", "eventDate": "2026-11-02T10:00:00+01:00", "eventLocation": "CDG"}
    return json.dumps({"awb": awb, "events": [{**base, **event}]}).encode()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"code": "D\ud800P"}, "lone surrogate"),
        ({"code": 5}, "events.0.code"),
        ({"eventLocation": ["CDG"]}, "eventLocation"),
        ({"flight": "AF1"}, "events.0.flight"),
        ({"eventDate": "2026-13-45"}, "unreadable eventDate"),
    ],
)
def test_poison_cargoai_callback_fails_alone(app, event, reason):
    good_before = _insert(app, _callback("000-12345675"), "cargoai")
    poison = _insert(app, _callback("000-11111111", **event), "cargoai")
    good_after = _insert(app, _callback("000-22222222", code="DLV"), "cargoai")
    report = _drain(app)
    assert (report.processed, report.failed) == (2, 1)
    assert reason in _row(app, poison).error
    assert {_row(app, i).status for i in (good_before, good_after)} == {"processed"}


def test_lone_surrogate_in_a_cargoai_location_is_replaced_and_applied(app):
    _insert(app, _callback("000-12345675", eventLocation="C\ud800G"), "cargoai")
    assert _drain(app).outcomes == {"applied": 1}
    with app.app_context(), db.new_session() as session:
        description = session.scalars(select(Transition.description)).one()
    assert description == "DEP C\ufffdG"


def test_any_exception_while_applying_fails_only_that_row(app, client, monkeypatch):
    real = inbox.apply_bodies

    def explode_on_rr2(session, adapter, bodies, **kwargs):  # type: ignore[no-untyped-def]
        if any(event.number == "RR2" for _, body in bodies for event in body.events):
            raise KeyError("something nobody anticipated")
        return real(session, adapter, bodies, **kwargs)

    monkeypatch.setattr(inbox, "apply_bodies", explode_on_rr2)
    post_push(client, in_transit("RR1"))
    post_push(client, in_transit("RR2"))
    post_push(client, delivered("RR3"))
    assert _drain(app).outcomes == {"applied": 2, "failed": 1}
    with app.app_context():
        assert _failed(app).error == "KeyError: 'something nobody anticipated'"
        assert count(Shipment) == 2


def test_a_failure_outside_any_savepoint_is_retried_row_by_row(app, client, monkeypatch):
    """Even when the batch's own bookkeeping fails, the culprit is found and the others apply."""
    real = inbox._mark

    def mark(session, rows, outcomes, errors):  # type: ignore[no-untyped-def]
        if any(b"RR2" in row.body for row in rows):
            raise RuntimeError("bookkeeping failed")
        return real(session, rows, outcomes, errors)

    monkeypatch.setattr(inbox, "_mark", mark)
    for number in ("RR1", "RR2", "RR3"):
        post_push(client, in_transit(number))
    assert _drain(app).outcomes == {"applied": 2, "failed": 1}
    failed = _failed(app)
    assert b"RR2" in failed.body and failed.error == "RuntimeError: bookkeeping failed"
    with app.app_context():
        assert count(InboxEvent, InboxEvent.status == "pending") == 0
        assert shipment("RR2") is None and shipment("RR3").status == "in_transit"


def test_a_database_outage_marks_nothing_failed(app, client, monkeypatch):
    """No row is to blame when the database itself fails: the drain stops, every row stays pending."""

    def database_gone(session, adapter, bodies, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(inbox, "apply_bodies", database_gone)
    post_push(client, in_transit("RR1"))
    post_push(client, in_transit("RR2"))
    with pytest.raises(OperationalError):
        _drain(app)
    with app.app_context():
        assert count(InboxEvent, InboxEvent.status == "pending") == 2


def test_a_deadlock_in_a_driver_cursor_statement_retries_the_batch_and_fails_no_row(app, client, monkeypatch):
    """The drain's fixed statements run on the psycopg cursor itself (sqlutil.driver_cursor): a
    deadlock there (two workers adopting the same new numbers) is the database's trouble, so the
    batch is retried, never blamed on a row (four workers once left 4 of 20,000 rows failed)."""
    if app.config["SETTINGS"].is_sqlite:
        pytest.skip("driver_cursor statements run on PostgreSQL only")
    real, calls = inbox.apply_bodies, []

    def deadlock_first(session, adapter, bodies, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(bodies))
        if len(calls) <= 2:  # the batch, then (were it blamed on rows) the first row alone
            with driver_cursor(session) as cursor:
                cursor.execute(DEADLOCK)
        return real(session, adapter, bodies, **kwargs)

    monkeypatch.setattr(inbox, "apply_bodies", deadlock_first)
    for number in ("RR1", "RR2", "RR3"):
        post_push(client, in_transit(number))
    assert _drain(app).outcomes == {"applied": 3}
    with app.app_context():
        assert count(InboxEvent, InboxEvent.status == "failed") == 0
    assert calls[:3] == [3, 3, 3]  # the whole batch again each time, not row by row


DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"
NOT_NULL = "DO $$ BEGIN RAISE EXCEPTION 'null value' USING ERRCODE = '23502'; END $$"


def test_driver_cursor_errors_come_out_as_sqlalchemys(app):
    if app.config["SETTINGS"].is_sqlite:
        pytest.skip("driver_cursor statements run on PostgreSQL only")
    raised = {}
    for name, statement in (("deadlock", DEADLOCK), ("not null", NOT_NULL)):
        with app.app_context(), db.new_session() as session, session.begin():
            with pytest.raises(DBAPIError) as caught, driver_cursor(session) as cursor:
                cursor.execute(statement)
            raised[name] = caught.value
            session.rollback()
    assert is_retryable(raised["deadlock"]) and inbox.not_the_rows_fault(raised["deadlock"])
    assert isinstance(raised["not null"], IntegrityError)
    assert not inbox.not_the_rows_fault(raised["not null"])
