"""What the reliability tests share: a database of their own, real service processes, signed pushes
and the figures each test prints and asserts (sent, acknowledged, applied, doubled, lost).

Every process a test starts goes through `Processes`, whose `close()` (a fixture's teardown) stops
each one by its process group, so a failure or a timeout leaves nothing running behind it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from lifecycle import migrate
from lifecycle.providers import pushes
from lifecycle.providers import seventeentrack as st
from tests.conftest import API_KEY, PG_ADMIN

ROOT = Path(__file__).resolve().parent.parent
CARRIER = 3011
# Variables of the developer's shell that would point a child process away from its own state.
_OURS = ("DATABASE_URL", "BROKER_URL", "LIMITER_URL", "VAR_DIR", "CARGOAI_", "SEVENTEENTRACK_", "SWEEP_")
# Each number's pushes as main/sub status, by number index % 5: three of five end delivered.
_START = ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp"]
SEQUENCES = [_START + ["OutForDelivery/OutForDelivery_Other", "Delivered/Delivered_Other"]] * 3 + [
    _START + ["InTransit/InTransit_Departure", "OutForDelivery/OutForDelivery_Other"],
    _START + ["InTransit/InTransit_Departure", "InTransit/InTransit_Arrival"],
]
STEPS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")


# -- a database of the test's own --------------------------------------------------------------------
@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, migrated; dropped (connections and all) afterwards."""
    name = f"lifecycle_rel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plain(database_url: str) -> str:
    return database_url.replace("+psycopg", "")


