"""Requests that used to get a 500 (issue 10): each now gets a 4xx with a message that says why."""

from __future__ import annotations

import base64
import io
import threading

import pytest
import requests
from werkzeug.serving import make_server

from lifecycle import create_app
from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.providers.cargoai import webhook as cargoai
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.asgi_client import intake_client
from tests.conftest import API_KEY
from tests.helpers import count, delivered

CARGOAI_KEY = "cargoai-secret"


@pytest.fixture
def headers(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return {"Authorization": f"Bearer {create_token(session, 'tests')}"}


def _signed(client, body: bytes):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, API_KEY)})


@pytest.mark.parametrize("intake", ["wsgi", "asgi"])
@pytest.mark.parametrize("sign", ["é" * 64, "\u00ff", "ab\u00e9cd"])
def test_non_ascii_sign_header_is_401(app, intake, sign):
    with intake_client(app, intake) as client:
        response = client.post(
            "/webhooks/17track", data=pushes.encode(delivered("RR1")), headers={"sign": sign}
        )
    assert response.status_code == 401 and response.json["error"] == "bad_signature"


@pytest.mark.parametrize("intake", ["wsgi", "asgi"])
@pytest.mark.parametrize("auth", ["hmac", "bearer"])
def test_non_ascii_cargoai_credentials_are_401(settings_factory, auth, intake):
    app = create_app(
        settings_factory(cargoai_callback_auth=auth, cargoai_api_key=CARGOAI_KEY, cargoai_callback_token="t")
    )
    body = b'{"awb":"000-12345675","events":[]}'
    header = {"cargoai-api-key": "ÿé"} if auth == "hmac" else {"Authorization": "Bearer é"}
    good = {"cargoai-api-key": cargoai.hmac_signature(body, CARGOAI_KEY)}
    with intake_client(app, intake) as client:
        assert client.post("/webhooks/cargoai", data=body, headers=header).status_code == 401
        if auth == "hmac":
            assert client.post("/webhooks/cargoai", data=body, headers=good).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"event":"TRACKING_UPDATED","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"event":"TRACKING_UPDATED","data":{"number":"RR1","carrier":' + b"9" * 5000 + b"}}",
    ],
    ids=["deeply-nested", "huge-integer"],
)
def test_signed_json_python_cannot_read_is_400(app, client, body):
    response = _signed(client, body)
    assert response.status_code == 400 and response.json["error"] == "malformed_json"
    assert response.json["message"].startswith("malformed JSON")
    assert count(InboxEvent) == 0


def test_chunked_body_over_the_limit_is_413_not_cut_and_401(settings_factory):
    app = create_app(settings_factory(webhook_max_bytes=4096))
    payload = delivered("RR123456789CN")
    payload["data"]["tag"] = "x" * 5000
    body = pushes.encode(payload)
    response = app.test_client().post(
        "/webhooks/17track",
        input_stream=io.BytesIO(body),
        headers={"sign": st.sign(body, API_KEY), "Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and response.json["error"] == "too_large"
    with app.app_context():
        assert count(InboxEvent) == 0


def test_chunked_body_within_the_limit_is_stored_whole(app, client):
    body = pushes.encode(delivered("RR123456789CN"))
    response = client.post(
        "/webhooks/17track",
        input_stream=io.BytesIO(body),
        headers={"sign": st.sign(body, API_KEY), "Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    with db.new_session() as session:
        assert session.get(InboxEvent, response.json["inbox_id"]).body == body


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/quota?period=2026-13", "period"),
        ("/api/quota?period=2026-00", "period"),
        ("/api/quota?period=9999-12", "period"),
        ("/api/shipments?stale_days=inf", "stale_days"),
        ("/api/shipments?stale_days=nan", "stale_days"),
        ("/api/shipments?stale_days=1e10", "stale_days"),
        ("/api/shipments?stale_days=-1", "stale_days"),
        ("/api/shipments?limit=0", "limit"),
        ("/api/shipments?limit=-5", "limit"),
        ("/api/shipments?limit=abc", "limit"),
        ("/api/shipments?cursor=" + base64.urlsafe_b64encode(str(2**64).encode()).decode(), "cursor"),
        ("/api/shipments?cursor=LTE=", "cursor"),
        ("/api/shipments/17track/RR1?carrier=" + "9" * 20, "carrier"),
        ("/api/shipments/17track/RR1?carrier=x", "carrier"),
        ("/api/shipments?q=RR%00", "q"),
        ("/api/shipments/17track/RR%001", "number"),
    ],
)
def test_bad_query_parameters_are_400(client, headers, path, fragment):
    response = client.get(path, headers=headers)
    assert response.status_code == 400, response.json
    assert fragment in response.json["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"shipments": ["abc"]},
        {"shipments": "abc"},
        {"numbers": 5},
        {"numbers": [["RR123456789CN"]]},
        {"number": "RR123456789CN", "tag": ["a", "b"]},
        {"number": "RR123456789CN", "tag": "x" * 129},
        {"number": "RR123456789CN", "lang": "x" * 17},
        {"number": "RR123456789CN", "carrier": 2**63},
        {"number": "RR123456789CN", "carrier": -1},
        {"number": "RR123456789CN", "emails": "a@b.c"},
        {"number": "RR\ud800123"},
        {"number": "R" * 101},
    ],
)
def test_malformed_registration_bodies_are_400(client, headers, body):
    response = client.post("/api/shipments", json=body, headers=headers)
    assert response.status_code == 400, response.json
    assert response.json["message"]


def test_registration_json_python_cannot_read_is_400(client, headers):
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"numbers":[' + b"1" * 5000 + b"]}"):
        response = client.post(
            "/api/shipments", data=raw, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400 and "malformed JSON" in response.json["message"]


@pytest.mark.parametrize(
    "raw", [b"[1]", b'"x"', b"1", b"null", b"{", b'{"carrier": "UPS"}', b'{"carrier": 99999999999999999999}']
)
def test_malformed_action_bodies_are_400(client, headers, raw):
    response = client.post(
        "/api/shipments/17track/RR123456789CN/stop",
        data=raw,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.json
    assert response.json["message"]


def test_change_carrier_to_a_carrier_beyond_32_bits_is_400(client, headers):
    response = client.post(
        "/api/shipments/17track/RR123456789CN/change-carrier", json={"carrier_new": 2**40}, headers=headers
    )
    assert response.status_code == 400 and "carrier_new" in response.json["message"]


def test_change_carrier_without_the_new_carrier_is_400(client, headers):
    response = client.post("/api/shipments/17track/RR123456789CN/change-carrier", json={}, headers=headers)
    assert response.status_code == 400 and '"to"' in response.json["message"]


def test_chunked_body_over_the_limit_is_413_through_a_real_server(settings_factory):
    """The reported case: a real WSGI server, which passes chunked bodies without a length."""
    app = create_app(settings_factory(webhook_max_bytes=4096))
    payload = delivered("RR123456789CN")
    payload["data"]["tag"] = "x" * 5000
    body = pushes.encode(payload)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
        response = requests.post(
            f"http://127.0.0.1:{server.server_port}/webhooks/17track",
            data=chunks,
            headers={"sign": st.sign(body, API_KEY)},
            timeout=10,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 413 and response.json()["error"] == "too_large"
