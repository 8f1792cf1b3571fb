"""Reliability 5: four worker processes drain one inbox of 20,000 events at the same time.

The events are every number's pushes in random order, so concurrent batches keep meeting the same
shipments (row locks, deadlock retries). Each event must be applied exactly once, each delivered
shipment get exactly one stoptrack operation, and every shipment end in its newest push's state.

The workers here are inbox drainers only (`-Q inbox`): stoptracks are queued, not sent, which keeps
the figure about the drain.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import redis
from celery import Celery

from config.settings import Settings
from lifecycle.celery import celery_config
from tests.conftest import REDIS_URL
from tests.reliability_support import (
    Figures,
    Plan,
    Processes,
    applied_counts,
    fresh_database,
    inbox_drained,
    inbox_states,
    plain,
    plan_pushes,
    service_env,
    stoptrack_operations,
    wait_until,
    wrong_final_states,
)

EVENTS = 20_000
WORKERS = 4


@pytest.fixture
def procs(tmp_path):  # type: ignore[no-untyped-def]
    processes = Processes(tmp_path)
    yield processes
    processes.close()
    redis.Redis.from_url(REDIS_URL).flushdb()  # the stoptrack signals nobody here consumes


@pytest.mark.integration
def test_four_workers_on_one_inbox_apply_each_event_exactly_once(postgres_url, procs, tmp_path):
    redis.Redis.from_url(REDIS_URL).flushdb()
    plan = plan_pushes("CON", EVENTS, order="shuffled")
    with fresh_database(procs) as database_url, psycopg.connect(plain(database_url), autocommit=True) as db:
        _store(db, plan)  # as the webhook stores them: raw bodies, pending
        env = service_env(database_url, REDIS_URL, tmp_path / "var")
        for n in range(WORKERS):
            procs.start_worker(env, f"worker-{n}", "--concurrency", "1", "-Q", "inbox")
        procs.wait_ready([f"worker-{n}" for n in range(WORKERS)])
        started = time.monotonic()
        _signal_drain(tmp_path, WORKERS)
        wait_until("the inbox drained", lambda: inbox_drained(db, EVENTS), timeout=150, interval=0.25)
        seconds = time.monotonic() - started
        applied, stoptracks = applied_counts(db), stoptrack_operations(db)
        states, wrong = inbox_states(db), wrong_final_states(db, plan, delivered_as="stopping")
    drained_by = [n for n in range(WORKERS) if "inbox drained" in procs.log(f"worker-{n}")]
    doubled = sum(n - 1 for n in applied.values() if n > 1) + sum(n - 1 for n in stoptracks.values() if n > 1)
    sent = {push.key for push in plan.pushes}
    Figures(
        "concurrency", EVENTS, EVENTS, len(applied), doubled, len(sent - set(applied)),
        {"workers_that_drained": len(drained_by), "seconds": round(seconds, 1),
         "events_per_second": round(EVENTS / seconds), "stoptrack_operations": sum(stoptracks.values())},
    ).show()  # fmt: skip
    assert states == {"processed": EVENTS}
    assert set(applied) == sent and set(applied.values()) == {1}
    assert set(stoptracks) == plan.delivered and set(stoptracks.values()) == {1}
    assert wrong == [], wrong[:5]
    assert len(drained_by) >= 2, "the workers did not drain side by side"


def _store(db: psycopg.Connection, plan: Plan) -> None:
    with (
        db.cursor() as cursor,
        cursor.copy("COPY inbox (provider, body, received_at, status) FROM STDIN") as copy,
    ):
        for push in plan.pushes:
            copy.write_row(("17track", push.body, push.event_time, "pending"))


def _signal_drain(tmp_path, count: int) -> None:  # type: ignore[no-untyped-def]
    """What the web tier sends after a commit: one drain signal per worker, routed as in production."""
    sender = Celery(set_as_current=False)
    sender.conf.update(
        celery_config(Settings(broker_url=REDIS_URL, var_dir=tmp_path / "var", _env_file=None))
    )
    for _ in range(count):
        sender.send_task("lifecycle.inbox.drain")
    sender.close()
