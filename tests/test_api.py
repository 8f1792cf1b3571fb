"""The JSON API: token auth, listing with filters and cursors, registering, lifecycle actions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lifecycle import create_app
from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations.models import Operation
from tests.helpers import delivered, in_transit, post_push


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return create_token(session, "tests")


@pytest.fixture
def api(client, token):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def get(self, path: str, **params: object):  # type: ignore[no-untyped-def]
            return client.get(path, query_string=params, headers=headers)

        def post(self, path: str, body: object):  # type: ignore[no-untyped-def]
            return client.post(path, json=body, headers=headers)

    return Api()


def drain(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        inbox.drain(db.new_session, batch_size=100)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer lcm_wrong", "Basic abc"])
def test_api_requires_a_valid_token(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/shipments", headers=headers)
    assert response.status_code == 401
    assert "create-token" in response.json["message"]


def test_list_filters_and_paginates_with_a_cursor(app, client, api):
    for i in range(5):
        post_push(client, in_transit(f"RR{i:09d}CN"))
    post_push(client, delivered("LX000000000CN"))
    drain(app)
    first = api.get("/api/shipments", limit=4).json
    assert len(first["shipments"]) == 4 and first["next_cursor"]
    second = api.get("/api/shipments", limit=4, cursor=first["next_cursor"]).json
    assert len(second["shipments"]) == 2 and second["next_cursor"] is None
    assert api.get("/api/shipments", status="delivered").json["shipments"][0]["number"] == "LX000000000CN"
    assert len(api.get("/api/shipments", q="rr").json["shipments"]) == 5
    assert api.get("/api/shipments", tracking="stopping").json["shipments"][0]["status"] == "delivered"
    assert api.get("/api/shipments", stale_days=1).json["shipments"] == []
    assert api.get("/api/shipments", cursor="!!").status_code == 400


def test_one_shipment_has_its_transitions_and_operations(app, client, api):
    post_push(client, in_transit("RR1X2"))
    post_push(client, delivered("RR1X2"))
    drain(app)
    body = api.get("/api/shipments/17track/rr1x2").json
    assert body["shipment"]["status"] == "delivered"
    assert [t["to"] for t in body["shipment"]["transitions"]] == ["in_transit", "delivered"]
    assert [o["kind"] for o in body["shipment"]["operations"]] == ["stoptrack"]
    assert api.get("/api/shipments/17track/NOPE1").status_code == 404


def test_register_reports_each_number(api):
    response = api.post(
        "/api/shipments", {"numbers": ["RR123456789CN", "bad number", "RR123456789CN"], "carrier": 3011}
    )
    assert response.status_code == 202
    results = response.json["results"]
    assert [r["queued"] for r in results] == [True, False, False]
    assert "not allowed" in results[1]["message"] and "already registered" in results[2]["message"]


def test_register_without_a_17track_key_is_refused_with_the_reason(settings_factory):
    app = create_app(settings_factory(seventeentrack_api_key=""))
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "tests")
    response = app.test_client().post(
        "/api/shipments",
        json={"numbers": ["RR123456789CN"], "carrier": 3011},
        headers={"Authorization": f"Bearer {token}"},
    )
    results = response.json["results"]
    assert [r["queued"] for r in results] == [False]
    assert "SEVENTEENTRACK_API_KEY" in results[0]["message"]
    with app.app_context(), db.new_session() as session:
        assert session.scalar(select(func.count()).select_from(Operation)) == 0
    db.engine.dispose()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ({}, 400),
        ({"shipments": [{"carrier": 1}]}, 400),
        ({"numbers": ["RR123456789CN"], "carrier": "UPS"}, 400),
        ({"numbers": [f"RR{i:09d}CN" for i in range(1001)]}, 413),
        ({"number": "RR123456789CN", "provider": "fedex"}, 422),
        ({"number": "RR123456789CN", "provider": {"name": "17track"}}, 400),  # found by the fuzz test
        ({"number": "RR123456789CN", "provider": ["17track"]}, 400),
    ],
)
def test_register_refuses_bad_requests_clearly(api, body, status):
    response = api.post("/api/shipments", body)
    assert response.status_code == status
    assert response.json["message"]


def test_lifecycle_actions_are_refused_with_the_reason(app, client, api):
    post_push(client, delivered("RR123456789CN"))
    drain(app)
    refused = api.post("/api/shipments/17track/RR123456789CN/retrack", {})
    assert refused.status_code == 409 and "only a stopped number" in refused.json["message"]
    no_confirm = api.post("/api/shipments/17track/RR123456789CN/delete", {})
    assert no_confirm.status_code == 409 and "charged again" in no_confirm.json["message"]
    deleted = api.post("/api/shipments/17track/RR123456789CN/delete", {"confirm": True})
    assert deleted.status_code == 202, deleted.json
    assert api.post("/api/shipments/17track/RR123456789CN/explode", {}).status_code == 404
