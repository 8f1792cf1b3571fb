"""End to end with a real Celery worker (in-thread): webhook → inbox → worker → stoptrack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker

import workers.tasks  # noqa: F401  (registers the shared tasks on every Celery app)
from lifecycle import create_app, runtime
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from tests.helpers import count, delivered, in_transit, post_push, shipment, wait_for


@contextmanager
def running_worker(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with start_worker(app.extensions["celery"], pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def test_signed_push_is_applied_and_delivered_shipment_stopped_by_the_worker(settings_factory, sim):
    app = create_app(settings_factory(seventeentrack_api_url=sim.url))
    client = app.test_client()
    sim.add_parcel("RR123456789CN", 3011)
    with running_worker(app), app.app_context():
        assert post_push(client, in_transit("RR123456789CN")).status_code == 200
        assert post_push(client, delivered("RR123456789CN")).status_code == 200
        stopped = wait_for(lambda: (s := shipment("RR123456789CN")) and s.tracking == "stopped" and s)
    assert stopped.status == "delivered"
    assert sim.state.parcels["RR123456789CN"].tracking == "Stopped"
    assert [c["items"] for c in sim.calls("stoptrack")] == [1]


def test_events_accepted_while_the_broker_is_down_are_processed_by_the_sweeper(settings_factory, sim):
    settings = settings_factory(seventeentrack_api_url=sim.url)
    broker_down = create_app(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    for number in ("RR1", "RR2", "RR3"):
        assert post_push(broker_down.test_client(), delivered(number)).status_code == 200
    with broker_down.app_context():
        assert count(InboxEvent, InboxEvent.status == "pending") == 3
    db.engine.dispose()  # type: ignore[union-attr]

    app = create_app(settings)
    with running_worker(app), app.app_context():
        # What beat does every SWEEP_INTERVAL_SECONDS once the broker is back.
        runtime.signal(runtime.SWEEP)
        wait_for(lambda: count(InboxEvent, InboxEvent.status == "processed") == 3)
        wait_for(lambda: all(shipment(n).tracking == "stopped" for n in ("RR1", "RR2", "RR3")))
