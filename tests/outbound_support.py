"""What the outbound-event tests share: a receiver that can be down or slow, and send/drain helpers."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask import request
from sqlalchemy import select

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.outbound import endpoints
from lifecycle.outbound.job import options
from lifecycle.outbound.models import Delivery, Endpoint
from lifecycle.outbound.sender import send_due
from simulators.seventeentrack import pushes
from tests.helpers import at
from tests.receiver import HttpReceiver

# Retries due almost at once, so a test walks through many attempts in well under a second each;
# never given up, however slowly a loaded machine gets through them.
FAST_RETRIES = {
    "outbound_retry_base_seconds": 0.05,
    "outbound_retry_max_seconds": 0.2,
    "outbound_max_attempts": 1000,
}


class EventReceiver(HttpReceiver):
    """Records every request; answers 503 while `down` (or to bodies holding `refuse`); the next
    `slow` requests wait `delay` seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.delay = 0.0
        self.slow = 0
        self.refuse: bytes | None = None
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def _hook(self) -> tuple[str, int]:
        body = request.get_data()
        with self.lock:
            slow, self.slow = self.slow > 0, max(0, self.slow - 1)
        if slow:
            time.sleep(self.delay)
        status = 503 if self.down or (self.refuse and self.refuse in body) else 200
        with self.lock:
            self.requests.append({"headers": dict(request.headers), "body": body, "status": status})
        return ("ok" if status == 200 else "receiver down"), status

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies of the requests answered 2xx, parsed, in arrival order."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["status"] == 200]


def exception(number: str, hours: float) -> dict[str, Any]:
    return pushes.tracking_updated(number, 3011, "Exception", "Exception_Other", at(hours))


def drain(app: Any) -> None:
    with app.app_context():
        inbox.drain(db.new_session, batch_size=50)


def send(app: Any) -> dict[str, int]:
    with app.app_context():
        return send_due(db.new_session, options(app.config["SETTINGS"]), max_seconds=10)


def add_endpoint(app: Any, url: str, events: list[str] | None = None) -> tuple[int, str]:
    with app.app_context(), db.new_session() as session, session.begin():
        endpoint = endpoints.add(session, url, events, allow_private=True)
        return endpoint.id, endpoint.secret


def deliveries(app: Any) -> list[Delivery]:
    with app.app_context(), db.new_session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def endpoint(app: Any, endpoint_id: int) -> Endpoint:
    with app.app_context(), db.new_session() as session:
        return session.get(Endpoint, endpoint_id)
