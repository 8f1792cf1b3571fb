"""The send lock (issue 10): a killed holder frees it within seconds, a live one keeps it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from lifecycle import jobs
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.locks import LEASE_SECONDS, singleton
from lifecycle.operations.models import IN_FLIGHT, Operation
from tests.conftest import REDIS_URL
from tests.helpers import delivered, post_push, wait_for

HOLDER = """
import sys, time
from pathlib import Path
from lifecycle.locks import singleton
with singleton(sys.argv[1], sys.argv[2], Path("."), 600) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def redis_url(request) -> str:  # type: ignore[no-untyped-def]
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) like the other integration tests
    return REDIS_URL


def test_a_killed_holder_frees_the_lock_within_the_lease(redis_url, tmp_path):
    name = f"test-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name, redis_url], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(LEASE_SECONDS)  # alive past its first lease: it renews, the others stay out
        with singleton(name, redis_url, tmp_path, 60) as held:
            assert not held
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()

        def acquired() -> bool:
            with singleton(name, redis_url, tmp_path, 60) as held:
                return bool(held)

        wait_for(acquired, timeout=LEASE_SECONDS * 3, interval=0.2)
        waited = time.monotonic() - killed_at
        print(f"lock free {waited:.1f}s after SIGKILL (lease {LEASE_SECONDS}s)")
        assert waited <= LEASE_SECONDS + 1.5
    finally:
        holder.kill()
        holder.wait(10)


def test_a_live_holder_keeps_the_lock_past_many_leases(redis_url, tmp_path):
    name = f"test-{uuid.uuid4().hex[:8]}"
    with singleton(name, redis_url, tmp_path, 60, lease_seconds=0.6) as mine:
        assert mine
        time.sleep(2.0)
        with singleton(name, redis_url, tmp_path, 60, lease_seconds=0.6) as other:
            assert not other
        assert not mine.lost
    with singleton(name, redis_url, tmp_path, 60, lease_seconds=0.6) as again:
        assert again


def test_a_holder_past_its_maximum_stops_renewing(redis_url, tmp_path):
    name = f"test-{uuid.uuid4().hex[:8]}"
    with singleton(name, redis_url, tmp_path, 0.5, lease_seconds=0.6) as mine:
        assert mine
        time.sleep(2.0)
        with singleton(name, redis_url, tmp_path, 60, lease_seconds=0.6) as other:
            assert other


def test_the_file_lock_is_exclusive(tmp_path):
    with singleton("x", "", tmp_path, 60) as mine, singleton("x", "", tmp_path, 60) as other:
        assert mine and not other


def test_operations_a_dead_sender_left_in_flight_are_sent_by_the_next(sim_app, sim):
    client = sim_app.test_client()
    sim.add_parcel("RR123456789CN", 3011)
    post_push(client, delivered("RR123456789CN"))
    with sim_app.app_context():
        from lifecycle.inbox import service as inbox

        inbox.drain(db.new_session, batch_size=10)
        with db.new_session() as session, session.begin():
            operation = session.scalars(select(Operation)).one()
            # Claimed by a sender that was killed during its call, a minute ago.
            operation.status, operation.claimed_at = IN_FLIGHT, utcnow() - timedelta(seconds=60)
            operation.attempts = 1
        report = jobs.flush_operations()
        assert report["done"] == 1
        with db.new_session() as session:
            assert session.scalars(select(Operation.status)).one() == "done"


def test_a_job_whose_lock_is_lost_stops_between_batches_and_says_so(app, monkeypatch):
    from lifecycle.cleanup import registry
    from lifecycle.cleanup.runs import LOCK_LOST, batches
    from lifecycle.shipments.models import Shipment
    from tests.cleanup_helpers import add_shipment, run, runs

    def job(context):  # type: ignore[no-untyped-def]
        for _session, shipments in batches(context, select(Shipment), Shipment.id):
            context.add("seen", len(shipments))
            context.lock.lost = True  # what the renewing thread does when a renewal fails

    with app.app_context():
        for i in range(7):
            add_shipment(f"L{i}")
    monkeypatch.setitem(registry.FUNCTIONS, "safety-net", job)
    counts = run(app, "safety-net", cleanup_batch_size=3)
    assert counts == {"seen": 3, "lock_lost": True, "more": True}
    (recorded,) = runs("safety-net")
    assert recorded.error == LOCK_LOST and recorded.counts["seen"] == 3


def test_a_lease_another_process_took_is_marked_lost(redis_url, tmp_path):
    import redis

    name = f"test-{uuid.uuid4().hex[:8]}"
    with singleton(name, redis_url, tmp_path, 60, lease_seconds=0.6) as mine:
        assert mine and not mine.lost
        redis.Redis.from_url(redis_url).set(f"lock:{name}", b"someone-else")  # the lease ran out, taken
        wait_for(lambda: mine.lost, timeout=30, interval=0.05)


def test_a_holder_past_its_maximum_is_marked_lost(redis_url, tmp_path):
    name = f"test-{uuid.uuid4().hex[:8]}"
    with singleton(name, redis_url, tmp_path, 0.3, lease_seconds=0.6) as mine:
        wait_for(lambda: mine.lost, timeout=30, interval=0.05)


def test_a_sender_whose_lock_is_lost_stops_between_calls(settings_factory, sim, monkeypatch):
    """The operations flush: once the send lock is lost, no further provider call is made (the
    calls of one limiter window, made together, are one step: the lock held when they left)."""
    from contextlib import contextmanager

    from lifecycle import create_app
    from lifecycle.inbox import service as inbox

    app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_batch_size=2))
    client = app.test_client()
    for i in range(10):
        sim.add_parcel(f"RR{i:09d}CN", 3011)
        post_push(client, delivered(f"RR{i:09d}CN"))

    class LostAfterTheFirstCall:
        acquired = True

        def __bool__(self) -> bool:
            return True

        @property
        def lost(self) -> bool:  # the lease could not be renewed during the first call
            return len(sim.calls("stoptrack")) >= 1

    @contextmanager
    def held(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        yield LostAfterTheFirstCall()

    monkeypatch.setattr(jobs, "singleton", held)
    try:
        with app.app_context():
            inbox.drain(db.new_session, batch_size=10)
            report = jobs.flush_operations()
            with db.new_session() as session:
                waiting = session.scalars(select(Operation).where(Operation.status == "pending")).all()
    finally:
        db.engine.dispose()  # type: ignore[union-attr]
    calls = sim.calls("stoptrack")
    assert 1 <= len(calls) <= 3 and report["calls"] == len(calls) and report["more"] is True
    assert max(c["at"] for c in calls) - min(c["at"] for c in calls) < 1.0  # one step, then no more
    assert len(waiting) == 10 - 2 * len(calls)  # the rest wait for the next holder
