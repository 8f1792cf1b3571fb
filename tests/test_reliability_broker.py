"""Reliability 1: the broker goes away while pushes arrive (a Redis this test starts and stops).

Every push is still acknowledged (the inbox is in PostgreSQL); once Redis is back, with none of the
signals sent meanwhile, the sweeper and the workers apply all of them once and stop every delivered
shipment once.
"""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest
import redis

from tests.conftest import IN_CI
from tests.reliability_support import (
    CARRIER,
    Poster,
    Processes,
    Push,
    event_figures,
    free_port,
    fresh_database,
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

PUSHES = 1_000
BEFORE_OUTAGE = 300


class OwnRedis:
    """A throwaway redis-server on a free port, without persistence: a restart starts it empty."""

    def __init__(self, procs: Processes) -> None:
        self.procs, self.port = procs, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server") or "redis-server"
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.procs.start("redis", args, {})
        wait_until("redis up", self._answers, timeout=20, interval=0.05)

    def stop(self) -> None:
        self.procs.stop("redis")
        assert not self._answers()

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def procs(tmp_path):  # type: ignore[no-untyped-def]
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.mark.integration
def test_pushes_during_a_broker_outage_are_acknowledged_then_applied_once(postgres_url, procs, tmp_path):
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (the test starts and stops its own)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    plan = plan_pushes("BRK", PUSHES)
    broker = OwnRedis(procs)
    broker.start()
    with fresh_database(procs) as database_url, simulator() as sim:
        for number in plan.final:
            sim.add_parcel(number, CARRIER)
        env = service_env(database_url, broker.url, tmp_path / "var", SEVENTEENTRACK_API_URL=sim.url)
        base = procs.serve(env)
        procs.worker(env)
        procs.beat(env)
        poster = Poster(base)
        with psycopg.connect(plain(database_url), autocommit=True) as db:
            assert set(poster.post_all(plan.pushes[:BEFORE_OUTAGE])) == {200}, procs.tails()
            # Nothing in progress when Redis goes: what arrives next waits for the broker's return.
            wait_until("the first pushes applied", lambda: _applied_all(db, BEFORE_OUTAGE), timeout=60)
            time.sleep(0.5)
            during, down_for, waiting = _outage(broker, poster, plan.pushes[BEFORE_OUTAGE:], db)
            back = time.monotonic()
            wait_until("every push applied", lambda: _applied_all(db, PUSHES), timeout=120)
            applied_after = time.monotonic() - back
            wait_until("stoptracks settled", lambda: stoptracks_settled(db), timeout=90)
            figures = event_figures(
                "broker outage", db, PUSHES, poster.acknowledged(),
                posted_while_down=len(during), pending_when_redis_returned=waiting,
                outage_seconds=round(down_for, 1), applied_seconds_after_return=round(applied_after, 1),
            )  # fmt: skip
            wrong = wrong_final_states(db, plan)
        stopped_at_provider = {n for n in plan.final if sim.state.parcels[n].tracking == "Stopped"}
        resent = resent_items(sim.calls("stoptrack"))

    assert set(during) == {200}, f"answers while Redis was down: {sorted(set(map(str, during)))}"
    assert waiting > 0, "nothing waited for the broker: the outage proved nothing"
    assert (figures.acknowledged, figures.applied, figures.doubled, figures.lost) == (PUSHES, PUSHES, 0, 0)
    assert wrong == [], wrong[:5]
    assert stopped_at_provider == plan.delivered
    assert resent == []


def _outage(
    broker: OwnRedis, poster: Poster, pushes: list[Push], db: psycopg.Connection
) -> tuple[list[int | str], float, int]:
    """Stop Redis, post `pushes`, keep it down some seconds, start it again (empty): the answers,
    how long it was down, and how many rows were still pending when it returned."""
    broker.stop()
    stopped = time.monotonic()
    answers = poster.post_all(pushes)
    time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
    waiting = inbox_states(db).get("pending", 0)
    broker.start()
    return answers, time.monotonic() - stopped, waiting


def _applied_all(db: psycopg.Connection, total: int) -> bool:
    row = db.execute("SELECT count(*) FILTER (WHERE status = 'processed'), count(*) FROM inbox").fetchone()
    return row is not None and row[0] >= total and row[0] == row[1]
