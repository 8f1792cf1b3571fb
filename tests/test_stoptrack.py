"""Automatic stoptrack through the outbox, against the 17TRACK simulator over real HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lifecycle import create_app, jobs
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations.models import Operation
from tests.helpers import count, delivered, flush_through_rate_limits, post_push, shipment


def deliver(app, sim, numbers):  # type: ignore[no-untyped-def]
    client = app.test_client()
    for number in numbers:
        sim.add_parcel(number, 3011)
        assert post_push(client, delivered(number)).status_code == 200
    with app.app_context():
        inbox.drain(db.new_session, batch_size=500)


def flush(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return jobs.flush_operations()


def max_calls_in_any_second(calls) -> int:  # type: ignore[no-untyped-def]
    times = sorted(c["at"] for c in calls)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_100_delivered_shipments_take_at_most_3_calls_within_the_rate_limit(sim_app, sim):
    numbers = [f"RR{i:09d}CN" for i in range(100)]
    deliver(sim_app, sim, numbers)
    report = flush(sim_app)
    calls = sim.calls("stoptrack")
    assert report["done"] == 100
    assert len(calls) <= 3 and all(c["items"] <= 40 for c in calls)
    assert max_calls_in_any_second(calls) <= 3
    with sim_app.app_context():
        assert count(Operation, Operation.status == "done") == 100
        assert all(sim.state.parcels[n].tracking == "Stopped" for n in numbers)
        assert shipment(numbers[0]).tracking == "stopped"


def test_rate_limit_holds_over_many_calls(settings_factory, sim):
    """40 calls' worth of numbers, one number per call: never more than 3 calls in any second."""
    app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_batch_size=1))
    deliver(app, sim, [f"RR{i:09d}CN" for i in range(10)])
    flush_through_rate_limits(app)
    calls = sim.calls("stoptrack")
    # Exactly 10 calls: a single 429 from the simulator would have caused a retry, an 11th call.
    assert len(calls) == 10
    assert max_calls_in_any_second(calls) <= 3


def test_a_flush_at_the_rate_limit_hands_the_worker_back_and_comes_back_in_time(
    settings_factory, sim, monkeypatch
):
    """Issue 11, fairness: rather than sleep a second in the limiter with a worker process (the
    drain's), the flush stops and signals itself with a countdown just short of the free slot."""
    from lifecycle import runtime

    app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_batch_size=1))
    deliver(app, sim, [f"RR{i:09d}CN" for i in range(10)])
    signals: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        runtime, "signal", lambda name, countdown=None: signals.append((name, countdown)) or True
    )
    report = flush(app)
    assert 3 <= len(sim.calls("stoptrack")) < 10  # the limit's 3 calls, then no sleeping for more
    assert report["more"] and 0 < report["retry_after"] <= 1.04
    assert signals == [(runtime.FLUSH_OPERATIONS, report["retry_after"])]


def test_same_delivered_push_three_times_sends_the_number_once(sim_app, sim):
    client = sim_app.test_client()
    sim.add_parcel("RR1", 3011)
    for _ in range(3):
        post_push(client, delivered("RR1"))
    with sim_app.app_context():
        inbox.drain(db.new_session, batch_size=500)
    flush(sim_app)
    flush(sim_app)
    assert [c["items"] for c in sim.calls("stoptrack")] == [1]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried_with_backoff_and_nothing_is_sent_twice(sim_app, sim, status):
    deliver(sim_app, sim, ["RR1", "RR2"])
    sim.state.fail_next.append(status)
    first = flush(sim_app)
    assert first["retried"] == 2 and first["done"] == 0
    with sim_app.app_context(), db.new_session() as session, session.begin():
        operations = session.scalars(select(Operation)).all()
        assert all(op.status == "pending" and op.attempts == 1 for op in operations)
        assert f"HTTP {status}" in operations[0].result_message
        # Skip the backoff wait instead of sleeping through it.
        for op in operations:
            op.next_attempt_at = op.created_at
    second = flush(sim_app)
    assert second["done"] == 2
    assert [c["items"] for c in sim.calls("stoptrack")] == [2, 2]


def test_already_stopped_and_unregistered_numbers_count_as_stopped(sim_app, sim):
    deliver(sim_app, sim, ["RR1", "RR2"])
    sim.state.parcels["RR1"].tracking = "Stopped"
    del sim.state.parcels["RR2"]
    report = flush(sim_app)
    assert report["done"] == 2
    with sim_app.app_context():
        with db.new_session() as session:
            codes = sorted(op.result_code for op in session.scalars(select(Operation)))
        assert codes == [-18019906, -18019902]
        assert shipment("RR1").tracking == "stopped" and shipment("RR2").tracking == "stopped"


def test_timeout_is_retried(settings_factory, sim):
    app = create_app(
        settings_factory(seventeentrack_api_url="http://127.0.0.1:9", seventeentrack_timeout_seconds=1)
    )
    deliver(app, sim, ["RR1"])
    report = flush(app)
    assert report["retried"] == 1
    with app.app_context(), db.new_session() as session:
        operation = session.scalars(select(Operation)).one()
        assert operation.status == "pending" and "ConnectionError" in operation.result_message


def test_abandoned_in_flight_operations_are_released_by_the_sweeper(sim_app, sim):
    deliver(sim_app, sim, ["RR1"])
    with sim_app.app_context(), db.new_session() as session, session.begin():
        operation = session.scalars(select(Operation)).one()
        operation.status, operation.claimed_at = "in_flight", operation.created_at.replace(year=2020)
    with sim_app.app_context():
        assert jobs.sweep()["released_operations"] == 1
    assert flush(sim_app)["done"] == 1


def test_the_calls_a_limiter_window_allows_go_out_together(settings_factory, sim):
    """Issue 11, fairness: the three calls of a window are in flight at once, so a flush holds its
    worker process for the slowest answer, not for the sum of three. Each call here waits at a
    barrier for the other two: made one after the other, they would never get past it."""
    import threading

    from lifecycle.providers.seventeentrack.sender import Sender

    app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_batch_size=1))
    deliver(app, sim, ["RR000000001CN", "RR000000002CN", "RR000000003CN"])
    together = threading.Barrier(3)
    with app.app_context():
        from lifecycle import runtime

        client = runtime.client("17track")
        real_call = client.call

        def call_at_the_barrier(endpoint, items):  # type: ignore[no-untyped-def]
            together.wait(timeout=60)
            return real_call(endpoint, items)

        client.call = call_at_the_barrier  # type: ignore[method-assign]
        report = Sender(db.new_session, client, batch_size=1).flush()
    assert (report.calls, report.done, report.failed) == (3, 3, 0)
    assert sorted(c["numbers"][0] for c in sim.calls("stoptrack")) == [
        "RR000000001CN", "RR000000002CN", "RR000000003CN",
    ]  # fmt: skip
    with app.app_context():
        assert count(Operation, Operation.status == "done") == 3
