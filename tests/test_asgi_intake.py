"""The ASGI front door `manage.py serve` runs (lifecycle/web/asgi.py): what only it can get wrong.

The webhook contract itself (signatures, shapes, limits, 503s) runs through both front doors in
tests/test_webhook.py; here: concurrent requests sharing a commit and each getting its own row,
bodies arriving in pieces, clients leaving mid-body, shutdown with a batch in flight, and every
other route reaching Flask unchanged.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy import func, select

from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.web.asgi import WebhookIntakeAsgi
from simulators.seventeentrack import pushes
from tests.asgi_client import AsgiClient, intake_client
from tests.conftest import API_KEY
from tests.helpers import count, delivered, wait_for


def signed(number: str) -> tuple[bytes, dict[str, str]]:
    body = pushes.encode(delivered(number))
    return body, {"sign": st.sign(body, API_KEY)}


@pytest.fixture
def asgi(app):  # type: ignore[no-untyped-def]
    with intake_client(app, "asgi") as client:
        yield client


def test_concurrent_webhooks_share_commits_and_each_gets_its_own_row(app, asgi):
    requests = [signed(f"RR{i:09d}CN") for i in range(60)]
    answers = asgi.post_many("/webhooks/17track", requests)
    assert [a.status_code for a in answers] == [200] * 60
    ids = [a.json["inbox_id"] for a in answers]
    with db.new_session() as session:
        bodies = {row.id: row.body for row in session.execute(select(InboxEvent.id, InboxEvent.body))}
        commits = session.scalar(select(func.count(func.distinct(InboxEvent.received_at))))
    # Each answer names the row holding that request's own body: ids matched to the batch's order.
    assert [bodies[i] for i in ids] == [body for body, _ in requests]
    assert len(bodies) == 60 and commits < 60


def test_a_body_in_pieces_is_stored_whole(app, asgi):
    body, headers = signed("RR123456789CN")
    for declared in (True, False):
        answer = asgi.post("/webhooks/17track", body, headers, chunks=7, declare_length=declared)
        assert answer.status_code == 200
        with db.new_session() as session:
            assert session.get(InboxEvent, answer.json["inbox_id"]).body == body


def test_a_chunked_body_over_the_limit_is_413_as_soon_as_it_is_known(settings_factory):
    from lifecycle import create_app

    app = create_app(settings_factory(webhook_max_bytes=4096))
    payload = delivered("RR123456789CN")
    payload["data"]["padding"] = "x" * 10_000
    body = pushes.encode(payload)
    with intake_client(app, "asgi") as client:
        headers = {"sign": st.sign(body, API_KEY)}
        answer = client.post("/webhooks/17track", body, headers, chunks=20, declare_length=False)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    with app.app_context():
        assert count(InboxEvent) == 0


def test_a_client_gone_mid_body_gets_no_answer_and_stores_nothing(app, asgi):
    body, headers = signed("RR123456789CN")
    answer = asgi.post("/webhooks/17track", body, headers, chunks=4, disconnect_after=2)
    assert answer is None
    assert count(InboxEvent) == 0
    assert asgi.post("/webhooks/17track", *signed("RR2")).status_code == 200  # the next one is served


def test_every_other_route_reaches_flask(app, asgi):
    assert asgi.get("/healthz").json["status"] in {"ok", "degraded"}
    assert asgi.get("/admin/sign-in").status_code == 200
    assert b"<form" in asgi.get("/admin/sign-in").data
    unknown = asgi.post("/webhooks/nobody", *signed("RR1"))
    assert unknown.status_code == 404 and unknown.json["error"] == "not_found"
    assert asgi.get("/webhooks/17track").status_code == 404  # as through Flask alone: POST is its one method
    assert count(InboxEvent) == 0


def test_shutdown_waits_for_the_batch_in_flight_and_returns_its_connection(app):
    client = AsgiClient(WebhookIntakeAsgi(app, flask_threads=2))
    intake: WebhookIntakeAsgi = client.app

    async def post_then_shut_down() -> int:
        body, headers = signed("RR123456789CN")
        request = asyncio.ensure_future(client.request("POST", "/webhooks/17track", body, headers))
        await asyncio.sleep(0)  # queued, its batch handed to the database thread
        await client._lifespan_stop()
        return (await request).status_code

    assert client.run(post_then_shut_down()) == 200
    client.stop_loop()
    assert count(InboxEvent) == 1
    assert db.engine.pool.checkedout() == 0  # type: ignore[union-attr]
    assert intake.writer._thread._shutdown


LATIN1 = hs.characters(max_codepoint=255)  # what a header value can decode to (latin-1, PEP 3333 too)
FUZZ = settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@FUZZ
@given(
    provider=hs.sampled_from(["17track", "cargoai"]),
    credential=hs.none() | hs.text(LATIN1, max_size=80),
    declared=hs.none() | hs.text(LATIN1, max_size=12) | hs.integers(-5, 10**30).map(str),
    chunks=hs.integers(1, 5),
    body=hs.binary(max_size=2000)
    | hs.sampled_from([pushes.encode(delivered("RR123456789CN")), b"{}", b"[]"]),
    signed_right=hs.booleans(),
)
def test_any_headers_and_framing_get_an_answer_below_500_and_only_200s_are_stored(
    app, asgi, provider, credential, declared, chunks, body, signed_right
):
    headers = {}
    if signed_right and provider == "17track":
        headers["sign"] = st.sign(body, API_KEY)
    elif credential is not None:
        headers["sign" if provider == "17track" else "cargoai-api-key"] = credential
    if declared is not None:
        headers["content-length"] = declared
    before = count(InboxEvent)
    answer = asgi.post(f"/webhooks/{provider}", body, headers, chunks=chunks)
    assert answer is not None and answer.status_code < 500 or answer.status_code == 503, (answer, headers)
    assert answer.json["message" if answer.status_code != 200 else "status"]
    assert count(InboxEvent) - before == (answer.status_code == 200)


def test_a_webhook_whose_commit_takes_too_long_is_503_and_its_neighbours_are_unharmed(app):
    """The provider retries the 503; the row still commits once the database answers (a duplicate
    the inbox tolerates, as any retry), and the next webhook is served as usual."""
    client = AsgiClient(WebhookIntakeAsgi(app, flask_threads=2))
    writer = client.app.writer
    writer._timeout = 0.3
    database_busy = threading.Event()
    writer._thread.submit(database_busy.wait, 30)  # the database thread is held up
    try:
        answer = client.post("/webhooks/17track", *signed("RR123456789CN"))
        assert answer.status_code == 503 and answer.json["error"] == "storage_unavailable"
    finally:
        database_busy.set()
    wait_for(lambda: count(InboxEvent) == 1, timeout=30)
    writer._timeout = 15.0
    assert client.post("/webhooks/17track", *signed("RR2")).status_code == 200
    client.close()
