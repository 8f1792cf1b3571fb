"""Reliability 2: a worker is killed with SIGKILL (pool and all) in the middle of draining 5,000
pushes, while it holds the send lock. A new worker finishes the job: every event applied once, every
ledger entry present once, one stoptrack per delivered shipment, none sent twice; and the dead
holder's send lock and in-flight stoptracks block the provider calls for seconds, not for the length
of a lease (once 50 s, so stoptracks settled a minute after the restart).

The per-cycle rule set is on, so the drain itself writes ledger entries (one per update cycle):
what a batch rolled back by the crash must neither lose nor write twice.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
import redis
from sqlalchemy import update

from lifecycle import jobs, runtime
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations.models import Operation
from simulators.seventeentrack import SimulatorServer
from tests.conftest import REDIS_URL
from tests.helpers import delivered, post_push
from tests.reliability_support import (
    CARRIER,
    Poster,
    Processes,
    event_figures,
    fresh_database,
    inbox_drained,
    inbox_states,
    plain,
    plan_pushes,
    resent_items,
    service_env,
    simulator,
    stoptracks_settled,
    wait_until,
    wrong_final_states,
)

PUSHES = 5_000
SEND_LOCK = "lock:flush-operations"  # lifecycle.jobs.flush_operations' singleton, in Redis
# From the new worker's start to its first provider call: a few seconds (the dead holder's 5 s lease,
# a 1 s sweep), generous for a loaded 2-core machine, and under the 30 s and more that a 50 s lease
# cost once the worker was up. Settling also drains 4,500 pushes, so its bound is the looser.
SENDS_RESUMED_LIMIT, SETTLED_LIMIT = 20.0, 90.0


@pytest.fixture
def procs(tmp_path):  # type: ignore[no-untyped-def]
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.mark.integration
def test_a_worker_killed_mid_drain_loses_and_doubles_nothing(postgres_url, procs, tmp_path):
    redis.Redis.from_url(REDIS_URL).flushdb()
    # Shuffled: delivered pushes, so stoptracks, from the first batch on (the worker is killed sending).
    plan = plan_pushes("CRS", PUSHES, order="shuffled")
    with fresh_database(procs) as database_url, simulator() as sim:
        for number in plan.final:
            sim.add_parcel(number, CARRIER)
        env = service_env(
            database_url, REDIS_URL, tmp_path / "var", SEVENTEENTRACK_API_URL=sim.url,
            SEVENTEENTRACK_RULES="17track-per-cycle", SEVENTEENTRACK_PLAN="flagship",
        )  # fmt: skip
        base = procs.serve(env)
        procs.beat(env)
        poster = Poster(base)
        answers = poster.post_all(plan.pushes)  # no worker yet: all 5,000 wait in the inbox
        assert set(answers) == {200}, procs.tails()

        with psycopg.connect(plain(database_url), autocommit=True) as db:
            at_kill = _kill_while_sending(procs, env, db, sim)
            killed_at, restarted = time.time(), time.monotonic()
            procs.worker(env, "worker-2")
            ready_after = time.time() - killed_at
            wait_until("the inbox drained", lambda: inbox_drained(db, PUSHES), timeout=120)
            wait_until("stoptracks settled", lambda: stoptracks_settled(db), timeout=120)
            settled_after = time.monotonic() - restarted
            resumed_after = _sends_resumed_after(sim.calls("stoptrack"), killed_at)
            figures = event_figures(
                "worker crash", db, PUSHES, poster.acknowledged(),
                processed_at_kill=at_kill["processed"], pending_at_kill=at_kill["pending"],
                send_lock_held_at_kill=at_kill["send_lock_held"],
                stoptracks_in_flight_at_kill=at_kill["stoptracks_in_flight"],
                worker_ready_seconds_after_kill=round(ready_after, 1),
                sends_resumed_seconds_after_kill=round(resumed_after, 1),
                settled_seconds_after_restart=round(settled_after, 1),
            )  # fmt: skip
            ledger, cycles = _ledger(db), _expected_cycles(db)
            wrong = wrong_final_states(db, plan)
            failed = inbox_states(db).get("failed", 0)
        resent = resent_items(sim.calls("stoptrack"))
        stopped_at_provider = {n for n in plan.final if sim.state.parcels[n].tracking == "Stopped"}

    print(f"  ledger: {len(ledger)} update-cycle entries for {len(cycles)} newer events")
    assert (figures.acknowledged, figures.applied, figures.doubled, figures.lost) == (PUSHES, PUSHES, 0, 0)
    assert failed == 0
    assert [key for key, n in ledger.items() if n > 1] == []
    assert set(ledger) == cycles
    assert wrong == [], wrong[:5]
    assert stopped_at_provider == plan.delivered
    assert resent == []
    assert figures.extra["send_lock_held_at_kill"] and figures.extra["stoptracks_in_flight_at_kill"]
    assert resumed_after - ready_after <= SENDS_RESUMED_LIMIT and settled_after <= SETTLED_LIMIT


def _kill_while_sending(
    procs: Processes, env: dict[str, str], db: psycopg.Connection, sim: SimulatorServer
) -> dict[str, int]:
    """Start a worker machine, SIGKILL it (pools and all) once its first batch is in and it holds the
    send lock with a call in flight (the simulator holds that call); the inbox, the lock and the
    stoptracks in flight at that moment.

    Its provider queue has a process of its own: drain tasks run until the inbox is empty, so on one
    two-process worker the flush would wait for the drain and the kill could not find both at work.
    """
    procs.start_worker(env, "worker-1", "--queues", "inbox,lifecycle")
    procs.start_worker(env, "sender-1", "--queues", "provider", "--concurrency", "1")
    procs.wait_ready(["worker-1", "sender-1"])
    locks = redis.Redis.from_url(REDIS_URL)
    sending = lambda: inbox_states(db).get("processed", 0) >= 500 and locks.exists(SEND_LOCK)  # noqa: E731
    wait_until("the first batch applied while stoptracks are sent", sending, timeout=90, interval=0.02)
    sim.fail_next("timeout")  # the next call hangs past the sender's timeout: its stoptracks stay in flight
    in_flight = "SELECT count(*) FROM operations WHERE kind = 'stoptrack' AND status = 'in_flight'"

    def held() -> bool:
        # The calls of one limiter window are in flight together: wait until the ones answered
        # beside the hung call are recorded too, so that only the hung call is in flight at the
        # kill (a call answered but not yet recorded when its worker dies is sent again: no design
        # closes that window, and this test is about what was recorded).
        hung = [c for c in sim.calls() if "fault" in c]
        return bool(hung) and db.execute(in_flight).fetchone()[0] == len(hung[0]["numbers"])

    wait_until("a stoptrack call held", held, timeout=60, interval=0.02)
    procs.kill("worker-1")
    procs.kill("sender-1")
    states = inbox_states(db)
    at_kill = {
        "processed": states.get("processed", 0),
        "pending": states.get("pending", 0),
        # Only the killed sender ever sent, so the lock still there is the one it held.
        "send_lock_held": int(locks.exists(SEND_LOCK)),
        "stoptracks_in_flight": db.execute(in_flight).fetchone()[0],
    }
    assert at_kill["pending"] > 0, f"the worker finished before the kill: {at_kill}"
    return at_kill


def _sends_resumed_after(calls: list[dict], killed_at: float) -> float:
    """Seconds from the kill to the first stoptrack call after it (made by the new worker)."""
    after = [call["at"] for call in calls if call["at"] > killed_at]
    return min(after) - killed_at if after else float("inf")


def _ledger(db: psycopg.Connection) -> Counter[str]:
    """Update-cycle ledger entries by business event (several for one event would be doubles)."""
    query = "SELECT event_key, count(*) FROM ledger WHERE event_kind = 'update_cycle' GROUP BY 1"
    return Counter(dict(db.execute(query).fetchall()))


def _expected_cycles(db: psycopg.Connection) -> set[str]:
    """One update cycle per push that moved its shipment on (events17.update_cycle's key)."""
    rows = db.execute(
        "SELECT s.number, s.carrier, s.registration_generation, t.dedupe_key FROM transitions t"
        " JOIN shipments s ON s.id = t.shipment_id WHERE t.kind IN ('transition', 'update')"
    ).fetchall()
    return {f"17track:cycle:{n}:{c}:{g}:{key}" for n, c, g, key in rows}


def test_stoptracks_a_dead_sender_left_in_flight_go_out_again_within_seconds(app, client, monkeypatch):
    assert post_push(client, delivered("RR000000001CN")).status_code == 200
    signals: list[str] = []
    monkeypatch.setattr(runtime, "signal", lambda name: signals.append(name) or True)
    with app.app_context():
        inbox.drain(db.new_session, batch_size=50)
        with db.new_session() as session, session.begin():
            # Claimed 30 s ago by a sender that died in its call: well past any call's timeout.
            session.execute(
                update(Operation).values(
                    status="in_flight", attempts=1, claimed_at=utcnow() - timedelta(seconds=30)
                )
            )
        signals.clear()
        swept = jobs.sweep()
    assert swept["released_operations"] == 1 or runtime.FLUSH_OPERATIONS in signals, (swept, signals)
