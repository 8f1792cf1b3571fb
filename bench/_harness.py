"""Shared plumbing for the benchmarks: ports, a throwaway PostgreSQL database, child processes.

Everything a bench starts goes through `Harness`, whose `close()` (run from a `finally`) stops the
children by process group and drops the database, so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
# Scripts run as `python bench/x.py`: make the project importable without installing it.
sys.path.insert(0, str(PROJECT_ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "redis://127.0.0.1:6379/3"  # not 15-13: `make test` workers flush those
API_KEY = "benchkey"
PYTHON = sys.executable
# lifecycle.celery.QUEUES: drain signals go to "inbox", provider flushes to "provider".
CELERY_QUEUES = ("lifecycle", "inbox", "provider")
from config.settings import Settings  # noqa: E402
from lifecycle.cli.processes import SERVE_WORKERS, _gunicorn  # noqa: E402

# As many threads as `serve` gives Flask by default (WEB_THREADS).
SERVE_THREADS: int = Settings.model_fields["web_threads"].default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_pushes(path: Path, items: list[tuple[bytes, str]]) -> None:
    """One "<sign> <body>" per line, read by the wrk scripts (wrk has no sha256 to sign with)."""
    with open(path, "wb") as out:
        for body, sign in items:
            assert b"\n" not in body  # pushes.encode() writes compact one-line JSON
            out.write(sign.encode() + b" " + body + b"\n")


def wait_until(what: str, check, timeout: float, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


def max_per_second(times: list[float]) -> int:
    """The most timestamps (seconds) falling in any one-second window: what a provider's limit sees."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def plain_url(database_url: str) -> str:
    """The psycopg form of a SQLAlchemy URL (for direct connections from the bench itself)."""
    return database_url.replace("+psycopg", "")


def ours(port: int) -> list[str]:
    """Our service, as `manage.py serve` runs it (its own command line and defaults)."""
    return _gunicorn("127.0.0.1", port, SERVE_WORKERS)


def bare_flask(port: int) -> list[str]:
    """Issue 11's reference: a bare Flask endpoint under gunicorn's threaded workers, with as many
    processes as `serve` and as many threads as `serve` gives Flask."""
    return [
        PYTHON, "-m", "gunicorn", "bench.bare_app:app", "--bind", f"127.0.0.1:{port}",
        "--workers", str(SERVE_WORKERS), "--worker-class", "gthread", "--threads", str(SERVE_THREADS),
        "--logger-class", "lifecycle.observability.logs.GunicornLogger",
    ]  # fmt: skip


# For reports: the options after the app and --bind.
SERVE_OPTS = ours(0)[6:]
BARE_OPTS = bare_flask(0)[6:]


def _term_to_exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # so `finally` blocks run when we are killed politely


class Harness:
    def __init__(self, label: str) -> None:
        signal.signal(signal.SIGTERM, _term_to_exit)
        self.run_id = f"{label}_{time.strftime('%H%M%S')}_{uuid.uuid4().hex[:6]}"
        # bench/out/ is git-ignored: child logs (and the beat schedule) land there, not in var/.
        self.out = BENCH_DIR / "out" / self.run_id
        self.out.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.database: str | None = None

    # -- database -------------------------------------------------------------------------------
    def create_database(self) -> str:
        """A fresh database named after the run, migrated with the project's own command."""
        name = f"bench_{self.run_id}".lower()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.database = name
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        self.run_checked([PYTHON, "manage.py", "db", "upgrade"], self.env(url), "migrate")
        return url

    def drop_database(self) -> None:
        if self.database is None:
            return
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.database = None

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        (self.out / "var").mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url,
            BROKER_URL=BROKER_URL,
            SEVENTEENTRACK_API_KEY=API_KEY,
            VAR_DIR=str(self.out / "var"),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    # -- processes ------------------------------------------------------------------------------
    def run_checked(
        self, cmd: list[str], env: dict[str, str] | None, name: str, timeout: float = 120
    ) -> None:
        with open(self.out / f"{name}.log", "wb") as log:
            code = subprocess.run(
                cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        if code != 0:
            raise RuntimeError(f"{name} failed ({code}); see {self.out / (name + '.log')}")

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        # A new session per child: stopping its process group also stops gunicorn/celery children.
        log = open(self.out / f"{name}.log", "ab")  # noqa: SIM115 (closed when the child is)
        self.procs[name] = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str, grace: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def start_worker(self, env: dict[str, str], name: str = "worker", timeout: float = 90) -> float:
        """`manage.py worker --concurrency 2`; returns (time.time()) when it logs 'ready.'."""
        log = self.out / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        cmd = [PYTHON, "manage.py", "worker", "--concurrency", "2", "--hostname", f"{self.run_id}-{name}@%h"]
        self.start(name, cmd, env)
        wait_until(f"{name}'s 'ready.' line", lambda: b" ready." in log.read_bytes()[offset:], timeout, 0.05)
        return time.time()

    def foreign_workers(self) -> list[int]:
        """Pids of Celery workers this bench did not start: if they use Redis db 3 too, they take our
        signals and share the provider limiter (same API key), which skews rate figures."""
        ours = {proc.pid for proc in self.procs.values()}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                group = os.getpgid(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
            if b"workers.celery_app" in cmdline and b"worker" in cmdline and group not in ours:
                found.append(int(entry.name))
        return found

    def serve(
        self, name: str, env: dict[str, str] | None = None, command: Callable[[int], list[str]] = ours
    ) -> str:
        """Run our service (or `command`'s server) on a free port; its base URL once /healthz answers."""
        port = free_port()
        self.start(name, command(port), env)
        self.wait_healthy(name, f"http://127.0.0.1:{port}")
        return f"http://127.0.0.1:{port}"

    def wait_healthy(self, name: str, base_url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited early; see {self.out / (name + '.log')}")
            try:
                if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not healthy after {timeout:.0f}s; see {self.out / (name + '.log')}")

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for data in self.out.glob("*.pushes"):  # regenerated each run; only the logs are worth keeping
            data.unlink()
        try:
            self.drop_database()
        finally:
            # Signals sent while no worker ran would otherwise wait in Redis for the next run.
            self.clear_queues()

    @staticmethod
    def clear_queues() -> None:
        """Drop queued Celery signals in db 3 (left by earlier runs, for databases long gone)."""
        try:
            redis.Redis.from_url(BROKER_URL, socket_timeout=2).delete(*CELERY_QUEUES)
        except redis.RedisError:
            pass
