"""The CSV import decides a chunk while the one before it is being stored (issue 11: CSV import).

What a user relies on: a failing chunk stops the import with its error and leaves exactly the
chunks before it queued; a number repeated in the next chunk is refused as if the chunks had run
one after the other; and the two halves really overlap, which is where the speed comes from.
"""

from __future__ import annotations

import io
import threading

import pytest
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


def test_a_failing_chunk_stops_the_import_and_keeps_the_chunks_before_it(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    real_save, calls = registration_rows.save, []

    def save_failing_second(session, queued):  # type: ignore[no-untyped-def]
        calls.append(len(queued))
        if len(calls) == 2:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        real_save(session, queued)

    monkeypatch.setattr(registration_rows, "save", save_failing_second)
    problems: list[tuple[int, str, str]] = []
    with app.app_context(), pytest.raises(OperationalError, match="server closed"):
        csv_import.import_csv(
            io.StringIO(csv_text(NUMBERS)), db.new_session, lambda *problem: problems.append(problem)
        )
    assert stored(app) == (NUMBERS[:2], 2)  # the first chunk, whole; nothing of the second or after
    assert calls == [2, 2]  # no chunk after the failing one was stored
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
    real_save, real_plan = registration_rows.save, csv_import.plan
    next_planned = threading.Event()
    steps: list[str] = []

    def plan(session, requests, settings=None):  # type: ignore[no-untyped-def]
        steps.append(f"plan {requests[0].number}")
        if len(steps) > 1:
            next_planned.set()
        return real_plan(session, requests, settings)

    def slow_save(session, queued):  # type: ignore[no-untyped-def]
        first = queued[0].known.number
        if first == NUMBERS[0]:  # the first chunk's store waits (bounded) for the second's plan
            steps.append(f"overlapped {next_planned.wait(timeout=60)}")
        real_save(session, queued)
        steps.append(f"saved {first}")

    monkeypatch.setattr(csv_import, "plan", plan)
    monkeypatch.setattr(registration_rows, "save", slow_save)
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(csv_text(NUMBERS[:4])), db.new_session)
    assert report.queued == 4
    assert steps[:4] == [f"plan {NUMBERS[0]}", f"plan {NUMBERS[2]}", "overlapped True", f"saved {NUMBERS[0]}"]
    assert stored(app) == (NUMBERS[:4], 4)
