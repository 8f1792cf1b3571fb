"""Outbound events: signed, retried, in order per shipment, disabled on failure, replayed, filtered."""

from __future__ import annotations

import socket
from collections import defaultdict

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from lifecycle.cleanup.models import JobAlert
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.outbound import endpoints
from lifecycle.outbound.models import DELIVERED, PENDING, Delivery, DeliveryAttempt, OutboundEvent
from lifecycle.shipments.models import Transition
from tests.helpers import count, delivered, in_transit, post_push, wait_for
from tests.outbound_support import (
    FAST_RETRIES,
    EventReceiver,
    add_endpoint,
    deliveries,
    drain,
    endpoint,
    exception,
    send,
)


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    with EventReceiver() as server:
        yield server


def test_the_signature_verifies_with_the_standard_webhooks_library(app, client, receiver):
    _, secret = add_endpoint(app, receiver.url)
    post_push(client, delivered("RR1"))
    drain(app)
    assert send(app)["delivered"] == 1
    [sent] = receiver.requests
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    payload = Webhook(secret).verify(sent["body"], headers)
    assert payload["type"] == "delivered" and headers["webhook-id"] == payload["id"]
    assert payload["data"]["shipment"]["number"] == "RR1"
    assert payload["data"]["transition"]["to"] == "delivered"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(sent["body"].replace(b"RR1", b"RR2"), headers)


def test_a_receiver_down_for_a_while_gets_everything_in_order_per_shipment(settings_factory, receiver):
    from lifecycle import create_app

    app = create_app(settings_factory(**FAST_RETRIES))
    add_endpoint(app, receiver.url)
    numbers = ("RR1", "RR2", "RR3")
    for number in numbers:
        for push in (in_transit(number, 10), exception(number, 20), delivered(number, 30)):
            post_push(app.test_client(), push)
    drain(app)
    receiver.down = True
    for _ in range(3):
        wait_for(lambda: send(app)["retrying"], timeout=10, interval=0.05)
    # While the first event of each shipment fails, the ones behind it are not sent at all.
    tried = {(r["body"].count(b"in_transit") > 0) for r in receiver.requests}
    assert tried == {True} and len(receiver.requests) >= 9
    receiver.down = False
    wait_for(lambda: send(app) and all(d.status == DELIVERED for d in deliveries(app)), timeout=30)
    seen = defaultdict(list)
    for body in receiver.accepted():
        seen[body["data"]["shipment"]["number"]].append(body["type"])
    assert seen == {number: ["in_transit", "exception", "delivered"] for number in numbers}


def test_a_slow_receiver_times_out_and_is_retried(settings_factory, receiver):
    from lifecycle import create_app

    app = create_app(settings_factory(outbound_timeout_seconds=0.3, **FAST_RETRIES))
    add_endpoint(app, receiver.url)
    post_push(app.test_client(), delivered("RR1"))
    drain(app)
    receiver.delay, receiver.slow = 1.0, 1
    wait_for(lambda: send(app)["delivered"], timeout=10, interval=0.05)
    [delivery] = deliveries(app)
    assert delivery.status == DELIVERED and delivery.attempts == 2
    with app.app_context(), db.new_session() as session:
        attempts = list(session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))
    assert [a.ok for a in attempts] == [False, True]
    assert attempts[0].status_code is None and "Timeout" in attempts[0].response_excerpt
    assert attempts[0].latency_ms >= 300
    assert attempts[1].status_code == 200 and attempts[1].response_excerpt == "ok"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_an_endpoint_failing_repeatedly_is_disabled_with_an_alert(settings_factory):
    from lifecycle import create_app

    app = create_app(
        settings_factory(outbound_disable_after_failures=3, outbound_disable_after_hours=0, **FAST_RETRIES)
    )
    endpoint_id, _ = add_endpoint(app, _closed_port_url())
    post_push(app.test_client(), delivered("RR1"))
    drain(app)
    wait_for(lambda: send(app)["disabled"], timeout=20, interval=0.05)
    gone = endpoint(app, endpoint_id)
    assert not gone.enabled and "3 consecutive failures" in gone.disabled_reason
    with app.app_context():
        assert count(JobAlert, JobAlert.key == f"outbound:disabled:{endpoint_id}") == 1
    # Nothing is sent to a disabled endpoint; its delivery waits, and enabling resumes it.
    [waiting] = deliveries(app)
    assert waiting.status == PENDING and waiting.attempts == 3
    assert send(app)["retrying"] == 0
    with app.app_context(), db.new_session() as session, session.begin():
        endpoints.set_enabled(session, endpoint_id, True)
    with app.app_context():
        assert count(JobAlert, JobAlert.resolved_at.is_(None)) == 0
    assert endpoint(app, endpoint_id).consecutive_failures == 0


