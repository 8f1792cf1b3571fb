"""Registration: local checks, batching within the shared rate limit, per-item answers, quota pause."""

from __future__ import annotations

import io
import math

import pytest
from sqlalchemy import select

from lifecycle import create_app, jobs
from lifecycle.extensions import db
from lifecycle.operations import pause
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack.registration import check_number
from lifecycle.shipments.csv_import import import_csv
from lifecycle.shipments.registration import Registration, register
from tests.helpers import count, flush_through_rate_limits, shipment


def queue(app, *numbers: str, carrier: int | None = None):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return register(session, [Registration(n, carrier) for n in numbers])


def flush(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return jobs.flush_operations()


def most_calls_in_any_second(calls) -> int:  # type: ignore[no-untyped-def]
    times = sorted(c["at"] for c in calls)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("RR1", "3 characters"),
        ("X" * 51, "51 characters"),
        ("RR 123 456 CN", "' '"),
        ("RR123/456CN", "'/'"),
        ("RR123456789ČN", "'Č'"),
    ],
)
def test_garbage_is_refused_locally_with_the_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        check_number(raw)


def test_numbers_are_normalised():
    assert check_number(" rr123456789cn ") == "RR123456789CN"


def test_1000_registrations_are_batched_within_the_rate_limit_and_429s_retried_without_duplicates(
    settings_factory, sim
):
    # A plan that covers 1,000 registrations, so the budget guard holds none of them.
    sim_app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_plan="basic"))
    numbers = [f"RR{i:09d}CN" for i in range(1000)]
    assert all(o.ok for o in queue(sim_app, *numbers))
    sim.state.fail_next.extend([429, 429])
    flush_through_rate_limits(sim_app)
    with sim_app.app_context():
        for _ in range(5):
            if not count(Operation, Operation.status == "pending"):
                break
            with db.new_session() as session, session.begin():  # skip the backoff wait
                for op in session.scalars(select(Operation).where(Operation.status == "pending")):
                    op.next_attempt_at = op.created_at
            flush_through_rate_limits(sim_app)
    calls = sim.calls("register")
    assert len(calls) <= math.ceil(1000 / 40) + 2
    assert all(c["items"] <= 40 for c in calls)
    assert most_calls_in_any_second(calls) <= 3
    assert sum(c["items"] for c in calls) == 1000 + 2 * 40  # the two refused calls, resent once each
    assert len(sim.state.parcels) == 1000
    with sim_app.app_context():
        assert count(Operation, Operation.status == "done") == 1000
        assert shipment("RR000000000CN").tracking == "tracking"
        assert shipment("RR000000000CN").registered_at is not None


def test_a_registered_number_is_never_sent_again(sim_app, sim):
    queue(sim_app, "RR123456789CN", carrier=3011)
    flush(sim_app)
    again = queue(sim_app, "rr123456789cn", carrier=3011)
    auto = queue(sim_app, "RR123456789CN")
    assert not again[0].ok and "already registered here" in again[0].message
    assert not auto[0].ok
    flush(sim_app)
    assert [c["items"] for c in sim.calls("register")] == [1]


def test_the_same_number_on_another_carrier_is_another_registration(sim_app, sim):
    queue(sim_app, "RR123456789CN", carrier=3011)
    assert queue(sim_app, "RR123456789CN", carrier=21051)[0].ok


def test_already_registered_at_17track_counts_as_registered(sim_app, sim):
    sim.add_parcel("RR123456789CN", 3011)
    queue(sim_app, "RR123456789CN", carrier=3011)
    report = flush(sim_app)
    assert report["done"] == 1 and report["failed"] == 0
    with sim_app.app_context():
        assert shipment("RR123456789CN").tracking == "tracking"


def test_quota_exhausted_pauses_registration_without_dropping_or_looping(sim_app, sim):
    sim.state.quota_total = 3
    numbers = [f"RR{i:09d}CN" for i in range(5)]
    queue(sim_app, *numbers)
    first = flush(sim_app)
    assert first["done"] == 3 and first["held"] == 2
    with sim_app.app_context(), db.new_session() as session:
        held = pause.current(session, "17track", "register")
        assert held["code"] == -18019908 and held["until"] is None
    calls_before = len(sim.calls("register"))
    assert flush(sim_app)["calls"] == 0  # paused: no call, no loop
    assert len(sim.calls("register")) == calls_before
    with sim_app.app_context():
        assert count(Operation, Operation.status == "pending", Operation.kind == "register") == 2
        assert shipment(numbers[4]).tracking == "pending"
        # The operator buys quota and resumes: the held numbers go out.
        sim.state.quota_total = 10
        with db.new_session() as session, session.begin():
            assert pause.resume(session, "17track", "register")
    assert flush(sim_app)["done"] == 2


def test_csv_import_reports_each_bad_line_and_imports_the_rest(sim_app):
    text = (
        "number,carrier,lang,tag\n"
        "RR000000001CN,3011,,order-1\n"
        "RR1,3011,,too-short\n"
        "RR000000002CN,UPS,,bad-carrier\n"
        "\n"
        "RR000000003CN,,en,\n"
        "RR000000001CN,3011,,duplicate\n"
        "RR000000004CN,3011,en,x,extra\n"
    )
    problems: list[tuple[int, str, str]] = []
    with sim_app.app_context():
        report = import_csv(io.StringIO(text), db.new_session, on_problem=lambda *p: problems.append(p))
    assert (report.rows, report.queued, report.refused, report.malformed) == (6, 2, 2, 2)
    assert [(line, number) for line, number, _ in problems] == [
        (3, "RR1"),
        (4, "RR000000002CN"),
        (7, "RR000000001CN"),
        (8, "RR000000004CN"),
    ]
    assert "carrier must be" in problems[1][2] and "already registered" in problems[2][2]
    with sim_app.app_context():
        assert shipment("RR000000003CN").lang == "en"
        assert count(Operation, Operation.kind == "register") == 2
