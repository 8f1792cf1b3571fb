"""Reliability 3: the database goes away under load and comes back.

The service reaches PostgreSQL through a TCP relay the test controls: cutting it closes every
connection and refuses new ones, as a server restart does. While it is down a webhook must answer
503 (17TRACK retries), never 200; once it is back, web and workers carry on by themselves within
seconds, and every push that was acknowledged is applied, once.

Stoptracks are claimed, sent, then settled in separate transactions: a call whose answer came back
while the database was away cannot be recorded, so its items are sent again once it is back, and
17TRACK answers "already stopped" (the simulator, like 17TRACK, stops a number once and refuses the
second stop). Those resends are legitimate, shown and bounded by the outage; an item resent after an
answer that arrived outside the outage fails the test, as does a second stoptrack operation for a
shipment or one that did not end done.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
import redis
import requests

from tests.conftest import REDIS_URL
from tests.reliability_support import (
    CARRIER,
    Poster,
    Processes,
    Push,
    event_figures,
    free_port,
    fresh_database,
    inbox_drained,
    plain,
    plan_pushes,
    resent_items,
    service_env,
    simulator,
    stoptracks_settled,
    wait_until,
    wrong_final_states,
)

PUSHES = 2_000
DOWN_SECONDS = 4.0
CALL_TIMEOUT = 3.0  # SEVENTEENTRACK_TIMEOUT_SECONDS in service_env
# "Within seconds": what a webhook and a worker may take to notice the database is back.
WEB_RECOVERY_LIMIT, WORKER_RECOVERY_LIMIT = 10.0, 20.0


class TcpProxy:
    """A TCP relay in front of PostgreSQL: `cut()` closes every relayed connection and refuses new
    ones (what clients see when the server restarts), `restore()` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.port = upstream, free_port()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.05)
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    restore = start

    def cut(self) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)  # it closes the listener: new connections are refused
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # the relay threads wake up and close it

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stopping.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                client.settimeout(None)
                with self._lock:
                    self._connections |= {client, server}
                ends = [2]  # relay threads still using the pair; the last one closes it
                for source, target in ((client, server), (server, client)):
                    args = (source, target, ends)
                    threading.Thread(target=self._relay, args=args, daemon=True).start()

    def _relay(self, source: socket.socket, target: socket.socket, ends: list[int]) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):  # one side gone: the other learns it at once
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        with self._lock:
            ends[0] -= 1
            if ends[0]:
                return
            self._connections -= {source, target}
        source.close()
        target.close()


@pytest.fixture
def procs(tmp_path):  # type: ignore[no-untyped-def]
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.fixture
def proxy():  # type: ignore[no-untyped-def]
    relay = TcpProxy(("127.0.0.1", 5432))
    relay.start()
    yield relay
    relay.close()


@dataclass
class Outage:
    """When the database was away (monotonic, for the poster's times; wall clock, for the simulator's)."""

    down_from: float
    down_until: float
    cut_at: float
    back_at: float
    health: int | str  # what /healthz answered meanwhile


@pytest.mark.integration
def test_webhooks_answer_503_while_the_database_is_down_and_nothing_acknowledged_is_lost(
    postgres_url, procs, proxy, tmp_path
):
    redis.Redis.from_url(REDIS_URL).flushdb()
    plan = plan_pushes("DBR", PUSHES, order="shuffled")
    third = PUSHES // 3
    with fresh_database(procs) as database_url, simulator() as sim:
        for number in plan.final:
            sim.add_parcel(number, CARRIER)
        relayed = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        env = service_env(relayed, REDIS_URL, tmp_path / "var", SEVENTEENTRACK_API_URL=sim.url)
        base = procs.serve(env)
        procs.worker(env)
        procs.beat(env)
        poster = Poster(base, threads=8)
        assert set(poster.post_all(plan.pushes[:third])) == {200}, procs.tails()
        outage = _cut_while_posting(proxy, poster, plan.pushes[third : 2 * third], base)
        with psycopg.connect(plain(database_url), autocommit=True) as db:
            web_back, worker_back = _recovery(db, poster, plan.pushes[2 * third])
            # Like 17TRACK, retry what was refused; then the rest of the stream.
            refused = [push for push, status, _, _ in poster.answers if status != 200]
            assert set(poster.post_all(refused)) == {200}, procs.tails()
            assert set(poster.post_all(plan.pushes[2 * third + 1 :])) == {200}, procs.tails()
            wait_until("the inbox drained", lambda: inbox_drained(db, PUSHES), timeout=120)
            wait_until("stoptracks settled", lambda: stoptracks_settled(db), timeout=120)
            down = _answered_while_down(poster.answers, outage)
            calls = sim.calls("stoptrack")
            resent, resent_after_lost_answer = _resent(calls, outage)
            figures = event_figures(
                "database restart", db, PUSHES, poster.acknowledged(),
                answered_while_down=dict(down), refused_and_retried=len(refused),
                healthz_while_down=outage.health, web_back_seconds=round(web_back, 1),
                worker_back_seconds=round(worker_back, 1), stoptrack_items_resent=len(resent),
                stoptrack_items_resent_after_an_answer_lost_in_the_outage=resent_after_lost_answer,
            )  # fmt: skip
            wrong = wrong_final_states(db, plan)
            unfinished = _stoptracks_not_done(db)
        stopped_at_provider = {n for n in plan.final if sim.state.parcels[n].tracking == "Stopped"}

    assert {status for _, status, _, _ in poster.answers} <= {200, 503}
    assert sum(down.values()) > 0 and set(down) == {503}, down
    assert outage.health != 200
    assert web_back <= WEB_RECOVERY_LIMIT and worker_back <= WORKER_RECOVERY_LIMIT
    assert (figures.acknowledged, figures.applied, figures.doubled, figures.lost) == (PUSHES, PUSHES, 0, 0)
    assert wrong == [], wrong[:5]
    assert stopped_at_provider == plan.delivered
    assert resent == [], _calls_of(resent, calls, outage.cut_at, outage.back_at)
    assert unfinished == {}, unfinished