def test_replay_sends_one_event_again_and_then_a_time_range(app, client, receiver):
    endpoint_id, _ = add_endpoint(app, receiver.url)
    post_push(client, in_transit("RR1", 10))
    post_push(client, delivered("RR1", 30))
    post_push(client, delivered("RR2", 30))
    drain(app)
    send(app)
    ids = {(b["data"]["shipment"]["number"], b["type"]): b["id"] for b in receiver.accepted()}
    assert len(ids) == 3
    with app.app_context(), db.new_session() as session, session.begin():
        assert endpoints.replay_event(session, ids["RR1", "delivered"]) == 1
    send(app)
    assert [body["id"] for body in receiver.accepted()][3:] == [ids["RR1", "delivered"]]
    with app.app_context(), db.new_session() as session, session.begin():
        since = session.scalar(select(func.min(OutboundEvent.created_at)))
        assert endpoints.replay_range(session, since, None, endpoint_id) == 3
    send(app)
    again = [body["id"] for body in receiver.accepted()][4:]
    # The same events (same webhook-id); RR1's two still in their order, RR2's may come between.
    assert sorted(again) == sorted(ids.values())
    assert again.index(ids["RR1", "in_transit"]) < again.index(ids["RR1", "delivered"])


def test_endpoints_get_only_the_event_types_they_asked_for(app, client, receiver):
    add_endpoint(app, receiver.url, ["delivered"])
    post_push(client, in_transit("RR1", 10))
    post_push(client, exception("RR1", 20))
    post_push(client, delivered("RR1", 30))
    drain(app)
    with app.app_context():
        assert count(OutboundEvent) == 3  # every transition is an event…
    send(app)
    assert [body["type"] for body in receiver.accepted()] == ["delivered"]  # …sent where it is wanted


def test_a_rolled_back_transition_leaves_no_outbound_event(app, client, receiver):
    add_endpoint(app, receiver.url)
    post_push(client, delivered("RR1"))

    class Crash(Exception):
        pass

    with app.app_context(), pytest.raises(Crash), db.new_session() as session, session.begin():
        outcomes, _ = inbox.process_batch(session, 10)
        assert outcomes and session.scalar(select(func.count()).select_from(OutboundEvent)) == 1
        raise Crash
    with app.app_context():
        assert count(Transition) == count(OutboundEvent) == 0 and deliveries(app) == []
        assert count(InboxEvent, InboxEvent.status == "pending") == 1
    drain(app)
    with app.app_context():
        assert count(Transition) == count(OutboundEvent) == 1 and len(deliveries(app)) == 1


def test_the_default_retries_span_over_a_day_and_the_first_comes_within_a_minute(monkeypatch):
    from config.settings import Settings
    from lifecycle.outbound import claims
    from lifecycle.outbound.job import options

    policy = options(Settings(_env_file=None)).policy  # type: ignore[call-arg]
    first_retry = [policy.delay(1) for _ in range(200)]
    assert max(first_retry) < 60 and min(first_retry) >= 30
    # Jitter only lengthens the waits, so the span without it is the shortest there is: the last
    # try still comes a day and one longest wait after the first (a margin, not a bare day).
    monkeypatch.setattr(claims.random, "uniform", lambda low, high: low)
    span = sum(policy.delay(attempt) for attempt in range(1, policy.max_attempts))
    assert span >= 24 * 3600 + policy.max_seconds


