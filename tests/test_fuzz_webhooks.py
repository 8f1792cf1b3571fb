"""Fuzzing the provider webhooks and the worker (issue 10, invariant 8).

Hypothesis generates and mutates 17TRACK pushes and CargoAi callbacks (missing fields, wrong types,
huge strings and numbers, deep nesting, unicode, lone surrogates, nulls), signs them validly and
posts each between two genuine ones; then the real drain function applies the inbox in mixed
batches. Whatever came in: never a 500, no exception out of the drain, nothing left pending, each
bad row failed with a readable error, every genuine event applied.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy import select

from lifecycle import create_app
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.providers.cargoai import webhook as cargoai
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.shipments.models import Shipment
from simulators.seventeentrack import pushes
from tests.conftest import API_KEY
from tests.helpers import at

CARGOAI_KEY = "fuzz-cargoai-key"
# Enough to meet every kind of mutation several times, small enough for both backends in ~20 s.
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_TEXT = hs.sampled_from(
    ["", " ", "\ud800", "a\udfffb", "\x00", "é" * 3, "💥", "' OR 1=1 --", "../../etc", "\\", '"', "null"]
)
SCALARS = (
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(2**70), max_value=2**70)
    | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(max_size=30)
    | NASTY_TEXT
    | hs.just("x" * 70_000)
    | hs.just(10**4000)
)
JSON = hs.recursive(
    SCALARS,
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path inside a payload, so a mutation can hit any field the parser reads."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@hs.composite
def mutated(draw: hs.DrawFn, template: dict[str, Any]) -> bytes:
    """A genuine payload with 1-3 fields deleted or replaced, or raw bytes JSON cannot hold."""
    if draw(hs.integers(0, 9)) == 0:
        return draw(
            hs.sampled_from(
                [b"[" * 50_000 + b"]" * 50_000, b'{"event":"TRACKING_UPDATED","data":' + b"1" * 5000 + b"}",
                 b'{"awb":"\xff\xfe"}', b"{", b"", b"null"]
            )
        )  # fmt: skip
    payload = json.loads(json.dumps(template))
    for _ in range(draw(hs.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        path = draw(hs.sampled_from(paths))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(hs.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return json.dumps(payload).encode()


_serials = itertools.count(1_000_000)


def _genuine_17track() -> tuple[str, bytes]:
    number = f"GA{next(_serials)}CN"
    return number, pushes.encode(pushes.tracking_updated(number, 3011, "InTransit", None, at(1)))


def _genuine_cargoai() -> tuple[str, bytes]:
    serial = next(_serials)
    awb = f"000-{serial:07d}{serial % 7}"
    event = {"code": "DEP", "eventDate": "2026-11-01T10:00:00+01:00", "eventLocation": "CDG"}
    return awb, json.dumps({"awb": awb, "events": [event]}).encode()


PUSH = pushes.tracking_updated("FZ0000001", 3011, "Delivered", "Delivered_Other", at(2), tag="t")
CALLBACK = {
    "awb": "000-12345675",
    "oldEvents": [{"code": "BKD", "flight": {"number": "AF1"}, "eventLocation": "CDG"}],
    "events": [{"code": "DLV", "eventDate": "2026-11-02T10:00:00+01:00", "eventLocation": "JFK"}],
    "newEvents": [{"code": "DLV", "eventDate": "2026-11-02T10:00:00+01:00", "flightNumber": "AF2"}],
}


def _sign(provider: str, body: bytes) -> dict[str, str]:
    if provider == "17track":
        return {"sign": st.sign(body, API_KEY)}
    return {"cargoai-api-key": cargoai.hmac_signature(body, CARGOAI_KEY)}


class Run:
    """Posts and remembers what must come out of the drain."""

    def __init__(self, app: Any, provider: str) -> None:
        self.client, self.provider, self.app = app.test_client(), provider, app
        self.genuine: list[str] = []
        self.statuses: dict[int, int] = {}

    def post(self, body: bytes) -> int:
        response = self.client.post(
            f"/webhooks/{self.provider}", data=body, headers=_sign(self.provider, body)
        )
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, body[:200])
        if response.status_code >= 400:
            assert response.json["message"]
        return response.status_code

    def around(self, body: bytes) -> None:
        make = _genuine_17track if self.provider == "17track" else _genuine_cargoai
        for part in ("before", "poison", "after"):
            if part == "poison":
                self.post(body)
                continue
            number, genuine = make()
            assert self.post(genuine) == 200
            self.genuine.append(number)

    def check(self) -> None:
        with self.app.app_context():
            report = inbox.drain(db.new_session, batch_size=25)
            with db.new_session() as session:
                rows = list(session.execute(select(InboxEvent.status, InboxEvent.error)))
                applied = set(session.scalars(select(Shipment.number).where(Shipment.status == "in_transit")))
        failed = [error for status, error in rows if status == "failed"]
        print(f"{self.provider}: answers {self.statuses}; drained {report.outcomes}; failed {len(failed)}")
        assert not [status for status, _ in rows if status == "pending"]
        for error in failed:
            assert error and len(error) <= 500 and "Traceback" not in error
            error.encode("utf-8")  # storable and readable: no lone surrogate
        assert set(self.genuine) <= applied


@pytest.fixture
def fuzz_app(settings_factory):  # type: ignore[no-untyped-def]
    app = create_app(settings_factory(cargoai_callback_auth="hmac", cargoai_api_key=CARGOAI_KEY))
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


def test_fuzzed_17track_pushes_never_500_and_never_stall_the_inbox(fuzz_app):
    run = Run(fuzz_app, "17track")

    @FUZZ
    @given(mutated(PUSH))
    def post(body: bytes) -> None:
        run.around(body)

    post()
    run.check()


def test_fuzzed_cargoai_callbacks_never_500_and_never_stall_the_inbox(fuzz_app):
    run = Run(fuzz_app, "cargoai")

    @FUZZ
    @given(mutated(CALLBACK))
    def post(body: bytes) -> None:
        run.around(body)

    post()
    run.check()


def test_bodies_past_the_webhook_checks_fail_alone_in_the_worker(fuzz_app):
    """Rows the webhook would refuse (an older version stored them, say) still never stall the drain."""
    run = Run(fuzz_app, "17track")
    bodies = [b"[" * 50_000 + b"]" * 50_000, b"\xff", b"[]", b'{"event":1}', b'{"event":"X","data":[]}']
    with fuzz_app.app_context(), db.new_session() as session, session.begin():
        for body in bodies:
            number, genuine = _genuine_17track()
            run.genuine.append(number)
            session.add_all(
                [InboxEvent(provider="17track", body=body), InboxEvent(provider="17track", body=genuine)]
            )
        session.add(InboxEvent(provider="nobody", body=b"{}"))
    run.check()