def service_env(database_url: str, broker_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every child: this test's database, broker and simulator, quick sweeps."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OURS)}
    var_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        VAR_DIR=str(var_dir),
        SEVENTEENTRACK_API_KEY=API_KEY,
        # The sweeper re-dispatches what a lost signal or a dead worker left: every second here.
        SWEEP_INTERVAL_SECONDS="1",
        SWEEP_PENDING_AFTER_SECONDS="1",
        SEVENTEENTRACK_TIMEOUT_SECONDS="3",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


# -- service processes --------------------------------------------------------------------------------
class Processes:
    """Children of one test, each in its own process group, with its output in a log file."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_offsets: dict[str, int] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, lines: int = 15) -> str:
        """The end of every child's log, for an assertion message."""
        return "\n".join(
            f"--- {name}.log\n" + "\n".join(self.log(name).splitlines()[-lines:]) for name in self.procs
        )

    def serve(self, env: dict[str, str], name: str = "web") -> str:
        """`manage.py serve` (gunicorn) on a free port; its base URL once /healthz answers."""
        port = free_port()
        self.start(name, [sys.executable, "manage.py", "serve", "--port", str(port)], env)
        base = f"http://127.0.0.1:{port}"
        wait_until(f"{name} healthy", lambda: self._healthy(name, base), timeout=90)
        return base

    def worker(self, env: dict[str, str], name: str = "worker", *celery_args: str) -> None:
        """`manage.py worker` (prefork, 2 processes unless told); returns once it logs 'ready.'."""
        self.start_worker(env, name, *celery_args)
        self.wait_ready([name])

    def start_worker(self, env: dict[str, str], name: str, *celery_args: str) -> None:
        args = list(celery_args) if "--concurrency" in celery_args else ["--concurrency", "2", *celery_args]
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
        self._log_offsets[name] = len(self.log(name))
        self.start(name, [sys.executable, "manage.py", "worker", "--hostname", hostname, *args], env)

    def wait_ready(self, names: list[str]) -> None:
        for name in names:
            wait_until(f"{name} ready", lambda name=name: self._ready(name), timeout=90)

    def beat(self, env: dict[str, str]) -> None:
        self.start("beat", [sys.executable, "manage.py", "beat"], env)

    def _healthy(self, name: str, base: str) -> bool:
        self._check_alive(name)
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _ready(self, name: str) -> bool:
        self._check_alive(name)
        return " ready." in self.log(name)[self._log_offsets.get(name, 0) :]

    def _check_alive(self, name: str) -> None:
        code = self.procs[name].poll()
        assert code is None, f"{name} exited with {code}:\n{self.log(name)[-3000:]}"

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group (a Celery worker and its pool): a crash, no clean-up."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, name: str, grace: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


# -- pushes ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Push:
    number: str
    event_time: datetime  # naive UTC, as the database stores it
    status: str
    body: bytes

    @property
    def key(self) -> tuple[str, datetime]:
        return self.number, self.event_time


@dataclass
class Plan:
    """Pushes for some numbers, 4 each (rising event times), and what each number must end as."""

    pushes: list[Push]
    final: dict[str, tuple[str, datetime]]

    @property
    def delivered(self) -> set[str]:
        return {number for number, (status, _) in self.final.items() if status == "delivered"}


def plan_pushes(prefix: str, count: int, order: str = "rounds", seed: int = 7) -> Plan:
    """`count` signed pushes over count/4 numbers. `rounds`: every number's 1st push, then every
    2nd, ..., shuffled within a round; `shuffled`: all of them in random order."""
    rng, base = random.Random(seed), datetime(2026, 3, 1)
    numbers = [f"{prefix}{j:07d}" for j in range(count // STEPS)]
    rounds: list[list[Push]] = [[] for _ in range(STEPS)]
    final: dict[str, tuple[str, datetime]] = {}
    for j, number in enumerate(numbers):
        for step in range(STEPS):
            main, sub = SEQUENCES[j % 5][step].split("/")
            when = base + timedelta(seconds=j, hours=step)
            body = pushes.encode(
                pushes.tracking_updated(number, CARRIER, main, sub, when.replace(tzinfo=UTC))
            )
            status = st.map_status(main, sub)[0] or ""
            rounds[step].append(Push(number, when, status, body))
            final[number] = (status, when)
    for round_ in rounds:
        rng.shuffle(round_)
    ordered = [push for round_ in rounds for push in round_]
    if order == "shuffled":
        rng.shuffle(ordered)
    return Plan(ordered, final)


class Poster:
    """Posts signed pushes concurrently, as 17TRACK's delivery does; remembers every answer."""

    def __init__(self, base_url: str, threads: int = 16, timeout: float = 30.0) -> None:
        self.url = f"{base_url}/webhooks/17track"
        self.threads, self.timeout = threads, timeout
        self.answers: list[tuple[Push, int | str, float, float]] = []  # push, status, sent, answered

    def post(self, push: Push) -> int | str:
        return self.post_for_id(push)[0]

    def post_for_id(self, push: Push) -> tuple[int | str, int | None]:
        """The answer's status (or the client error's name) and, once stored, the inbox id."""
        started, inbox_id = time.monotonic(), None
        headers = {"sign": st.sign(push.body, API_KEY), "Content-Type": "application/json"}
        try:
            response = requests.post(self.url, data=push.body, headers=headers, timeout=self.timeout)
            status: int | str = response.status_code
            if status == 200:
                inbox_id = response.json()["inbox_id"]
        except requests.RequestException as exc:
            status = exc.__class__.__name__
        self.answers.append((push, status, started, time.monotonic()))
        return status, inbox_id

    def post_all(self, items: list[Push]) -> list[int | str]:
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(self.post, items))

    def acknowledged(self) -> set[tuple[str, datetime]]:
        return {push.key for push, status, _, _ in self.answers if status == 200}


# -- what the database and the provider say -----------------------------------------------------------
def applied_counts(db: psycopg.Connection) -> Counter[tuple[str, datetime]]:
    """How many history rows each (number, event time) produced: 1 each when applied once."""
    rows = db.execute(
        "SELECT s.number, t.event_time, count(*) FROM transitions t JOIN shipments s ON s.id = t.shipment_id"
        " WHERE t.kind <> 'stopped' GROUP BY 1, 2"
    ).fetchall()
    return Counter({(number, when): n for number, when, n in rows})


def stoptrack_operations(db: psycopg.Connection) -> Counter[str]:
    rows = db.execute(
        "SELECT number, count(*) FROM operations WHERE kind = 'stoptrack' GROUP BY 1"
    ).fetchall()
    return Counter(dict(rows))


def inbox_states(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM inbox GROUP BY 1").fetchall())


def inbox_drained(db: psycopg.Connection, total: int) -> bool:
    states = inbox_states(db)
    return states.get("pending", 0) == 0 and sum(states.values()) >= total


def stoptracks_settled(db: psycopg.Connection) -> bool:
    return not db.execute(
        "SELECT 1 FROM shipments WHERE tracking = 'stopping'"
        " UNION ALL SELECT 1 FROM operations WHERE status IN ('pending', 'in_flight') LIMIT 1"
    ).fetchall()


def final_states(db: psycopg.Connection) -> dict[str, tuple[str, datetime, str]]:
    rows = db.execute("SELECT number, status, last_event_at, tracking FROM shipments").fetchall()
    return {number: (status, when, tracking) for number, status, when, tracking in rows}


def wrong_final_states(db: psycopg.Connection, plan: Plan, delivered_as: str = "stopped") -> list[str]:
    """Numbers whose status or latest event is not their newest push's, or, if delivered, whose
    tracking is not `delivered_as` (stopped; stopping while no stoptrack is sent)."""
    got = final_states(db)
    problems = []
    for number, (status, when) in plan.final.items():
        state = got.get(number)
        want_tracking = delivered_as if status == "delivered" else "tracking"
        if state != (status, when, want_tracking):
            problems.append(f"{number}: {state}, want {(status, when, want_tracking)}")
    return problems


def resent_items(calls: list[dict[str, Any]], unrecorded: tuple[float, float] | None = None) -> list[str]:
    """Numbers sent again after a call of theirs was answered: a duplicate registration or stoptrack.

    A call that timed out, was reset or answered 429/5xx lost its answer: sending its numbers
    again is the retry, not a duplicate. So is a call made within `unrecorded` (wall-clock times),
    when the test took away the database the service records answers in.
    """
    answered: set[str] = set()
    doubled = []
    for call in sorted(calls, key=lambda c: c["at"]):
        lost = call.get("fault") is not None or call["status"] in (None, 429) or call["status"] >= 500
        lost = lost or (unrecorded is not None and unrecorded[0] <= call["at"] <= unrecorded[1])
        for number in call.get("numbers", []):
            if number in answered:
                doubled.append(number)
            if not lost:
                answered.add(number)
    return doubled


@dataclass
class Figures:
    """What a reliability test reports and asserts."""

    name: str
    sent: int
    acknowledged: int
    applied: int
    doubled: int
    lost: int
    extra: dict[str, Any] = field(default_factory=dict)

    def show(self) -> Figures:
        more = "".join(f", {key} {value}" for key, value in self.extra.items())
        print(
            f"\n[{self.name}] sent {self.sent}, acknowledged {self.acknowledged}, applied {self.applied},"
            f" doubled {self.doubled}, lost {self.lost}{more}"
        )
        return self


def event_figures(
    name: str, db: psycopg.Connection, sent: int, acknowledged: set[tuple[str, datetime]], **extra: Any
) -> Figures:
    """Applied / doubled / lost for events, with duplicate stoptrack operations counted as doubled."""
    applied = applied_counts(db)
    doubled = sum(n - 1 for n in applied.values() if n > 1)
    doubled += sum(n - 1 for n in stoptrack_operations(db).values() if n > 1)
    lost = len(acknowledged - set(applied))
    return Figures(name, sent, len(acknowledged), len(applied), doubled, lost, extra).show()


# -- a database connection the test can cut ---------------------------------------------------------
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
