"""POST /webhooks/17track: verify before parsing, store before answering (invariants 1 and 7).

Every test runs through both front doors: Flask's WSGI stack and the ASGI app `serve` runs.
"""

from __future__ import annotations

import json

import pytest

from lifecycle import create_app
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.asgi_client import intake_client
from tests.conftest import API_KEY
from tests.helpers import count, delivered, post_push


@pytest.fixture(params=["wsgi", "asgi"])
def intake(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(app, intake):  # type: ignore[no-untyped-def]
    with intake_client(app, intake) as client:
        yield client


def test_signed_push_is_stored_verbatim_and_acknowledged(app, client):
    body = pushes.encode(delivered("RR123456789CN"))
    response = client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, API_KEY)})
    assert response.status_code == 200
    with db.new_session() as session:
        row = session.get(InboxEvent, response.json["inbox_id"])
        assert row.body == body and row.status == "pending" and row.provider == "17track"


@pytest.mark.parametrize("sign", [None, "", "0" * 64, "not-hex"])
def test_missing_or_wrong_sign_is_401_and_stores_nothing(app, client, sign):
    body = pushes.encode(delivered("RR123456789CN"))
    headers = {} if sign is None else {"sign": sign}
    response = client.post("/webhooks/17track", data=body, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "bad_signature"
    assert count(InboxEvent) == 0


def test_sign_made_with_another_key_is_refused(app, client):
    assert post_push(client, delivered("RR1"), key="someone-else").status_code == 401
    assert count(InboxEvent) == 0


def test_sign_over_reserialized_json_is_refused(app, client):
    """The signature covers the raw bytes, so a re-dumped body with other spacing must not pass."""
    payload = delivered("RR123456789CN")
    signed_for = json.dumps(payload).encode()
    sent = pushes.encode(payload)
    assert signed_for != sent
    response = client.post("/webhooks/17track", data=sent, headers={"sign": st.sign(signed_for, API_KEY)})
    assert response.status_code == 401


def test_sign_header_is_case_insensitive_hex(app, client):
    body = pushes.encode(delivered("RR123456789CN"))
    response = client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, API_KEY).upper()})
    assert response.status_code == 200


def _signed(client, body: bytes):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, API_KEY)})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[]", "not_a_17track_event"),
        (b'{"data": {"number": "RR1"}}', "not_a_17track_event"),
        (b'{"event": "TRACKING_UPDATED"}', "not_a_17track_event"),
        (b'{"event": "TRACKING_UPDATED", "data": {"carrier": 1}}', "not_a_17track_event"),
        (b'{"event": "TRACKING_UPDATED", "data": {"number": ""}}', "not_a_17track_event"),
    ],
)
def test_signed_but_malformed_or_wrong_shape_is_400_and_stores_nothing(app, client, body, error):
    response = _signed(client, body)
    assert response.status_code == 400
    assert response.json["error"] == error
    assert count(InboxEvent) == 0


def test_oversized_body_is_413_and_stores_nothing(app, client):
    payload = delivered("RR123456789CN")
    payload["data"]["padding"] = "x" * (1024 * 1024)
    response = _signed(client, pushes.encode(payload))
    assert response.status_code == 413
    assert response.json["error"] == "too_large"
    assert count(InboxEvent) == 0


@pytest.mark.parametrize(("size", "status"), [(4096, 200), (4097, 413)])
def test_limit_is_inclusive(settings_factory, intake, size, status):
    app = create_app(settings_factory(webhook_max_bytes=4096))
    payload = delivered("RR123456789CN")
    payload["data"]["tag"] = ""
    payload["data"]["tag"] = "x" * (size - len(pushes.encode(payload)))
    body = pushes.encode(payload)
    assert len(body) == size
    with intake_client(app, intake) as client:
        assert _signed(client, body).status_code == status


def test_unknown_event_kind_is_stored_not_refused(app, client):
    body = pushes.encode({"event": "TRACKING_SOMETHING_NEW", "data": {"number": "RR1"}})
    assert _signed(client, body).status_code == 200
    assert count(InboxEvent) == 1


def test_unconfigured_key_fails_closed_with_a_retryable_status(settings_factory, intake):
    app = create_app(settings_factory(seventeentrack_api_key=""))
    body = pushes.encode(delivered("RR1"))
    with intake_client(app, intake) as client:
        response = client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, "")})
    assert response.status_code == 503
    assert "SEVENTEENTRACK_API_KEY" in response.json["message"]


def test_broker_down_still_acknowledges_and_keeps_the_event(settings_factory, intake):
    app = create_app(settings_factory(broker_url="redis://127.0.0.1:1/0"))
    with intake_client(app, intake) as client:
        responses = [post_push(client, delivered(f"RR{i:09d}CN")) for i in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        with app.app_context():
            assert count(InboxEvent, InboxEvent.status == "pending") == 5
        health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "degraded" and health.json["broker"].startswith("error")


def test_database_down_answers_503_so_17track_retries(settings_factory, intake, caplog):
    app = create_app(
        settings_factory(
            database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere", broker_url="filesystem://"
        )
    )
    with intake_client(app, intake) as client:
        response = post_push(client, delivered("RR123456789CN"))
        health = client.get("/healthz")
    assert response.status_code == 503 and response.json["error"] == "storage_unavailable"
    assert health.status_code == 503 and health.json["status"] == "down"
    # The failed commit's traceback once (the writer's, per batch); the webhook's answer in one line.
    failures = ("inbox write failed", "could not store")
    stored = [r for r in caplog.records if r.getMessage().startswith(failures)]
    assert [r.exc_info is not None for r in stored] == [True, False], [r.getMessage() for r in stored]
    assert "could not store a 17track webhook (OperationalError" in stored[1].getMessage()
