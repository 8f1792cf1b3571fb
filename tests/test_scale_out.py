"""Scale-out on PostgreSQL + Redis: two worker machines, one web, one beat (and a second by mistake).

"Machines" are process groups with separate VAR_DIRs (beat schedule, metrics files, file locks)
sharing only PostgreSQL and Redis, started with the production commands (`serve`, `worker`,
`beat`). 20,000 pushes are posted over HTTP; each is applied exactly once — the inbox shows no
duplicate processing and the workers' own counters, read from each machine's metrics, add up to
exactly 20,000, with both machines having done part of it. The second beat stands by: its log
shows no send at all while the first one's shows its sends, and the job runs no more often than
one beat sends it.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from lifecycle.celery import QUEUES
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.conftest import PG_ADMIN, REDIS_URL
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
KEY = "scale-out-key"
NUMBERS, STEPS = 5_000, ("InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp",
                         "InTransit/InTransit_Departure", "InTransit/InTransit_Arrival")  # fmt: skip
EVENTS = NUMBERS * len(STEPS)
POSTERS = 8
JOB_INTERVAL = 1.0  # seconds between two sends of the retention job by the (one) scheduling beat
SENT = "Sending due task"  # celery.beat's line for each periodic task it sends


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Machines:
    """Child process groups, stopped (TERM, then KILL) whatever happens; logs in tmp_path."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.procs = logs, {}  # type: ignore[var-annotated]

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=grace)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue


@pytest.fixture
def database(postgres_url: str) -> Iterator[tuple[str, str]]:
    name = f"lifecycle_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    plain = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    yield plain.replace("postgresql://", "postgresql+psycopg://"), plain
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine_env(url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=url, BROKER_URL=REDIS_URL, SEVENTEENTRACK_API_KEY=KEY, VAR_DIR=str(var_dir),
        # Nothing here is delivered, so no provider call is due; were one made, it fails locally.
        SEVENTEENTRACK_API_URL="http://127.0.0.1:9", RETENTION_INTERVAL_SECONDS=str(JOB_INTERVAL),
        HEARTBEAT_INTERVAL_SECONDS="2", PYTHONUNBUFFERED="1", **extra,
    )  # fmt: skip
    return env


def signed_pushes() -> list[tuple[bytes, str]]:
    base, items = datetime(2026, 3, 1, tzinfo=UTC), []
    for step, status in enumerate(STEPS):
        main, sub = status.split("/")
        for j in range(NUMBERS):
            when = base + timedelta(seconds=j, hours=step)
            body = pushes.encode(pushes.tracking_updated(f"SO{j:06d}", 3011, main, sub, when))
            items.append((body, st.sign(body, KEY)))
    return items


