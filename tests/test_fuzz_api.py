"""Fuzzing the JSON API (issue 10, invariant 8): any query parameter, path or body gets an answer
below 500, a 4xx says why, and nothing that looks like SQL is ever run as SQL."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.shipments.models import Shipment
from tests.helpers import count, in_transit, post_push

# Enough to meet every kind of odd input several times, small enough for both backends in ~20 s.
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY = hs.sampled_from(
    [
        "", " ", "'", '"', "/", "//", "\\", "%", "_", "%00", "\x00", "..", "../..", "' OR '1'='1",
        "1; DROP TABLE shipments; --", "\" OR \"\"=\"", "RR1' --", "é", "💥", "\u202e", "\ufeff", "x" * 5000,
        "9" * 30, "-1", "0", "inf", "nan", "1e10", "2026-13", "9999-12", "0001-01",
        "null", "true", "[]", "{}",
    ]
)  # fmt: skip
TEXT = NASTY | hs.text(max_size=20) | hs.builds(lambda a, b: a + b, NASTY, hs.text(max_size=5))
CURSOR = TEXT | hs.builds(lambda n: base64.urlsafe_b64encode(str(n).encode()).decode(), hs.integers())
KEYS = ["number", "numbers", "shipments", "carrier", "tag", "lang", "provider", "mode", "emails"]
KEYS += ["airline_code", "to", "carrier_new", "confirm"]
JSON_VALUE = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-(2**70), 2**70) | hs.floats(allow_nan=False) | TEXT,
    lambda inner: (
        hs.lists(inner, max_size=3) | hs.dictionaries(TEXT | hs.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=10,
)
QUERY_NAMES = ["provider", "status", "tracking", "q", "stale_days", "limit", "cursor", "carrier", "period"]


class Api:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: dict[int, int] = {}

    def check(self, response: Any) -> None:
        self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.get_data()[:300])
        if response.status_code >= 400:
            assert response.is_json and response.json["message"], response.get_data()[:300]

    def get(self, path: str, params: dict[str, str]) -> None:
        self.check(self.client.get(path, query_string=params, headers=self.headers))

    def post(self, path: str, body: bytes) -> None:
        headers = {**self.headers, "Content-Type": "application/json"}
        self.check(self.client.post(path, data=body, headers=headers))


@pytest.fixture
def api(app, client) -> Api:  # type: ignore[no-untyped-def]
    for i in range(3):
        post_push(client, in_transit(f"RR{i:09d}CN"))
    from lifecycle.inbox import service as inbox

    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "fuzz")
    return Api(client, token)


def _after(app: Any, api: Api) -> None:
    print(f"answers: {api.answers}")
    with app.app_context():
        # The table is still there and its rows untouched by anything that looked like SQL.
        assert count(Shipment, Shipment.number.like("RR%CN")) >= 3


def test_fuzzed_query_parameters_never_500(app, api):
    @FUZZ
    @given(hs.dictionaries(hs.sampled_from(QUERY_NAMES), TEXT | CURSOR, max_size=4), hs.booleans())
    def list_(params: dict[str, str], quota: bool) -> None:
        api.get("/api/quota" if quota else "/api/shipments", params)

    list_()
    _after(app, api)


def test_fuzzed_paths_never_500(app, api):
    @FUZZ
    @given(TEXT | hs.sampled_from(["17track", "cargoai"]), TEXT, hs.sampled_from(["", "stop", "explode"]))
    def show(provider: str, number: str, action: str) -> None:
        path = f"/api/shipments/{quote(provider, safe='')}/{quote(number, safe='')}"
        if action:
            api.post(f"{path}/{action}", b"{}")
        else:
            api.get(path, {"carrier": "3011"})

    show()
    _after(app, api)


def test_fuzzed_bodies_never_500(app, api):
    actions = ["stop", "retrack", "sync", "change-carrier", "changeinfo", "delete"]

    @FUZZ
    @given(JSON_VALUE, hs.sampled_from(["register", *actions]), hs.sampled_from(["RR000000001CN", "RR1"]))
    def post(body: Any, action: str, number: str) -> None:
        raw = json.dumps(body).encode()
        path = "/api/shipments" if action == "register" else f"/api/shipments/17track/{number}/{action}"
        api.post(path, raw)

    post()
    _after(app, api)
