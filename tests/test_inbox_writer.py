"""Group commit by the requests themselves: every body stored once with its own id, leadership
handed on, a failed commit answered as such, and a request that gives up never left leading."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from lifecycle.extensions import db
from lifecycle.inbox import writer as writer_module
from lifecycle.inbox.models import InboxEvent
from lifecycle.inbox.writer import InboxWriter


@pytest.fixture
def writer(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        yield InboxWriter(db.new_session)


def stored(app) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return dict(session.execute(select(InboxEvent.id, InboxEvent.body)).all())  # type: ignore[arg-type]


def test_concurrent_requests_each_get_the_id_of_their_own_body(app, writer):
    bodies = [f'{{"n": {n}}}'.encode() for n in range(600)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        ids = list(pool.map(lambda body: writer.write("17track", body), bodies))
    assert len(set(ids)) == len(bodies)
    rows = stored(app)
    assert [rows[row_id] for row_id in ids] == bodies


def test_a_leader_hands_the_commits_on_instead_of_committing_for_everyone(app, writer, monkeypatch):
    """The first request commits its own body, then once more for those that queued meanwhile; the
    requests that queued after that are committed by one of them, not by the first one again."""
    real, committers = writer_module._commit, []
    gates = [threading.Event() for _ in range(3)]

    def gated_commit(held, batch):  # type: ignore[no-untyped-def]
        committers.append(threading.current_thread().name)
        gates[min(len(committers), 3) - 1].wait(30)
        return real(held, batch)

    monkeypatch.setattr(writer_module, "_commit", gated_commit)

    def start(name: str) -> threading.Thread:
        thread = threading.Thread(target=writer.write, args=("17track", name.encode()), name=name)
        thread.start()
        return thread

    def queued(count: int) -> None:
        wait_until(lambda: len(writer._waiting) == count)

    threads = [start("first")]
    wait_until(lambda: len(committers) == 1)
    threads += [start(f"second-{n}") for n in range(3)]
    queued(3)
    gates[0].set()
    wait_until(lambda: len(committers) == 2)
    threads += [start(f"third-{n}") for n in range(2)]
    queued(2)
    gates[1].set()
    wait_until(lambda: len(committers) == 3)
    gates[2].set()
    for thread in threads:
        thread.join(30)
    assert committers[:2] == ["first", "first"] and committers[2].startswith("third-")
    assert len(stored(app)) == 6


def wait_until(condition) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not met within 30 s")


def test_a_failed_commit_is_an_error_for_its_requests_and_the_next_ones_are_stored(app, writer, monkeypatch):
    real = writer_module._commit
    failures = iter([True])

    def failing_once(held, batch):  # type: ignore[no-untyped-def]
        if next(failures, False):
            raise RuntimeError("database went away")
        return real(held, batch)

    monkeypatch.setattr(writer_module, "_commit", failing_once)
    with pytest.raises(RuntimeError):
        writer.write("17track", b'{"first": 1}')
    row_id = writer.write("17track", b'{"second": 2}')
    assert stored(app) == {row_id: b'{"second": 2}'}


def test_a_request_that_gives_up_waiting_is_never_made_leader(app, writer, monkeypatch):
    real, gate, entered = writer_module._commit, threading.Event(), threading.Event()

    def stuck_commit(held, batch):  # type: ignore[no-untyped-def]
        entered.set()
        gate.wait(30)
        return real(held, batch)

    monkeypatch.setattr(writer_module, "_commit", stuck_commit)
    with ThreadPoolExecutor(max_workers=2) as pool:
        leader = pool.submit(writer.write, "17track", b'{"leader": 1}')
        assert entered.wait(30)
        with pytest.raises(TimeoutError):
            writer.write("17track", b'{"impatient": 1}', timeout=0.2)
        gate.set()
        first = leader.result(timeout=30)
    monkeypatch.setattr(writer_module, "_commit", real)
    later = writer.write("17track", b'{"later": 1}', timeout=30)
    bodies = stored(app)
    assert bodies[first] == b'{"leader": 1}' and bodies[later] == b'{"later": 1}'


def test_an_idle_writer_gives_its_connection_back_to_the_pool(app, writer):
    """A connection held between webhooks would be one per app for good (and tests build many)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: writer.write("17track", b"{}"), range(50)))
    with app.app_context():
        assert db.engine.pool.checkedout() == 0  # type: ignore[union-attr,attr-defined]
