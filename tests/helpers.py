"""Helpers shared by tests: signed pushes, polling, counting rows."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from lifecycle.extensions import db
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.shipments.models import Shipment
from simulators.seventeentrack import pushes
from tests.conftest import API_KEY

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def post_push(client: Any, payload: dict[str, Any], key: str = API_KEY) -> Any:
    body = pushes.encode(payload)
    return client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, key)})


def delivered(number: str, hours: float = 48, carrier: int = 3011) -> dict[str, Any]:
    return pushes.tracking_updated(number, carrier, "Delivered", "Delivered_Other", at(hours))


def in_transit(number: str, hours: float = 10, carrier: int = 3011) -> dict[str, Any]:
    return pushes.tracking_updated(number, carrier, "InTransit", "InTransit_PickedUp", at(hours))


def wait_for(condition: Callable[[], Any], timeout: float = 60, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def count(model: type, *where: Any) -> int:
    with db.new_session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def shipment(number: str) -> Shipment | None:
    with db.new_session() as session:
        return session.scalars(select(Shipment).where(Shipment.number == number)).first()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The Flask app behind the front door `manage.py serve` gives it (lifecycle/web/asgi.py), on
    uvicorn with a free loopback port, served from a thread; yields its base URL."""
    import uvicorn

    from lifecycle.web.asgi import WebhookIntakeAsgi

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(WebhookIntakeAsgi(app, flask_threads=8), lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def flush_through_rate_limits(app: Any, rounds: int = 100) -> list[dict[str, Any]]:
    """jobs.flush_operations, run again after each rate-limit pause as its countdown signal would
    have the workers do; returns every run's report."""
    from lifecycle import jobs

    reports = []
    with app.app_context():
        for _ in range(rounds):
            reports.append(jobs.flush_operations())
            if not reports[-1].get("retry_after"):
                return reports
            time.sleep(reports[-1]["retry_after"])
    raise AssertionError(f"still rate-limited after {rounds} flushes")