def test_two_senders_at_once_send_each_delivery_exactly_once(app, client, receiver):
    import threading

    add_endpoint(app, receiver.url)
    for number in range(40):
        post_push(client, in_transit(f"RR{number}", 10))
        post_push(client, delivered(f"RR{number}", 30))
    drain(app)
    receiver.delay, receiver.slow = 0.01, 80
    senders = [threading.Thread(target=send, args=(app,)) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    send(app)  # what one sender found blocked behind the other's claim
    ids = [body["id"] for body in receiver.accepted()]
    assert len(ids) == len(set(ids)) == 80
    order = defaultdict(list)
    for body in receiver.accepted():
        order[body["data"]["shipment"]["number"]].append(body["type"])
    assert set(map(tuple, order.values())) == {("in_transit", "delivered")}


def test_cargoai_transitions_become_events_too(app, receiver):
    from lifecycle.providers import registry
    from lifecycle.shipments.apply import apply_bodies

    add_endpoint(app, receiver.url, ["delivered"])
    body = b'{"awb": "176-12345675", "events": [{"code": "RCS", "eventDate": "2026-11-01T10:00:00Z"},' \
        b' {"code": "DLV", "eventDate": "2026-11-02T10:00:00Z"}]}'  # fmt: skip
    with app.app_context(), db.new_session() as session, session.begin():
        cargoai = registry.get("cargoai")
        apply_bodies(session, cargoai, [(None, cargoai.parse(body))])
    send(app)
    [sent] = receiver.accepted()
    assert sent["type"] == "delivered" and sent["data"]["shipment"]["provider"] == "cargoai"
    assert sent["data"]["transition"]["sub_status"] == "DLV"


def test_an_event_given_up_lets_the_next_one_of_its_shipment_go(settings_factory, receiver):
    from lifecycle import create_app

    app = create_app(settings_factory(**(FAST_RETRIES | {"outbound_max_attempts": 2})))
    add_endpoint(app, receiver.url)
    post_push(app.test_client(), in_transit("RR1", 10))
    post_push(app.test_client(), delivered("RR1", 30))
    drain(app)
    receiver.refuse = b'"type":"in_transit"'
    wait_for(lambda: send(app) and deliveries(app)[-1].status == DELIVERED, timeout=20, interval=0.05)
    first = deliveries(app)[0]
    assert (first.status, first.attempts, first.last_error) == ("failed", 2, "HTTP 503")
    assert [body["type"] for body in receiver.accepted()] == ["delivered"]


def test_with_private_addresses_refused_nothing_is_sent_to_loopback(settings_factory, receiver):
    from lifecycle import create_app

    app = create_app(settings_factory(outbound_allow_private=False))
    add_endpoint(app, receiver.url)  # registered while allowed (or before the setting changed)
    post_push(app.test_client(), delivered("RR1"))
    drain(app)
    assert send(app)["retrying"] == 1
    assert receiver.requests == []
    with app.app_context(), db.new_session() as session:
        attempt = session.scalars(select(DeliveryAttempt)).one()
    assert "non-public address 127.0.0.1" in attempt.response_excerpt


def test_a_delivery_claimed_by_a_worker_that_died_is_sent_after_its_lease(app, client, receiver):
    from datetime import timedelta

    from lifecycle.db import utcnow
    from lifecycle.outbound import claims

    add_endpoint(app, receiver.url)
    post_push(client, delivered("RR1"))
    drain(app)
    with app.app_context(), db.new_session() as session, session.begin():
        assert len(claims.claim(session, 10)) == 1  # …and the claiming worker is killed here
    assert send(app)["delivered"] == 0 and receiver.requests == []
    with app.app_context(), db.new_session() as session, session.begin():
        session.get(Delivery, deliveries(app)[0].id).claimed_at = utcnow() - timedelta(hours=1)
    report = send(app)
    assert (report["released"], report["delivered"]) == (1, 1)
