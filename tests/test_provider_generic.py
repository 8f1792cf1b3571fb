"""The generic signed-webhook provider end to end through the real app, on both backends.

Signed pushes in, drained by the real inbox loop, shipments out; registration through the API; and
whatever JSON a correctly signed sender posts, never a 500 and never a row left pending.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy import select

from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import PENDING, InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.providers.generic import config
from lifecycle.providers.generic.webhook import sign
from lifecycle.shipments.models import Shipment, Transition
from tests.helpers import at, count

SECRET = "generic-test-secret"
STATUS_MAP = {"shipped": "in_transit", "out": "out_for_delivery", "done": "delivered"}


@pytest.fixture(autouse=True)
def generic_env(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GENERIC_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GENERIC_STATUS_MAP", json.dumps(STATUS_MAP))
    config.current.cache_clear()
    yield
    config.current.cache_clear()


def event(number: str, status: str, hours: float | None = 0, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"number": number, "status": status, **extra}
    if hours is not None:
        body["event_time"] = at(hours).isoformat()
    return body


def post(client, payload: Any, secret: str = SECRET, raw: bytes | None = None):  # type: ignore[no-untyped-def]
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post("/webhooks/generic", data=body, headers={"X-Signature": sign(body, secret)})


def drain(app) -> inbox.DrainReport:  # type: ignore[no-untyped-def]
    with app.app_context():
        return inbox.drain(db.new_session, 100)


def generic(app, number: str) -> Shipment | None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        stmt = select(Shipment).where(Shipment.provider == "generic", Shipment.number == number)
        return session.scalars(stmt).first()


def test_a_signed_push_creates_the_shipment_with_the_mapped_status(app, client):
    response = post(client, event(" gx-1 ", "Shipped", description="left the depot"))
    assert response.status_code == 200 and response.json["status"] == "stored"
    assert drain(app).outcomes == {"applied": 1}
    shipment = generic(app, "GX-1")
    assert shipment is not None
    assert (shipment.status, shipment.sub_status, shipment.origin) == ("in_transit", "Shipped", "adopted")
    assert shipment.last_event_description == "left the depot" and shipment.tracking == "tracking"


def test_out_of_order_events_end_in_the_newest_status(app, client):
    for status, hours in (("out", 30), ("shipped", 10), ("done", 48), ("shipped", 20)):
        assert post(client, event("GX-2", status, hours)).status_code == 200
    drain(app)
    shipment = generic(app, "GX-2")
    assert shipment.status == "delivered" and shipment.last_event_at == at(48)


def test_a_duplicate_delivery_is_applied_once(app, client):
    push = event("GX-3", "shipped", 5, event_id="evt-1")
    post(client, push)
    post(client, push | {"description": "same id, redelivered"})
    assert drain(app).outcomes == {"applied": 1, "duplicate": 1}
    with app.app_context():
        assert count(Transition) == 1


def test_delivered_stops_tracking_with_no_operation_queued(app, client):
    post(client, event("GX-4", "shipped", 1))
    post(client, event("GX-4", "done", 2))
    drain(app)
    shipment = generic(app, "GX-4")
    assert (shipment.status, shipment.tracking) == ("delivered", "stopped") and shipment.stopped_at
    with app.app_context():
        assert count(Operation) == 0


def test_an_unmapped_status_is_recorded_as_unknown(app, client):
    post(client, event("GX-5", "teleported", 3))
    assert drain(app).outcomes == {"unknown_status": 1}
    shipment = generic(app, "GX-5")
    assert shipment.status == "pending" and shipment.sub_status == "teleported"


def test_a_batch_body_applies_every_event(app, client):
    batch = {"events": [event("GX-6", "shipped", 1), event("GX-7", "done", 2, carrier=42)]}
    assert post(client, batch).status_code == 200
    assert drain(app).outcomes == {"applied": 1}
    assert generic(app, "GX-6").status == "in_transit"
    assert (generic(app, "GX-7").status, generic(app, "GX-7").carrier) == ("delivered", 42)
    post(client, batch)
    assert drain(app).outcomes == {"duplicate": 1}


@pytest.mark.parametrize(
    ("secret", "headers", "status", "error"),
    [
        (SECRET, {"X-Signature": "sha256=" + "0" * 64}, 401, "bad_signature"),
        (SECRET, {}, 401, "bad_signature"),
        (SECRET, {"X-Signature": "sha256=ÿé\u00ff"}, 401, "bad_signature"),
        ("", {"X-Signature": "sha256=00"}, 503, "not_configured"),
    ],
)
def test_refusals(app, client, monkeypatch, secret, headers, status, error):
    monkeypatch.setenv("GENERIC_WEBHOOK_SECRET", secret)
    config.current.cache_clear()
    response = client.post("/webhooks/generic", data=json.dumps(event("GX-8", "done")), headers=headers)
    assert (response.status_code, response.json["error"]) == (status, error)
    with app.app_context():
        assert count(InboxEvent) == 0


def test_a_bad_status_map_refuses_pushes_and_names_the_variable(client, monkeypatch):
    monkeypatch.setenv("GENERIC_STATUS_MAP", '{"done": "finished"}')
    config.current.cache_clear()
    with pytest.raises(config.GenericConfigError, match="GENERIC_STATUS_MAP: maps to 'finished'"):
        config.load()
    response = post(client, event("GX-9", "done"))
    assert response.status_code == 503 and "GENERIC_STATUS_MAP" in response.json["message"]


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        (b"{not json", "malformed_json", "malformed JSON"),
        (b"[1, 2]", "not_a_generic_event", "expected a JSON object"),
        (b'{"status": "done"}', "not_a_generic_event", "number: Field required"),
        (b'{"number": 7, "status": "done"}', "not_a_generic_event", "number: Input should be a valid string"),
        (b'{"number": "A", "status": "done", "event_time": "soon"}', "not_a_generic_event", "event_time"),
        (b'{"events": []}', "not_a_generic_event", "events"),
    ],
)
def test_malformed_bodies_are_400(app, client, raw, error, reason):
    response = post(client, None, raw=raw)
    assert (response.status_code, response.json["error"]) == (400, error)
    assert reason in response.json["message"]


def test_registration_through_the_api_tracks_locally(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        headers = {"Authorization": f"Bearer {create_token(session, 'tests')}"}
    body = {"provider": "generic", "numbers": [" gx-10 ", "GX-10", ""]}
    results = client.post("/api/shipments", json=body, headers=headers).json["results"]
    assert [r["queued"] for r in results] == [True, False, False]
    assert "already tracked here" in results[1]["message"]
    shipment = generic(app, "GX-10")
    assert (shipment.tracking, shipment.origin, shipment.status) == ("tracking", "registered", "pending")
    post(client, event("gx-10", "done", 4))
    drain(app)
    shipment = generic(app, "GX-10")
    assert (shipment.status, shipment.tracking, shipment.origin) == ("delivered", "stopped", "registered")
    with app.app_context():
        assert count(Operation) == 0
    again = client.post("/api/shipments", json={"provider": "generic", "number": "GX-10"}, headers=headers)
    assert again.json["results"][0]["queued"] is True  # a stopped number may be tracked again


SCALARS = (
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(2**40), max_value=2**40)
    | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(max_size=20)
    | hs.sampled_from(
        ["", " ", "\ud800", "\x00", "x" * 70, "2026-11-01T08:00:00Z", "9999-12-31T23:59:59-05:00"]
    )
)
JSON = hs.recursive(
    SCALARS,
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = hs.sampled_from(["number", "status", "event_time", "description", "carrier", "event_id"])
# A genuine event with any of its fields replaced by anything: most bodies get deep into parsing.
GENUINE = hs.fixed_dictionaries(
    {"number": hs.text(min_size=1, max_size=70), "status": hs.sampled_from([*STATUS_MAP, "delivered", "??"])},
    optional={
        "event_time": hs.datetimes().map(lambda t: t.isoformat()),
        "description": hs.text(max_size=30),
        "carrier": hs.integers(min_value=-1, max_value=2**32),
        "event_id": hs.text(max_size=70),
    },
)
SHAPED = hs.builds(lambda base, changes: base | changes, GENUINE, hs.dictionaries(FIELDS, JSON, max_size=2))
BODIES = (
    JSON
    | GENUINE
    | SHAPED
    | hs.builds(lambda events: {"events": events}, hs.lists(SHAPED | GENUINE, max_size=3))
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=BODIES)
def test_any_signed_json_never_500s_nor_stays_pending(app, client, payload):
    assert post(client, payload).status_code in (200, 400)  # json.dumps escapes lone surrogates
    drain(app)
    with app.app_context(), db.new_session() as session:
        assert session.scalar(select(InboxEvent.id).where(InboxEvent.status == PENDING)) is None
