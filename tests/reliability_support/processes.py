"""The service as real processes for the reliability tests: a database of the test's own, the
children's environment, `manage.py serve` / `worker` / `beat`, and the simulator they call.

Every process a test starts goes through `Processes`, whose `close()` (a fixture's teardown) stops
each one by its process group, so a failure or a timeout leaves nothing running behind it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import requests

from lifecycle import migrate
from simulators.seventeentrack import SimulatorServer
from tests.conftest import API_KEY, PG_ADMIN

ROOT = Path(__file__).resolve().parent.parent.parent
# Variables of the developer's shell that would point a child process away from its own state.
_OURS = ("DATABASE_URL", "BROKER_URL", "LIMITER_URL", "VAR_DIR", "CARGOAI_", "SEVENTEENTRACK_", "SWEEP_")
# Provider calls per second in tests whose subject is not the rate limit (17TRACK's is 3): stoptracks
# for thousands of deliveries then take seconds, not minutes. The limiter has tests of its own.
QUICK_RATE = 10


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
def fresh_database(users: Processes | None = None) -> Iterator[str]:
    """A new PostgreSQL database, migrated; dropped afterwards, once `users` are stopped."""
    name = f"lifecycle_rel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if users is not None:
            users.close()
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
        SEVENTEENTRACK_RATE_PER_SECOND=str(QUICK_RATE),
        # The sweeper's last resort for operations left in flight (a flush takes them back sooner).
        OPERATION_LEASE_SECONDS="20",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def simulator(**options: Any) -> SimulatorServer:
    """The 17TRACK simulator as these tests use it: parcels move only when told, QUICK_RATE calls/s."""
    return SimulatorServer(API_KEY, step_seconds=None, **{"rate_per_second": QUICK_RATE, **options})


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

    def stop(self, *names: str, grace: float = 10.0) -> None:
        """SIGTERM each one's process group, together; SIGKILL what is still there after `grace`."""
        procs = [proc for proc in (self.procs.pop(name, None) for name in names) if proc is not None]
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            running = [proc for proc in procs if proc.poll() is None]
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            for proc in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.stop(*self.procs)