def _cut_while_posting(proxy: TcpProxy, poster: Poster, pushes: list[Push], base: str) -> Outage:
    """Post `pushes` and cut the database in the middle of them; restore it DOWN_SECONDS later."""
    already = len(poster.answers)
    loader = threading.Thread(target=poster.post_all, args=(pushes,))
    loader.start()
    wait_until("a tenth of them posted", lambda: len(poster.answers) >= already + len(pushes) // 10, 60, 0.01)
    proxy.cut()
    down_from, cut_at = time.monotonic(), time.time()
    health = _health(base)
    loader.join(timeout=120)
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_from)))
    down_until = time.monotonic()
    proxy.restore()
    return Outage(down_from, down_until, cut_at, time.time(), health)


def _resent(calls: list[dict], outage: Outage) -> tuple[list[str], int]:
    """Stoptrack items sent again although their answer was recorded (must be none), and how many
    were sent again after an answer the outage kept from being recorded (legitimate).

    A call made from shortly before the cut (its answer or its settling may fall in the cut) until
    the return may not have been recorded.
    """
    resent = resent_items(calls, (outage.cut_at - 2 * CALL_TIMEOUT, outage.back_at))
    every_resend = resent_items(calls)
    if every_resend:
        print(_calls_of(every_resend, calls, outage.cut_at, outage.back_at))
    return resent, len(every_resend) - len(resent)


def _stoptracks_not_done(db: psycopg.Connection) -> dict[str, int]:
    """Stoptrack operations by status, other than done: a resend answered "already stopped" is done."""
    query = "SELECT status, count(*) FROM operations WHERE kind = 'stoptrack' AND status <> 'done' GROUP BY 1"
    return dict(db.execute(query).fetchall())


def _health(base: str) -> int | str:
    try:
        return requests.get(f"{base}/healthz", timeout=10).status_code
    except requests.RequestException as exc:
        return exc.__class__.__name__


def _recovery(db: psycopg.Connection, poster: Poster, push: Push) -> tuple[float, float]:
    """Seconds from the database's return until a webhook is acknowledged again, and until a worker
    has applied that webhook (signalled as usual: nobody restarts anything)."""
    back = time.monotonic()
    inbox_id = wait_until("a webhook acknowledged again", lambda: poster.post_for_id(push)[1], 60, 0.1)
    web = time.monotonic() - back
    query = "SELECT status FROM inbox WHERE id = %s"
    wait_until(
        "a worker applying it", lambda: db.execute(query, (inbox_id,)).fetchone()[0] != "pending", 60, 0.1
    )
    return web, time.monotonic() - back


def _answered_while_down(answers, outage: Outage) -> dict[int | str, int]:  # type: ignore[no-untyped-def]
    """Answers to requests sent after the cut and answered before the database returned."""
    counts: dict[int | str, int] = {}
    for _, status, sent, answered in answers:
        if sent >= outage.down_from and answered <= outage.down_until:
            counts[status] = counts.get(status, 0) + 1
    return counts


def _calls_of(numbers: list[str], calls: list[dict], cut_at: float, back_at: float) -> str:
    """Each resent number's calls, timed from the cut (the database came back at `back_at`)."""
    lines = [f"database cut at 0.0 s, back at {back_at - cut_at:.1f} s"]
    for number in sorted(set(numbers))[:5]:
        mine = [c for c in calls if number in c.get("numbers", [])]
        lines.append(f"{number}: " + ", ".join(f"{c['at'] - cut_at:+.1f}s {c['status']}" for c in mine))
    return "\n".join(lines)
