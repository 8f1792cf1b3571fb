"""Inbox processing: state machine, duplicates, out-of-order, adoption, poison rows, concurrency."""

from __future__ import annotations

import threading

from sqlalchemy import insert, select

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment, Transition
from simulators.seventeentrack import pushes
from tests.helpers import at, count, delivered, in_transit, post_push, shipment


def drain(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return inbox.drain(db.new_session, batch_size=50)


def test_push_for_unknown_number_adopts_the_shipment(app, client):
    post_push(client, in_transit("LX123456789CN", carrier=3011))
    drain(app)
    with app.app_context():
        adopted = shipment("LX123456789CN")
        assert adopted.origin == "adopted" and adopted.tracking == "tracking"
        assert (adopted.status, adopted.sub_status, adopted.carrier) == (
            "in_transit",
            "InTransit_PickedUp",
            3011,
        )
        assert adopted.last_event_at == at(10)


def test_same_push_three_times_gives_one_transition_and_one_stoptrack(app, client):
    for _ in range(3):
        assert post_push(client, delivered("RR1")).status_code == 200
    report = drain(app)
    assert report.outcomes == {"applied": 1, "duplicate": 2}
    with app.app_context():
        assert count(Transition) == 1
        assert count(Operation, Operation.kind == "stoptrack") == 1
        assert shipment("RR1").tracking == "stopping"


def test_duplicates_across_batches_change_nothing(app, client):
    post_push(client, delivered("RR1"))
    drain(app)
    post_push(client, delivered("RR1"))
    assert drain(app).outcomes == {"duplicate": 1}
    with app.app_context():
        assert count(Transition) == 1 and count(Operation) == 1


def test_older_push_after_delivered_is_kept_in_history_but_leaves_it_delivered(app, client):
    post_push(client, delivered("RR1", hours=48))
    post_push(client, in_transit("RR1", hours=10))
    assert drain(app).outcomes == {"applied": 1, "stale": 1}
    with app.app_context():
        current = shipment("RR1")
        assert current.status == "delivered" and current.last_event_at == at(48)
        with db.new_session() as session:
            kinds = session.execute(
                select(Transition.kind, Transition.to_status).order_by(Transition.id)
            ).all()
        assert kinds == [("transition", "delivered"), ("stale", "in_transit")]


def test_out_of_order_delivery_ends_in_the_newest_state(app, client):
    timeline = [
        pushes.tracking_updated("RR1", 3011, "InfoReceived", "InfoReceived", at(1)),
        pushes.tracking_updated("RR1", 3011, "InTransit", "InTransit_PickedUp", at(5)),
        pushes.tracking_updated("RR1", 3011, "OutForDelivery", "OutForDelivery_Other", at(30)),
    ]
    for payload in reversed(timeline):
        post_push(client, payload)
    drain(app)
    with app.app_context():
        assert shipment("RR1").status == "out_for_delivery"
        assert count(Transition, Transition.kind == "stale") == 2


def test_terminal_state_needs_a_strictly_newer_event(app, client):
    post_push(client, delivered("RR1", hours=48))
    drain(app)
    same_time = pushes.tracking_updated("RR1", 3011, "Exception", "Exception_Other", at(48))
    post_push(client, same_time)
    newer = pushes.tracking_updated("RR1", 3011, "Exception", "Exception_Returning", at(49))
    drain(app)
    with app.app_context():
        assert shipment("RR1").status == "delivered"
    post_push(client, newer)
    drain(app)
    with app.app_context():
        assert shipment("RR1").status == "returning"


def test_unknown_status_is_kept_verbatim_and_does_not_crash(app, client):
    post_push(client, in_transit("RR1", hours=1))
    post_push(client, pushes.tracking_updated("RR1", 3011, "Teleported", "Teleported_Mars", at(2)))
    assert drain(app).outcomes == {"applied": 1, "unknown_status": 1}
    with app.app_context():
        current = shipment("RR1")
        assert current.status == "in_transit" and current.sub_status == "Teleported/Teleported_Mars"


def test_unknown_event_kind_is_reported_not_applied(app, client):
    post_push(client, {"event": "TRACKING_REROUTED", "data": {"number": "RR1", "carrier": 3011}})
    assert drain(app).outcomes == {"unknown_event": 1}
    with app.app_context():
        assert count(Shipment) == 0
        assert count(InboxEvent, InboxEvent.outcome == "unknown_event", InboxEvent.status == "processed") == 1


def test_poison_row_is_marked_failed_and_does_not_block_the_batch(app, client):
    post_push(client, in_transit("RR1"))
    poison = b'{"event":"TRACKING_UPDATED","data":{"number":"RR2","carrier":"DHL","track_info":{}}}'
    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(insert(InboxEvent).values(provider="17track", body=poison))
    post_push(client, delivered("RR3"))
    report = drain(app)
    assert report.processed == 2 and report.failed == 1
    with app.app_context():
        with db.new_session() as session:
            failed = session.scalars(select(InboxEvent).where(InboxEvent.status == "failed")).one()
        assert "data.carrier: Input should be a valid integer" in failed.error
        assert shipment("RR1").status == "in_transit" and shipment("RR3").status == "delivered"


def test_tracking_stopped_push_stops_the_shipment_and_cancels_the_pending_stoptrack(app, client):
    post_push(client, delivered("RR1"))
    drain(app)
    post_push(client, pushes.tracking_stopped("RR1", 3011))
    post_push(client, pushes.tracking_stopped("RR1", 3011))
    assert drain(app).outcomes == {"stopped": 1, "duplicate": 1}
    with app.app_context():
        assert shipment("RR1").tracking == "stopped" and shipment("RR1").stopped_at is not None
        with db.new_session() as session:
            operation = session.scalars(select(Operation)).one()
        assert operation.status == "cancelled"


def test_push_carrier_fills_in_an_auto_detected_registration(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(Shipment(provider="17track", number="RR9", carrier=0, tracking="tracking"))
    post_push(client, in_transit("RR9", carrier=21051))
    drain(app)
    with app.app_context():
        assert count(Shipment) == 1
        assert shipment("RR9").carrier == 21051 and shipment("RR9").origin == "registered"


def test_two_workers_draining_the_same_inbox_never_double_apply(app, client):
    numbers = [f"RR{i:04d}" for i in range(60)]
    for hours in (1, 5, 48):
        for number in numbers:
            status = "Delivered" if hours == 48 else "InTransit"
            post_push(client, pushes.tracking_updated(number, 3011, status, None, at(hours)))
            post_push(client, pushes.tracking_updated(number, 3011, status, None, at(hours)))
    errors: list[BaseException] = []
    reports = []

    def worker() -> None:
        try:
            with app.app_context():
                reports.append(inbox.drain(db.new_session, batch_size=25))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    outcomes: dict[str, int] = {}
    for report in reports:
        for outcome, n in report.outcomes.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    assert sum(outcomes.values()) == 360
    assert outcomes.get("duplicate") == 180
    with app.app_context():
        assert count(InboxEvent, InboxEvent.status == "pending") == 0
        assert count(Transition) == 180
        assert count(Operation) == 60
        assert count(Shipment, Shipment.status == "delivered") == 60


def test_a_drain_slice_hands_the_worker_back_and_queues_its_continuation(app, client, monkeypatch):
    """Issue 11, fairness: a drain task stops after its slice of time (at least one batch each), so a
    stoptrack flush waiting in the provider queue gets the worker process; it signals itself to
    go on, and the continuations together apply everything exactly once."""
    from lifecycle import jobs, runtime

    for number in (f"RS{i:04d}" for i in range(30)):
        post_push(client, delivered(number))
    signals: list[str] = []
    monkeypatch.setattr(jobs, "DRAIN_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(runtime, "signal", lambda name, countdown=None: signals.append(name) or True)
    monkeypatch.setattr(app.config["SETTINGS"], "inbox_batch_size", 10)
    with app.app_context():
        slices = []
        while not slices or signals.count(runtime.DRAIN_INBOX) == len(slices):
            slices.append(jobs.drain_inbox())
            assert len(slices) < 10, "the drain never finished"
        assert [s["processed"] for s in slices] == [10, 10, 10, 0]
        assert [s["more"] for s in slices] == [True, True, True, False]
        assert runtime.FLUSH_OPERATIONS in signals  # stoptracks queued by the first slice already
        assert count(InboxEvent, InboxEvent.status == "pending") == 0
        assert count(Shipment, Shipment.status == "delivered") == 30
