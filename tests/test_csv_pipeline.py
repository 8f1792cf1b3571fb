"""The CSV import decides a chunk while those before it are being stored, two at once on
PostgreSQL (issue 11: CSV import).

What a user relies on: a failing chunk stops the import with its error and leaves exactly the
chunks before it queued (chunks commit in file order, so never one after a gap); a number repeated
in a later chunk is refused as if the chunks had run one after the other; and the halves really
overlap, which is where the speed comes from.
"""

from __future__ import annotations

import io
import itertools
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from lifecycle.extensions import db
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import registration_rows
from lifecycle.shipments import csv_import
from lifecycle.shipments.models import Shipment

NUMBERS = [f"RR{i:09d}CN" for i in range(1, 9)]


def csv_text(numbers: list[str]) -> str:
    return "number,carrier\n" + "".join(f"{number},3011\n" for number in numbers)


def stored(app) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        numbers = session.scalars(select(Shipment.number).order_by(Shipment.number)).all()
        return list(numbers), session.scalar(select(func.count()).select_from(Operation)) or 0


def committed_within(app, seconds: float) -> list[str]:  # type: ignore[no-untyped-def]
    """The numbers committed so far, polled until some appear or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not (numbers := stored(app)[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return numbers


def around_save(monkeypatch, before=None, after=None) -> None:  # type: ignore[no-untyped-def]
    """Wrap the store of each chunk: `before(first)` runs ahead of it and `after(first)` once its
    rows are written (uncommitted), `first` being the chunk's first number. How these tests hold a
    chunk at a chosen point or make it fail."""
    real_save = registration_rows.save

    def save(session, queued):  # type: ignore[no-untyped-def]
        first = queued[0].known.number
        if before is not None:
            before(first)
        real_save(session, queued)
        if after is not None:
            after(first)

    monkeypatch.setattr(registration_rows, "save", save)


def fail() -> None:
    raise OperationalError("INSERT", {}, Exception("server closed the connection"))


def test_a_failing_chunk_stops_the_import_and_keeps_the_chunks_before_it(app, backend, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    calls: list[str] = []

    def count_then_fail_second(first: str) -> None:
        calls.append(first)
        if first == NUMBERS[2]:
            fail()

    around_save(monkeypatch, before=count_then_fail_second)
    problems: list[tuple[int, str, str]] = []
    with app.app_context(), pytest.raises(OperationalError, match="server closed"):
        csv_import.import_csv(
            io.StringIO(csv_text(NUMBERS)), db.new_session, lambda *problem: problems.append(problem)
        )
    assert stored(app) == (NUMBERS[:2], 2)  # the first chunk, whole; nothing of the second or after
    # No chunk after the failing one was started, but the one stored beside it (rolled back).
    writers = csv_import.POSTGRESQL_WRITERS if backend == "postgresql" else 1
    assert calls[:2] == NUMBERS[0:4:2] and len(calls) <= 1 + writers
    assert problems == []


def test_a_number_in_the_chunk_being_stored_is_refused_in_the_next(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 3)
    # Line 5 repeats line 2's number (other case, spaces): it is decided only once line 2's chunk
    # has committed, and refused as a duplicate.
    text = csv_text(NUMBERS[:3]) + f" {NUMBERS[0].lower()} ,3011\n" + csv_text(NUMBERS[3:5]).split("\n", 1)[1]
    problems: list[tuple[int, str, str]] = []
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(text), db.new_session, lambda *p: problems.append(p))
    assert (report.rows, report.queued, report.refused) == (6, 5, 1)
    assert problems == [(5, NUMBERS[0], "already registered here (carrier 3011, pending)")]
    assert stored(app) == (NUMBERS[:5], 5)


def test_the_next_chunk_is_decided_while_one_is_being_stored(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    real_plan = csv_import.plan
    next_planned = threading.Event()
    steps: list[str] = []

    def plan(session, requests, settings=None):  # type: ignore[no-untyped-def]
        steps.append(f"plan {requests[0].number}")
        if len(steps) > 1:
            next_planned.set()
        return real_plan(session, requests, settings)

    def wait_for_the_next_plan(first: str) -> None:
        if first == NUMBERS[0]:  # the first chunk's store waits (bounded) for the second's plan
            steps.append(f"overlapped {next_planned.wait(timeout=60)}")

    monkeypatch.setattr(csv_import, "plan", plan)
    around_save(
        monkeypatch, before=wait_for_the_next_plan, after=lambda first: steps.append(f"saved {first}")
    )
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(csv_text(NUMBERS[:4])), db.new_session)
    assert report.queued == 4
    assert steps[:3] == [f"plan {NUMBERS[0]}", f"plan {NUMBERS[2]}", "overlapped True"]
    assert f"saved {NUMBERS[0]}" in steps  # (on PostgreSQL the second may store its rows first)
    assert stored(app) == (NUMBERS[:4], 4)


def test_a_number_is_decided_only_once_every_chunk_holding_it_has_committed(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    # Line 6 (third chunk) repeats line 4's number (second chunk). On PostgreSQL the first and
    # second chunks are both in flight when the third is read: it must wait for the second too.
    text = csv_text(NUMBERS[:5]) + f"{NUMBERS[2]},3011\n"
    real_plan = csv_import.plan
    third_planned = threading.Event()
    steps: list[str] = []

    def plan(session, requests, settings=None):  # type: ignore[no-untyped-def]
        if requests[0].number == NUMBERS[4]:
            steps.append("plan third")
            third_planned.set()
        return real_plan(session, requests, settings)

    def hold_the_second(first: str) -> None:
        if first == NUMBERS[2]:
            third_planned.wait(timeout=2)  # set only if the third chunk was wrongly decided now

    monkeypatch.setattr(csv_import, "plan", plan)
    around_save(monkeypatch, before=hold_the_second, after=lambda first: steps.append(f"saved {first}"))
    problems: list[tuple[int, str, str]] = []
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(text), db.new_session, lambda *p: problems.append(p))
    assert steps.index(f"saved {NUMBERS[2]}") < steps.index("plan third")
    assert (report.queued, report.refused) == (5, 1)
    assert problems == [(7, NUMBERS[2], "already registered here (carrier 3011, pending)")]
    assert stored(app) == (NUMBERS[:5], 5)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_stores_two_chunks_at_once_and_commits_them_in_file_order(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    second_saved = threading.Event()
    seen: dict[str, object] = {}

    def wait_for_the_second(first: str) -> None:
        if first == NUMBERS[0]:  # the first chunk's store waits (bounded) for the second's
            seen["overlapped"] = second_saved.wait(timeout=60)
            # The second chunk has stored its rows but must not commit before this one has: given
            # two seconds to show up from another session, they must not.
            seen["second visible before the first commits"] = committed_within(app, seconds=2)

    around_save(
        monkeypatch,
        before=wait_for_the_second,
        after=lambda first: second_saved.set() if first == NUMBERS[2] else None,
    )
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(csv_text(NUMBERS[:6])), db.new_session)
    assert seen == {"overlapped": True, "second visible before the first commits": []}
    assert report.queued == 6
    assert stored(app) == (NUMBERS[:6], 6)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_a_chunk_stored_beside_a_failing_one_rolls_back_with_it(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    third_saved = threading.Event()
    calls: list[str] = []

    def fail_the_second_once_the_third_is_stored(first: str) -> None:
        calls.append(first)
        if first == NUMBERS[2]:
            assert third_saved.wait(timeout=60)
            fail()

    around_save(
        monkeypatch,
        before=fail_the_second_once_the_third_is_stored,
        after=lambda first: third_saved.set() if first == NUMBERS[4] else None,
    )
    with app.app_context(), pytest.raises(OperationalError, match="server closed"):
        csv_import.import_csv(io.StringIO(csv_text(NUMBERS)), db.new_session)
    assert calls == [NUMBERS[0], NUMBERS[2], NUMBERS[4]]
    assert stored(app) == (NUMBERS[:2], 2)  # the file up to the failing chunk; no gap, nothing after


@pytest.mark.parametrize("where", ["after the first chunk is reported", "while deciding the fourth chunk"])
def test_ctrl_c_leaves_the_file_queued_up_to_a_chunk_boundary(app, backend, monkeypatch, where):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    numbers = [f"RR{i:09d}CN" for i in range(1, 21)]
    real_plan = csv_import.plan
    planned: list[str] = []
    reported: list[int] = []

    def plan(session, requests, settings=None):  # type: ignore[no-untyped-def]
        planned.append(requests[0].number)
        if where.startswith("while") and len(planned) == 4:
            raise KeyboardInterrupt
        return real_plan(session, requests, settings)

    def on_chunk() -> None:
        reported.append(len(reported))
        if where.startswith("after"):
            raise KeyboardInterrupt

    monkeypatch.setattr(csv_import, "plan", plan)
    with app.app_context(), pytest.raises(KeyboardInterrupt):
        csv_import.import_csv(io.StringIO(csv_text(numbers)), db.new_session, on_chunk=on_chunk)
    queued, operations = stored(app)
    # Every chunk handed to a writer committed whole, in file order, before Ctrl-C ended the import:
    # after chunk 1's report, the chunks in flight with it (2 on PostgreSQL); while deciding chunk
    # 4, chunks 1-3 (both backends).
    writers = csv_import.POSTGRESQL_WRITERS if backend == "postgresql" else 1
    expected = 2 * writers if where.startswith("after") else 6
    assert (queued, operations) == (numbers[:expected], expected)


_RUNS = itertools.count()
# How a row may spell one of a few numbers: a dash makes another 17TRACK number that the import's
# conservative key still takes for the same one (its chunk waits; the outcome must not change).
SPELLINGS = {
    "as is": lambda n: n,
    "lower case": str.lower,
    "padded": lambda n: f"  {n} ",
    "dashed": lambda n: n[:-2] + "-" + n[-2:],
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3), st.sampled_from(sorted(SPELLINGS)), st.sampled_from(["", "3011", "21051"])
        ),
        min_size=1,
        max_size=14,
    ),
    chunk=st.integers(1, 3),
)
def test_chunks_stored_at_once_decide_every_row_as_one_pass_would(app, monkeypatch, rows, chunk):
    run = next(_RUNS)

    def import_in_chunks_of(size: int, tag: str) -> tuple[object, ...]:
        monkeypatch.setattr(csv_import, "CHUNK", size)
        prefix = f"Q{run:05d}{tag}"
        lines = [f"{SPELLINGS[spelling](f'{prefix}{base}CN')},{carrier}" for base, spelling, carrier in rows]
        problems: list[tuple[int, str, str]] = []
        with app.app_context():
            report = csv_import.import_csv(
                io.StringIO("number,carrier\n" + "\n".join(lines)),
                db.new_session,
                lambda *p: problems.append(p),
            )
            with db.new_session() as session:
                found = session.execute(
                    select(Shipment.number, Shipment.carrier).where(Shipment.number.like(f"{prefix}%"))
                ).all()
                operations = session.scalar(
                    select(func.count()).select_from(Operation).where(Operation.number.like(f"{prefix}%"))
                )
        shipments = sorted((number.removeprefix(prefix), carrier) for number, carrier in found)
        messages = [(line, message) for line, _, message in problems]
        return report.queued, report.refused, messages, shipments, operations

    assert import_in_chunks_of(chunk, "C") == import_in_chunks_of(10_000, "S")
