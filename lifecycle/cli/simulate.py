"""`manage.py simulate`: the whole service against the 17TRACK simulator, to watch it work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

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

    from config.settings import Settings
    from lifecycle import create_app
    from lifecycle.extensions import db
    from lifecycle.shipments.models import Shipment

    app = create_app(Settings(var_dir=env["VAR_DIR"]))
    with app.app_context(), db.new_session() as session:
        rows = session.execute(select(Shipment.status, Shipment.tracking)).all()
    db.engine.dispose()  # type: ignore[union-attr]
    return Counter(s for s, _ in rows), Counter(t for _, t in rows)


def _register(env: dict[str, str], count: int) -> None:
    numbers = [f"SIM{i:08d}CN" for i in range(count)]
    for start in range(0, count, 500):
        subprocess.run(
            [sys.executable, "manage.py", "register", *numbers[start : start + 500]],
            cwd=PROJECT_ROOT, env=env, check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip


@click.command()
@click.option("--count", default=50, show_default=True, help="How many numbers to register.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port of the service.")
@click.option("--step-seconds", default=3.0, show_default=True, help="How often simulated parcels move.")
@click.option("--duplicate-rate", default=0.1, show_default=True, help="Share of pushes delivered twice.")
@click.option("--reorder-rate", default=0.1, show_default=True, help="Share of pushes delivered late.")
def simulate(count: int, port: int, step_seconds: float, duplicate_rate: float, reorder_rate: float) -> None:
    """Run the service against the 17TRACK simulator: register numbers, watch them get delivered.

    State lives in var/simulate/, wiped at each start; your own var/ is not touched.
    """
    from lifecycle.simulator.seventeentrack import SimulatorServer

    var_dir = PROJECT_ROOT / "var" / "simulate"
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
            [sys.executable, "manage.py", "run", "--port", str(port)], cwd=PROJECT_ROOT, env=env
        )
        try:
            _wait_healthy(base, child)
            _register(env, count)
            _watch(env, sim, count)
        except KeyboardInterrupt:
            pass
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)


def _watch(env: dict[str, str], sim, count: int) -> None:  # type: ignore[no-untyped-def]
    announced = False
    while True:
        statuses, tracking = _summary(env)
        calls = Counter(c["endpoint"] for c in sim.calls())
        click.echo(
            f"[{time.strftime('%H:%M:%S')}] statuses {dict(statuses)} | tracking {dict(tracking)} | "
            f"API calls {dict(calls)} | pushes {len(sim.pushes())}"
        )
        settled = sum(tracking[t] for t in ("stopped", "rejected", "deleted"))
        if not announced and settled >= count * 0.8 and not tracking["stopping"]:
            announced = True
            click.echo("most shipments are settled (delivered ones stopped); Ctrl-C to stop")
        time.sleep(2)
