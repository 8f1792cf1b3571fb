"""`manage.py simulate`: the whole service against the 17TRACK simulator, to watch it work."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import click
import requests

from config.settings import PROJECT_ROOT

DEMO_KEY = "simulator-demo-key"


def _wait_healthy(base: str, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise click.ClickException("the service exited during start-up")
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.3)
    raise click.ClickException("the service did not become healthy in time")


def _summary(env: dict[str, str]) -> tuple[Counter[str], Counter[str]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from lifecycle.db import make_engine
    from lifecycle.shipments.models import Shipment

    engine = make_engine(f"sqlite:///{Path(env['VAR_DIR']) / 'lifecycle.sqlite3'}", writes=False)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Shipment.status, Shipment.tracking)).all()
    finally:
        engine.dispose()
    return Counter(s for s, _ in rows), Counter(t for _, t in rows)


def _register(env: dict[str, str], count: int) -> None:
    from lifecycle.observability.progress import Progress, on_terminal

    numbers = [f"SIM{i:08d}CN" for i in range(count)]
    with Progress("registering", count, "numbers", enabled=on_terminal()) as bar:
        for start in range(0, count, 500):
            subprocess.run(
                [sys.executable, "manage.py", "register", *numbers[start : start + 500]],
                cwd=PROJECT_ROOT, env=env, check=False, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            bar.advance(len(numbers[start : start + 500]))


def _choose_port(port: int) -> int:
    """The port to start the service on: a free one when 0, else the one asked for if it is free.

    The demo only ever talks to the service it started itself, so a taken port is refused rather
    than shared with whatever is listening there (a `make run` of the user's, say).
    """
    from lifecycle.cli.supervisor import port_problem

    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    problem = port_problem("127.0.0.1", port)
    if problem:
        raise click.ClickException(problem.replace("--port", "simulate --port (or leave it out)"))
    return port


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
def simulate(count: int, port: int, step_seconds: float, duplicate_rate: float, reorder_rate: float,
             until_settled: bool, timeout: float) -> None:  # fmt: skip
    """Run the service against the 17TRACK simulator: register numbers, watch them get delivered.

    State lives in VAR_DIR/simulate/, wiped at each start; your own database is not touched, and no
    17TRACK account is needed.
    """
    from config.settings import get_settings
    from simulators.seventeentrack import SimulatorServer

    var_dir = get_settings().var_dir / "simulate"
    port = _choose_port(port)
    # A demo starts from nothing, and never touches the real state in var/.
    shutil.rmtree(var_dir, ignore_errors=True)
    base = f"http://127.0.0.1:{port}"
    options = {"webhook_url": f"{base}/webhooks/17track", "step_seconds": step_seconds,
               "duplicate_rate": duplicate_rate, "reorder_rate": reorder_rate}  # fmt: skip
    with SimulatorServer(DEMO_KEY, **options) as sim:
        env = {
            **os.environ,
            "VAR_DIR": str(var_dir),
            "SEVENTEENTRACK_API_KEY": DEMO_KEY,
            "SEVENTEENTRACK_API_URL": sim.url,
            "DATABASE_URL": "",
            "BROKER_URL": "filesystem://",
        }
        click.echo(f"simulator at {sim.url}; service at {base} (state in {var_dir}); Ctrl-C to stop")
        child = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        settled = False
        try:
            _wait_healthy(base, child)
            _register(env, count)
            settled = _watch(env, sim, count, until_settled, timeout)
        except KeyboardInterrupt:
            pass
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
    if until_settled and not settled:
        raise click.ClickException(f"not settled within {timeout:.0f} s")


def _watch(env: dict[str, str], sim, count: int, until_settled: bool, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    from lifecycle.observability.progress import Progress, on_terminal

    # On a terminal, a bar of settled shipments (rate, ETA) instead of a status line every 2 s.
    with Progress("settled", count, "shipments", enabled=on_terminal()) as bar:
        return _watch_until(env, sim, count, until_settled, timeout, bar)


def _watch_until(env, sim, count, until_settled, timeout, bar) -> bool:  # type: ignore[no-untyped-def]
    from lifecycle.observability.progress import on_terminal

    announced = False
    deadline = time.monotonic() + timeout if timeout else None
    while deadline is None or time.monotonic() < deadline:
        statuses, tracking = _summary(env)
        calls = Counter(c["endpoint"] for c in sim.calls())
        settled = sum(tracking[t] for t in ("stopped", "rejected", "deleted"))
        bar.update_to(settled)
        if not on_terminal():
            click.echo(
                f"[{time.strftime('%H:%M:%S')}] statuses {dict(statuses)} | tracking {dict(tracking)} | "
                f"API calls {dict(calls)} | pushes {len(sim.pushes())}"
            )
        if not announced and settled >= count * 0.8 and not tracking["stopping"]:
            announced = True
            click.echo("most shipments are settled (delivered ones stopped); Ctrl-C to stop")
            if until_settled:
                return True
        time.sleep(2)
    return announced
