"""Helpers for the admin console tests: an admin, CSRF tokens, signing in, seeded shipments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from lifecycle.admin import accounts
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.shipments.models import Shipment

EMAIL = "ops@example.com"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def create_admin(app: Any, email: str = EMAIL, password: str = PASSWORD) -> None:
    with app.app_context(), db.new_session() as session, session.begin():
        accounts.create_admin(session, email, password)


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def csrf(client: Any, path: str = "/admin/sign-in") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def sign_in(client: Any, email: str = EMAIL, password: str = PASSWORD) -> Any:
    token = csrf(client)
    return client.post("/admin/sign-in", data={"email": email, "password": password, "csrf_token": token})


def add_shipments(app: Any, count: int, start: datetime | None = None, **values: Any) -> list[int]:
    """`count` 17TRACK shipments RR000000001XX…, one hour apart (last event and registration)."""
    start = start or utcnow() - timedelta(days=30)
    rows = []
    for index in range(count):
        when = start + timedelta(hours=index)
        fields = {
            "provider": "17track", "number": f"RR{index + 1:09d}CN", "carrier": 3011, "status": "in_transit",
            "tracking": "tracking", "registered_at": when, "last_event_at": when, "last_seen_at": when,
            "last_event_description": f"event {index + 1}", **values,
        }  # fmt: skip
        rows.append(Shipment(**fields))
    with app.app_context(), db.new_session() as session, session.begin():
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]
