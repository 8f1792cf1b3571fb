"""Fuzzing the JSON API (issue 10, invariant 8): any query parameter, path or body gets an answer
below 500, a 4xx says why, and nothing that looks like SQL is ever run as SQL.

Each test prints and asserts its figures: sent (requests), acknowledged (answered below 500, a 4xx
with its reason), applied (accepted: 2xx), doubled (a registration or stoptrack queued twice for one
number and carrier) and lost (a shipment there before the fuzz, gone without a confirmed delete).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy import func, select

from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.operations.models import CANCELLED, Operation
from lifecycle.shipments.models import Shipment
from tests.helpers import in_transit, post_push
from tests.reliability_support.checks import Figures

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


def _is_readable(response: Any) -> bool:
    """Below 500, and a 4xx says why: a JSON body with a non-empty message."""
    if response.status_code >= 500:
        return False
    if response.status_code < 400:
        return True
    return bool(response.is_json and isinstance(response.json, dict) and response.json.get("message"))


class Api:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: Counter[int] = Counter()
        self.readable = 0  # answers below 500 that are 2xx or say why they refuse
        # The others, with the request that got them, for the final assertion's message: counted
        # rather than asserted one by one so that `readable` is a figure that can fall short.
        self.unreadable: list[tuple[str, Any, int, bytes]] = []
        self.deleted: set[str] = set()  # numbers a 2xx delete removed

    def check(self, request: str, sent: Any, response: Any) -> None:
        self.answers[response.status_code] += 1
        if _is_readable(response):
            self.readable += 1
        else:
            self.unreadable.append((request, sent, response.status_code, response.get_data()[:300]))

    def get(self, path: str, params: dict[str, str]) -> None:
        self.check(f"GET {path}", params, self.client.get(path, query_string=params, headers=self.headers))

    def post(self, path: str, body: bytes) -> None:
        headers = {**self.headers, "Content-Type": "application/json"}
        response = self.client.post(path, data=body, headers=headers)
        self.check(f"POST {path}", body[:300], response)
        if path.endswith("/delete") and response.status_code < 300:
            self.deleted.add(path.split("/")[-2])


SEEDED = [f"RR{i:09d}CN" for i in range(3)]


@pytest.fixture
def api(app, client) -> Api:  # type: ignore[no-untyped-def]
    for number in SEEDED:
        post_push(client, in_transit(number))
    from lifecycle.inbox import service as inbox

    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "fuzz")
    return Api(client, token)


def _after(app: Any, api: Api, name: str) -> None:
    with app.app_context(), db.new_session() as session:
        present = set(session.scalars(select(Shipment.number).where(Shipment.number.in_(SEEDED))))
        queued = session.execute(
            select(Operation.provider, Operation.number, Operation.carrier, Operation.kind, func.count())
            .where(Operation.kind.in_(("register", "stoptrack")), Operation.status != CANCELLED)
            .group_by(Operation.provider, Operation.number, Operation.carrier, Operation.kind)
            .having(func.count() > 1)
        ).all()
    accepted = sum(n for status, n in api.answers.items() if status < 300)
    lost = sorted(set(SEEDED) - present - api.deleted)
    Figures(
        name, api.answers.total(), api.readable, accepted, sum(row[-1] - 1 for row in queued), len(lost),
        {"answers": dict(sorted(api.answers.items())), "deleted_on_request": sorted(api.deleted)},
    ).show()  # fmt: skip
    assert api.answers.total() > 0
    assert api.readable == api.answers.total(), api.unreadable[:5]
    assert queued == [], queued
    # The table is still there and its rows untouched by anything that looked like SQL.
    assert lost == [], lost


def test_fuzzed_query_parameters_never_500(app, api):
    @FUZZ
    @given(hs.dictionaries(hs.sampled_from(QUERY_NAMES), TEXT | CURSOR, max_size=4), hs.booleans())
    def list_(params: dict[str, str], quota: bool) -> None:
        api.get("/api/quota" if quota else "/api/shipments", params)

    list_()
    _after(app, api, "fuzz api query parameters")


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
    _after(app, api, "fuzz api paths")


def test_fuzzed_bodies_never_500(app, api):
    actions = ["stop", "retrack", "sync", "change-carrier", "changeinfo", "delete"]

    @FUZZ
    @given(JSON_VALUE, hs.sampled_from(["register", *actions]), hs.sampled_from(["RR000000001CN", "RR1"]))
    def post(body: Any, action: str, number: str) -> None:
        raw = json.dumps(body).encode()
        path = "/api/shipments" if action == "register" else f"/api/shipments/17track/{number}/{action}"
        api.post(path, raw)

    post()
    _after(app, api, "fuzz api bodies")
