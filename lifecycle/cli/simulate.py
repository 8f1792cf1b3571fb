"""`manage.py simulate`: the whole service against the 17TRACK simulator, to watch it work."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import requests

from config.settings import PROJECT_ROOT

DEMO_KEY = "simulator-demo-key"
# Tracking states after which nothing more happens to a shipment.
SETTLED = ("stopped", "rejected", "deleted")


def _wait_healthy(base: str, child: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise click.ClickException(f"the service exited during start-up:\n{_tail(log)}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.3)
    raise click.ClickException(f"the service did not become healthy in time (its log: {log})")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _load_watch_modules() -> None:
    """What the watch and the result import, so that none of it is first imported while a signal
    may arrive."""
    import lifecycle.observability.progress  # noqa: F401
    import lifecycle.shipments.models  # noqa: F401  (SQLAlchemy's ORM with it)


def _summary(env: dict[str, str]) -> tuple[Counter[str], Counter[str]]:
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from lifecycle.db import make_engine
    from lifecycle.shipments.models import Shipment

    path = Path(env["VAR_DIR"]) / "lifecycle.sqlite3"
    if not path.exists():  # stopped before the service created its database
        return Counter(), Counter()
    engine = make_engine(f"sqlite:///{path}", writes=False)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Shipment.status, Shipment.tracking)).all()
    except OperationalError:  # …or before it created its tables
        rows = []
    finally:
        engine.dispose()
    return Counter(s for s, _ in rows), Counter(t for _, t in rows)


def _register(env: dict[str, str], count: int, interactive: bool) -> None:
    from lifecycle.observability.progress import Progress

    numbers = [f"SIM{i:08d}CN" for i in range(count)]
    log = Path(env["VAR_DIR"]) / "service.log"
    with Progress("registering", count, "numbers", enabled=interactive) as bar, log.open("ab") as output:
        for start in range(0, count, 500):
            subprocess.run(
                [sys.executable, "manage.py", "register", *numbers[start : start + 500]],
                cwd=PROJECT_ROOT, env=env, check=False, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
            bar.advance(len(numbers[start : start + 500]))


def _choose_port(port: int) -> int:
    """The port to start the service on: a free one when 0, else the one asked for if it is free.

    The demo only ever talks to the service it started itself, so a taken port is refused rather
    than shared with whatever is listening there (a `make run` of the user's, say).
    """
    from lifecycle.cli.errors import ExpectedFailure
    from lifecycle.cli.supervisor import port_problem

    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    problem = port_problem("127.0.0.1", port)
    if problem:
        # Only the first part of the supervisor's sentence ("cannot listen on …: why"): its advice
        # is about `run`, and the demo's own advice is to let it choose.
        reason = problem.split(" — ", 1)[0]
        raise ExpectedFailure(
            f"{reason}. The demo starts a service of its own and never shares a port: leave out "
            f"--port to let it pick a free one, or choose another with --port {port + 1}."
        )
    return port


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C: the service it started is stopped and the result printed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option(
    "--count",
    default=50,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many numbers to register.",
)
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port for the demo service (default: a free one; never one already in use).",
)
@click.option(
    "--step-seconds",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="How often simulated parcels move.",
)
@click.option(
    "--duplicate-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of pushes delivered twice.",
)
@click.option(
    "--reorder-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of pushes delivered late.",
)
@click.option("--until-settled", is_flag=True, help="Exit (0) once most shipments are settled.")
@click.option(
    "--timeout", default=0.0, type=click.FloatRange(0), help="Give up after this many seconds (exit 1)."
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print one JSON object when it ends (settled, timed out, Ctrl-C or SIGTERM), nothing before.",
)  # fmt: skip
def simulate(count: int, port: int, step_seconds: float, duplicate_rate: float, reorder_rate: float,
             until_settled: bool, timeout: float, as_json: bool) -> None:  # fmt: skip
    """Run the service against the 17TRACK simulator: register numbers, watch them get delivered.

    State lives in VAR_DIR/simulate/, wiped at each start; your own database is not touched, and no
    17TRACK account is needed. On a terminal it shows progress bars; in a pipe or with --json it
    prints only the result, when it ends.
    """
    from config.settings import get_settings
    from lifecycle.observability.progress import on_terminal
    from simulators.seventeentrack import SimulatorServer

    # Loaded before SIGTERM or Ctrl-C can interrupt the demo: an import cut short leaves its package
    # half-initialised, and the result's database summary then failed ("module 'sqlalchemy.sql'
    # has no attribute 'base'") instead of printing.
    _load_watch_modules()
    interactive = on_terminal(as_json)
    # The simulator serves in this process: its request lines would be noise here.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    var_dir = get_settings().var_dir / "simulate"
    port = _choose_port(port)
    # A demo starts from nothing, and never touches the real state in var/.
    shutil.rmtree(var_dir, ignore_errors=True)
    base = f"http://127.0.0.1:{port}"
    options = {"webhook_url": f"{base}/webhooks/17track", "step_seconds": step_seconds,
               "duplicate_rate": duplicate_rate, "reorder_rate": reorder_rate}  # fmt: skip
    started = time.monotonic()
    with SimulatorServer(DEMO_KEY, **options) as sim, _sigterm_as_interrupt():
        env = {
            **os.environ,
            "VAR_DIR": str(var_dir),
            "SEVENTEENTRACK_API_KEY": DEMO_KEY,
            "SEVENTEENTRACK_API_URL": sim.url,
            "DATABASE_URL": "",
            "BROKER_URL": "filesystem://",
        }
        if interactive:
            click.echo(f"simulator at {sim.url}; service at {base} (state and service.log in {var_dir}); "
                       "Ctrl-C to stop")  # fmt: skip
        watch = Watch(env, sim, count, until_settled, timeout, interactive)
        ended = _run_service(base, env, port, watch)
        result = {"ended": ended, "settled": watch.settled, "seconds": round(time.monotonic() - started, 1),
                  "shipments": count, **watch.figures(), "service": base, "simulator": sim.url,
                  "state_dir": str(var_dir)}  # fmt: skip
    click.echo(json.dumps(result) if as_json else _result_line(result))
    if until_settled and not watch.settled:
        raise click.ClickException(f"not settled within {timeout:.0f} s")


def _run_service(base: str, env: dict[str, str], port: int, watch: Watch) -> str:
    """Start the service, register the numbers and watch them; how it ended: settled, timeout or
    interrupted. The service is stopped whatever happens.

    Its output goes to a log file beside its state: on a terminal it would tear the progress bars
    apart, and in a pipe the demo prints its result only.
    """
    log = Path(env["VAR_DIR"]) / "service.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        child = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_healthy(base, child, log)
        _register(env, watch.count, watch.interactive)
        return watch.run()
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)


def _result_line(result: dict[str, Any]) -> str:
    return (
        f"{result['settled_shipments']} of {result['shipments']} shipments settled after "
        f"{result['seconds']:.0f} s ({result['ended']}) | statuses {result['statuses']} | "
        f"tracking {result['tracking']} | API calls {result['api_calls']} | pushes {result['pushes']}"
    )


class Watch:
    """Polls the demo's database and the simulator every POLL_SECONDS until settled or timed out."""

    POLL_SECONDS = 2.0

    def __init__(self, env: dict[str, str], sim: Any, count: int, until_settled: bool, timeout: float,
                 interactive: bool) -> None:  # fmt: skip
        self.env, self.sim, self.count = env, sim, count
        self.until_settled, self.timeout, self.interactive = until_settled, timeout, interactive
        self.settled = False

    def figures(self) -> dict[str, Any]:
        statuses, tracking = _summary(self.env)
        return {
            "settled_shipments": sum(tracking[t] for t in SETTLED),
            "statuses": dict(statuses),
            "tracking": dict(tracking),
            "api_calls": dict(Counter(c["endpoint"] for c in self.sim.calls())),
            "pushes": len(self.sim.pushes()),
        }

    def run(self) -> str:
        from lifecycle.observability.progress import Progress

        # On a terminal, a bar of settled shipments (rate, ETA); elsewhere nothing until the end.
        with Progress("settled", self.count, "shipments", enabled=self.interactive) as bar:
            deadline = time.monotonic() + self.timeout if self.timeout else None
            while deadline is None or time.monotonic() < deadline:
                statuses, tracking = _summary(self.env)
                settled = sum(tracking[t] for t in SETTLED)
                bar.update_to(settled)
                if not self.settled and settled >= self.count * 0.8 and not tracking["stopping"]:
                    self.settled = True
                    if self.until_settled:
                        return "settled"
                    if self.interactive:
                        click.echo("most shipments are settled (delivered ones stopped); Ctrl-C to stop")
                time.sleep(self.POLL_SECONDS)
        return "timeout"
