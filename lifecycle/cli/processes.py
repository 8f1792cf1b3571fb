"""Process commands: run (embedded, all in one), serve, worker, beat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from config.settings import PROJECT_ROOT, get_settings
from lifecycle import migrate

CELERY = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]


# `serve`'s defaults; bench/_harness.py runs both sides of its comparisons with them.
SERVE_WORKERS = 2
SERVE_THREADS = 16


def _gunicorn(host: str, port: int, workers: int, threads: int, app: str = "lifecycle.wsgi:app") -> list[str]:
    # gthread workers let concurrent webhooks share one inbox commit (lifecycle.inbox.writer).
    command = [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"{host}:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
    ]  # fmt: skip
    if os.environ.get("ACCESS_LOG"):
        # Opt-in: even into /dev/null, gunicorn formats a line per request (some 50 µs of CPU each).
        command += ["--access-logfile", "-"]
    return command


def _upgrade_embedded() -> None:
    settings = get_settings()
    if settings.is_sqlite:
        migrate.upgrade(settings.database_url)


def supervise(commands: list[list[str]], grace_seconds: float = 20.0) -> int:
    """Run child processes until one exits or we get SIGINT/SIGTERM, then stop them all."""
    children = [subprocess.Popen(cmd, cwd=PROJECT_ROOT, start_new_session=True) for cmd in commands]
    stop_requested = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop_requested and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if stop_requested else 1


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Run web server, worker and beat together (embedded default: SQLite, no broker server)."""
    _upgrade_embedded()
    click.echo(f"lifecycle: http://{host}:{port}  (Ctrl-C stops everything)")
    web = _gunicorn(host, port, workers=1, threads=16)
    worker = [*CELERY, "worker", "--beat", "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO"]
    sys.exit(supervise([web, worker]))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=SERVE_WORKERS, show_default=True, type=int)
@click.option("--threads", default=SERVE_THREADS, show_default=True, type=int)
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the web app with gunicorn (production)."""
    _upgrade_embedded()
    command = _gunicorn(host, port, workers, threads)
    os.execv(command[0], command)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker; extra arguments go to `celery worker` (e.g. --concurrency 4)."""
    command = [*CELERY, "worker", "--loglevel", "INFO", *celery_args]
    os.execv(command[0], command)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the scheduler (exactly one per deployment)."""
    command = [*CELERY, "beat", "--loglevel", "INFO", *celery_args]
    os.execv(command[0], command)


COMMANDS = (run, serve, worker, beat)
