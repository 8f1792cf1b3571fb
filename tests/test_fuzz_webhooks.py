"""Fuzzing the provider webhooks and the worker (issue 10, invariant 8).

Hypothesis generates and mutates 17TRACK pushes and CargoAi callbacks (missing fields, wrong types,
huge strings and numbers, deep nesting, unicode, lone surrogates, nulls), signs them validly and
posts each between two genuine ones, through both front doors (Flask's WSGI stack and the ASGI app
`serve` runs), which must answer it alike; then the real drain function applies the inbox in mixed
batches. Whatever came in: never a 500, no exception out of the drain, nothing left pending, each
bad row failed with a readable error, every genuine event applied.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select

from lifecycle import create_app
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.shipments.models import Shipment, Transition
from tests.asgi_client import AsgiClient, intake_client
from tests.conftest import API_KEY
from tests.reliability_support.fuzz import CALLBACK, PUSH, fuzz_figures, genuine, mutated, readable, signed

CARGOAI_KEY = "fuzz-cargoai-key"
KEYS = {"17track": API_KEY, "cargoai": CARGOAI_KEY}
# Enough to meet every kind of mutation several times, small enough for both backends in ~20 s.
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Run:
    """Posts, and remembers what must come out of the drain: every genuine event applied once."""

    def __init__(self, app: Any, provider: str, asgi: AsgiClient) -> None:
        self.clients = {"wsgi": app.test_client(), "asgi": asgi}
        self.provider, self.app = provider, app
        self.genuine: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.stored_directly = 0  # rows put in the inbox without the webhook

    def post(self, body: bytes, via: str = "wsgi") -> int:
        headers = signed(self.provider, body, KEYS[self.provider])
        response = self.clients[via].post(f"/webhooks/{self.provider}", data=body, headers=headers)
        self.statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, body[:200])
        if response.status_code >= 400:
            assert response.json["message"]
        return response.status_code

    def around(self, body: bytes) -> None:
        for part in ("before", "poison", "after"):
            via = "wsgi" if part == "before" else "asgi"
            if part == "poison":
                assert self.post(body, "wsgi") == self.post(body, "asgi"), body[:200]
                continue
            number, payload = genuine(self.provider)
            assert self.post(payload, via) == 200
            self.genuine.append(number)

    def check(self, name: str) -> None:
        with self.app.app_context():
            report = inbox.drain(db.new_session, batch_size=25)
            with db.new_session() as session:
                rows = list(session.execute(select(InboxEvent.status, InboxEvent.error)))
                history = _history(session, self.genuine)
        failed = [error for status, error in rows if status == "failed"]
        figures = fuzz_figures(
            name, self.statuses.total() + self.stored_directly, self.statuses[200] + self.stored_directly,
            self.genuine, history, answers=dict(sorted(self.statuses.items())), stored=len(rows),
            failed=len(failed), drained=report.outcomes,
        )  # fmt: skip
        assert not [status for status, _ in rows if status == "pending"]
        assert [error for error in failed if not readable(error)] == []
        assert (figures.applied, figures.doubled, figures.lost) == (len(self.genuine), 0, 0)


def _history(session: Any, numbers: list[str]) -> Counter[str]:
    """History rows per number (the genuine ones were applied once each if 1)."""
    query = (
        select(Shipment.number, func.count(Transition.id))
        .join(Transition, Transition.shipment_id == Shipment.id)
        .where(Shipment.number.in_(numbers), Shipment.status == "in_transit")
        .group_by(Shipment.number)
    )
    return Counter(dict(session.execute(query).all()))


@pytest.fixture
def fuzz_app(settings_factory):  # type: ignore[no-untyped-def]
    app = create_app(settings_factory(cargoai_callback_auth="hmac", cargoai_api_key=CARGOAI_KEY))
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.fixture
def asgi(fuzz_app):  # type: ignore[no-untyped-def]
    with intake_client(fuzz_app, "asgi") as client:
        yield client


def test_fuzzed_17track_pushes_never_500_and_never_stall_the_inbox(fuzz_app, asgi):
    run = Run(fuzz_app, "17track", asgi)

    @FUZZ
    @given(mutated(PUSH))
    def post(body: bytes) -> None:
        run.around(body)

    post()
    run.check("fuzz 17track")


def test_fuzzed_cargoai_callbacks_never_500_and_never_stall_the_inbox(fuzz_app, asgi):
    run = Run(fuzz_app, "cargoai", asgi)

    @FUZZ
    @given(mutated(CALLBACK))
    def post(body: bytes) -> None:
        run.around(body)

    post()
    run.check("fuzz cargoai")


def test_bodies_past_the_webhook_checks_fail_alone_in_the_worker(fuzz_app, asgi):
    """Rows the webhook would refuse (an older version stored them, say) still never stall the drain."""
    run = Run(fuzz_app, "17track", asgi)
    bodies = [b"[" * 50_000 + b"]" * 50_000, b"\xff", b"[]", b'{"event":1}', b'{"event":"X","data":[]}']
    with fuzz_app.app_context(), db.new_session() as session, session.begin():
        for body in bodies:
            number, payload = genuine("17track")
            run.genuine.append(number)
            session.add_all(
                [InboxEvent(provider="17track", body=body), InboxEvent(provider="17track", body=payload)]
            )
        session.add(InboxEvent(provider="nobody", body=b"{}"))
    run.stored_directly = 2 * len(bodies) + 1
    run.check("fuzz past the webhook")
