"""Managing endpoints and replaying events to them (what `manage.py endpoint …` calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from lifecycle.cleanup.runs import resolve_alert
from lifecycle.db import utcnow
from lifecycle.outbound import signing
from lifecycle.outbound.claims import alert_key
from lifecycle.outbound.models import IN_FLIGHT, PENDING, Delivery, DeliveryAttempt, Endpoint, OutboundEvent
from lifecycle.outbound.record import STOPPED, UPDATED, iso, subscribed_endpoints
from lifecycle.outbound.sender import refuse_private
from lifecycle.status import STATUSES

EVENT_TYPES = (*STATUSES, UPDATED, STOPPED)
REPLAY_CHUNK = 1000


class EndpointError(ValueError):
    """A request about endpoints that cannot be done as asked (shown to the user as it is)."""


def add(session: Session, url: str, events: list[str] | None, allow_private: bool) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"not an http(s) URL: {url!r}")
    unknown = sorted(set(events or ()) - set(EVENT_TYPES))
    if unknown:
        raise EndpointError(f"unknown event types {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
    if not allow_private:
        try:
            refuse_private(url)
        except (ValueError, OSError) as exc:
            raise EndpointError(str(exc)) from exc
    endpoint = Endpoint(url=url, secret=signing.new_secret(), events=sorted(set(events)) if events else None)
    session.add(endpoint)
    session.flush()
    return endpoint


def get(session: Session, endpoint_id: int) -> Endpoint:
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise EndpointError(f"no endpoint {endpoint_id}")
    return endpoint


def remove(session: Session, endpoint_id: int) -> None:
    session.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint_id))
    session.delete(get(session, endpoint_id))
    resolve_alert(session, alert_key(endpoint_id))


def set_enabled(session: Session, endpoint_id: int, enabled: bool) -> Endpoint:
    """Enabling starts afresh (failure count, alert); deliveries queued meanwhile go out again."""
    endpoint = get(session, endpoint_id)
    endpoint.enabled = enabled
    endpoint.disabled_at = None if enabled else utcnow()
    endpoint.disabled_reason = None if enabled else "disabled by an operator"
    if enabled:
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
        resolve_alert(session, alert_key(endpoint_id))
    return endpoint


def describe(session: Session) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(
            select(Delivery.endpoint_id, func.count())
            .where(Delivery.status.in_((PENDING, IN_FLIGHT)))
            .group_by(Delivery.endpoint_id)
        ).all()
    )
    return [
        {
            "id": e.id,
            "url": e.url,
            "events": e.events or "all",
            "enabled": e.enabled,
            "disabled_reason": e.disabled_reason,
            "pending": counts.get(e.id, 0),
            "consecutive_failures": e.consecutive_failures,
            "failing_since": iso(e.failing_since),
            "last_success_at": iso(e.last_success_at),
            "created_at": iso(e.created_at),
        }
        for e in session.scalars(select(Endpoint).order_by(Endpoint.id))
    ]


def attempts(session: Session, endpoint_id: int, limit: int) -> list[dict[str, Any]]:
    """An endpoint's latest attempts, newest first: what it answered and how fast."""
    get(session, endpoint_id)
    stmt = (
        select(DeliveryAttempt, Delivery, OutboundEvent)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .join(OutboundEvent, OutboundEvent.id == Delivery.event_id)
        .where(Delivery.endpoint_id == endpoint_id)
        .order_by(DeliveryAttempt.id.desc())
        .limit(limit)
    )
    return [
        {
            "at": iso(attempt.attempted_at),
            "event": event.public_id,
            "type": event.type,
            "delivery_attempts": delivery.attempts,
            "ok": attempt.ok,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "response": attempt.response_excerpt,
            "delivery": delivery.status,
        }
        for attempt, delivery, event in session.execute(stmt).all()
    ]


def replay_event(session: Session, event_ref: str, endpoint_id: int | None = None) -> int:
    """Queue one event again (by id or `msg_…` id) to the enabled endpoints that want its type."""
    column = OutboundEvent.public_id if event_ref.startswith("msg_") else OutboundEvent.id
    event = session.scalars(select(OutboundEvent).where(column == event_ref)).first()
    if event is None:
        raise EndpointError(f"no outbound event {event_ref}")
    return _queue(session, [(event.id, event.type, event.shipment_id)], _targets(session, endpoint_id))


def replay_range(
    session: Session, since: datetime, until: datetime | None, endpoint_id: int | None = None
) -> int:
    """Queue every event recorded in [since, until) again, in their original order."""
    targets = _targets(session, endpoint_id)
    stmt = select(OutboundEvent.id, OutboundEvent.type, OutboundEvent.shipment_id).where(
        OutboundEvent.created_at >= since
    )
    if until is not None:
        stmt = stmt.where(OutboundEvent.created_at < until)
    queued, after = 0, 0
    while True:
        chunk = session.execute(
            stmt.where(OutboundEvent.id > after).order_by(OutboundEvent.id).limit(REPLAY_CHUNK)
        ).all()
        if not chunk:
            return queued
        queued += _queue(session, [tuple(row) for row in chunk], targets)
        after = chunk[-1][0]


def _targets(session: Session, endpoint_id: int | None) -> list[tuple[int, list[str] | None]]:
    if endpoint_id is not None and not get(session, endpoint_id).enabled:
        raise EndpointError(f"endpoint {endpoint_id} is disabled: `endpoint enable {endpoint_id}` first")
    return subscribed_endpoints(session, endpoint_id)


def _queue(
    session: Session, events: list[tuple[int, str, int | None]], targets: list[tuple[int, Any]]
) -> int:
    now = utcnow()
    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "shipment_id": shipment_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }  # fmt: skip
        for event_id, kind, shipment_id in events
        for endpoint_id, wanted in targets
        if wanted is None or kind in wanted
    ]
    if rows:
        session.execute(insert(Delivery), rows)
    return len(rows)