def post_all(port: int, items: list[tuple[bytes, str]]) -> list[int]:
    """POST every push once over keep-alive connections from a few threads; the non-200 statuses."""
    failures: list[int] = []

    def post(share: list[tuple[bytes, str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body, sign in share:
            connection.request(
                "POST", "/webhooks/17track", body, {"sign": sign, "Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=post, args=(items[i::POSTERS],)) for i in range(POSTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def applied_by(samples: dict) -> float:  # type: ignore[type-arg]
    return sum(value for (name, _), value in samples.items() if name == "lifecycle_events_applied_total")


def http_ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/metrics")
        return connection.getresponse().status == 200
    except OSError:
        return False


def test_two_worker_machines_share_20000_events_and_a_second_beat_doubles_nothing(database, tmp_path):
    url, plain = database
    redis.Redis.from_url(REDIS_URL).flushdb()
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    web_port, b_metrics_port = free_port(), free_port()
    env_a = machine_env(url, machine_a)
    env_b = machine_env(url, machine_b, METRICS_PORT=str(b_metrics_port))
    assert subprocess.run([sys.executable, "manage.py", "db", "upgrade"], cwd=ROOT, env=env_a,
                          timeout=180).returncode == 0  # fmt: skip
    machines = Machines(tmp_path)
    try:
        machines.start("web-a", ["serve", "--port", str(web_port), "--workers", "2"], env_a)
        machines.start("worker-a", ["worker", "--concurrency", "2", "--hostname", "a@%h"], env_a)
        machines.start("worker-b", ["worker", "--concurrency", "2", "--hostname", "b@%h"], env_b)
        machines.start("beat-a", ["beat"], env_a)
        wait_for(lambda: http_ready(web_port) and http_ready(b_metrics_port), timeout=120, interval=0.2)
        wait_for(lambda: "stands by" not in machines.log("beat-a") and _job_runs(plain) > 0, timeout=120)
        machines.start("beat-b", ["beat"], env_b)  # the mistake
        wait_for(lambda: "another beat is scheduling" in machines.log("beat-b"), timeout=120, interval=0.2)
        leader_before = len(machines.log("beat-a"))

        started = time.monotonic()
        assert post_all(web_port, signed_pushes()) == []
        wait_for(lambda: _pending(plain) == 0, timeout=240, interval=0.5)
        print(f"\n20,000 pushes posted and applied in {time.monotonic() - started:.1f} s")
        machines.alive()

        # Exactly once: every row processed once (no duplicate outcome can come from a re-run of
        # a unique push), and the workers' counters, machine by machine, add up to 20,000.
        assert _outcomes(plain) == {"applied": EVENTS}
        web = scrape(web_port)
        stored = web[("lifecycle_webhooks_total", (("provider", "17track"), ("result", "stored")))]
        assert stored == EVENTS  # two gunicorn workers, one sum
        on_a, on_b = applied_by(web), applied_by(scrape(b_metrics_port))
        print(f"applied on machine A: {on_a:.0f}, on machine B: {on_b:.0f}")
        assert on_a + on_b == EVENTS and on_a > 0 and on_b > 0
        with psycopg.connect(plain) as connection:
            row = connection.execute(
                "SELECT count(*), count(*) FILTER (WHERE sub_status = 'InTransit_Arrival') FROM shipments"
            ).fetchone()
        assert row == (NUMBERS, NUMBERS)

        # One scheduling beat: the retention job runs at most once per interval, not twice. Counted
        # once the queues are empty: sends that waited behind the 20,000 events on a busy machine
        # all run at once when the workers get to them, which says nothing about how many beats sent.
        broker = redis.Redis.from_url(REDIS_URL)
        wait_for(lambda: sum(broker.llen(queue) for queue in QUEUES) == 0, timeout=120, interval=0.2)
        since, window = datetime.now(UTC), 8.0
        time.sleep(window)
        runs = _job_runs(plain, since)
        print(f"retention runs in {window:.0f} s with two beats up: {runs}")
        assert 1 <= runs <= window / JOB_INTERVAL + 2
        machines.alive()
        # Celery beat logs each send ("Scheduler: Sending due task …") at INFO: the leader kept
        # sending all along, the standby never sent a thing, nor became the leader.
        leader_sends = machines.log("beat-a")[leader_before:].count(SENT)
        standby = machines.log("beat-b")
        print(f"sends since the second beat started: leader {leader_sends}, standby {standby.count(SENT)}")
        assert leader_sends >= window / JOB_INTERVAL
        assert standby.count(SENT) == 0 and "now the scheduling beat" not in standby
    finally:
        machines.stop_all()


def _pending(plain: str) -> int:
    with psycopg.connect(plain) as connection:
        total, pending = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM inbox"
        ).fetchone()  # type: ignore[misc]
    return pending if total == EVENTS else -1


def _outcomes(plain: str) -> dict[str, int]:
    with psycopg.connect(plain) as connection:
        return dict(connection.execute("SELECT outcome, count(*) FROM inbox GROUP BY outcome").fetchall())


def _job_runs(plain: str, since: datetime | None = None) -> int:
    with psycopg.connect(plain) as connection:
        query = "SELECT count(*) FROM job_runs WHERE job = 'retention'"
        if since is None:
            return connection.execute(query).fetchone()[0]  # type: ignore[index]
        naive = since.replace(tzinfo=None)  # the database stores naive UTC
        return connection.execute(query + " AND started_at >= %s", (naive,)).fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("shared", ["redis", "file"])
def test_one_leader_at_a_time_and_a_standby_takes_over(shared, tmp_path, postgres_url):
    from lifecycle.beat import Leadership

    if shared == "redis":
        redis.Redis.from_url(REDIS_URL).delete("lock:beat-leader")
    url = REDIS_URL if shared == "redis" else ""
    first = Leadership(url, str(tmp_path / "locks" / "beat-leader.lock"), lease=1.0)
    second = Leadership(url, str(tmp_path / "locks" / "beat-leader.lock"), lease=1.0)
    assert first.holding() and not second.holding()
    assert first.holding() and not second.holding()  # renewed, still the leader
    if shared == "redis":
        # The leader stops renewing (it died): the standby takes over once the lease runs out.
        wait_for(second.holding, timeout=30, interval=0.1)
        assert not first.holding()
