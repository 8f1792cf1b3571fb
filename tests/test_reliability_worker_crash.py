"""Reliability 2: a worker is killed with SIGKILL (pool and all) in the middle of draining 5,000
pushes. A new worker finishes the job: every event applied once, every ledger entry present once,
one stoptrack per delivered shipment, none sent twice.

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


@pytest.fixture
def procs(tmp_path):  # type: ignore[no-untyped-def]
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.mark.integration
def test_a_worker_killed_mid_drain_loses_and_doubles_nothing(postgres_url, procs, tmp_path):
    redis.Redis.from_url(REDIS_URL).flushdb()
    plan = plan_pushes("CRS", PUSHES)
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
            at_kill = _kill_mid_drain(procs, env, db)
            restarted = time.monotonic()
            procs.worker(env, "worker-2")
            wait_until("the inbox drained", lambda: inbox_drained(db, PUSHES), timeout=120)
            wait_until("stoptracks settled", lambda: stoptracks_settled(db), timeout=120)
            settled_after = time.monotonic() - restarted
            figures = event_figures(
                "worker crash", db, PUSHES, poster.acknowledged(),
                processed_at_kill=at_kill.get("processed", 0), pending_at_kill=at_kill.get("pending", 0),
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


def _kill_mid_drain(procs: Processes, env: dict[str, str], db: psycopg.Connection) -> dict[str, int]:
    """Start a worker, SIGKILL it (pool and all) once its first batch is in; the inbox at that moment."""
    procs.worker(env, "worker-1")
    first_batch = lambda: inbox_states(db).get("processed", 0) >= 500  # noqa: E731
    wait_until("the first batch applied", first_batch, timeout=90, interval=0.02)
    procs.kill("worker-1")
    at_kill = inbox_states(db)
    assert at_kill.get("pending", 0) > 0, f"the worker finished before the kill: {at_kill}"
    return at_kill


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
