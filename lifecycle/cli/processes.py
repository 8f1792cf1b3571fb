"""Process commands: run (embedded, all in one), serve, worker, beat."""

from __future__ import annotations

import os
import sys

import click

from config.settings import PROJECT_ROOT

CELERY = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]


# `serve`'s default; bench/_harness.py runs both sides of its comparisons with it.
SERVE_WORKERS = 2


def _gunicorn(host: str, port: int, workers: int, threads: int | None = None) -> list[str]:
    """`serve`'s command line: gunicorn supervising uvicorn's workers, each an event loop that
    answers webhooks itself (lifecycle/web/asgi.py) and runs Flask's routes in WEB_THREADS threads
    (`threads`, when given, instead)."""
    command = [
        sys.executable, "-m", "gunicorn", "lifecycle.asgi:app",
        "--bind", f"{host}:{port}", "--workers", str(workers),
        "--worker-class", "lifecycle.web.worker.ServeWorker",
        # Keep-alive as nginx's default: a provider's pooled connection, idle a few seconds between
        # deliveries, is not closed just as it is reused (gunicorn's 2 s invites that race, and
        # an event loop closes an expired connection before reading what arrived on it).
        # Idle connections cost an event loop next to nothing.
        "--keep-alive", "75",
        # gunicorn's own lines in the service's format (LOG_FORMAT), secrets masked.
        "--logger-class", "lifecycle.observability.logs.GunicornLogger",
    ]  # fmt: skip
    if threads is not None:
        command += ["--env", f"WEB_THREADS={threads}"]
    from config.settings import get_settings

    if get_settings().access_log:
        # Opt-in: even into /dev/null, gunicorn formats a line per request (some 50 µs of CPU each).
        command += ["--access-logfile", "-"]
    return command


def _database_ready(upgrade_embedded: bool) -> None:
    """The database at the code's revision before a process starts: the embedded SQLite file is
    brought there (the newcomer's `run` needs no release step); a server database is only checked,
    since migrating it is a release step (`manage.py db upgrade`), and a process on an old schema
    would fail on every request or write into columns that are gone."""
    from config.settings import get_settings
    from lifecycle import migrate
    from lifecycle.cli.errors import ExpectedFailure

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite and upgrade_embedded:
        before = migrate.current_revision(settings.database_url)
        migrate.upgrade(settings.database_url)
        if before not in (None, migrate.head_revision()):
            click.echo(f"lifecycle: database upgraded from {before} to {migrate.head_revision()}", err=True)
        return
    problem = migrate.schema_problem(settings.database_url)
    if problem:
        raise ExpectedFailure(f"{problem}; not starting")


def _metrics_folder(role: str) -> None:
    """Prometheus multiprocess files for the processes this command starts (see observability.multiproc)."""
    from config.settings import get_settings
    from lifecycle.observability import multiproc

    multiproc.prepare(role, get_settings().metrics_root)


def _check_port(host: str, port: int) -> None:
    from lifecycle.cli.errors import ExpectedFailure
    from lifecycle.cli.supervisor import port_problem

    problem = port_problem(host, port)
    if problem:
        raise ExpectedFailure(problem)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Run web server, worker and beat together (embedded default: SQLite, no broker server)."""
    from config.settings import get_settings
    from lifecycle.cli.startup import provider_warnings
    from lifecycle.cli.supervisor import Supervisor

    _check_port(host, port)
    _database_ready(upgrade_embedded=True)
    _metrics_folder("run")
    for warning in provider_warnings(get_settings()):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"lifecycle: http://{host}:{port}  (Ctrl-C stops everything)")
    web = _gunicorn(host, port, workers=1)
    worker = [*CELERY, "worker", "--beat", "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO"]
    supervisor = Supervisor({"web": web, "worker": worker}, cwd=PROJECT_ROOT, echo=click.echo)
    sys.exit(supervisor.run())


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=SERVE_WORKERS, show_default=True, type=int)
@click.option(
    "--threads",
    type=click.IntRange(1, 512),
    help="Threads per process for the Flask routes [default: WEB_THREADS, 16]",
)
def serve(host: str, port: int, workers: int, threads: int | None) -> None:
    """Serve the web app with gunicorn and uvicorn's workers (production)."""
    _check_port(host, port)
    _database_ready(upgrade_embedded=True)
    _metrics_folder("serve")
    command = _gunicorn(host, port, workers, threads)
    os.execv(command[0], command)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker; extra arguments go to `celery worker` (e.g. --concurrency 4)."""
    _database_ready(upgrade_embedded=False)
    _metrics_folder("worker")
    command = [*CELERY, "worker", "--loglevel", "INFO", *celery_args]
    os.execv(command[0], command)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the scheduler (exactly one per deployment)."""
    _database_ready(upgrade_embedded=False)
    command = [*CELERY, "beat", "--loglevel", "INFO", *celery_args]
    os.execv(command[0], command)
