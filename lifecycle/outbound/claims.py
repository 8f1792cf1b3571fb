"""Claiming due deliveries (in order per endpoint and shipment) and settling their attempts."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from lifecycle.cleanup.runs import raise_alert
from lifecycle.db import utcnow
from lifecycle.outbound.models import (
    DELIVERED,
    FAILED,
    IN_FLIGHT,
    PENDING,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    OutboundEvent,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What one HTTP attempt needs, read while claiming so the call holds no database session."""

    delivery_id: int
    endpoint_id: int
    url: str
    secret: str
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    latency_ms: int
    excerpt: str | None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    disable_after_failures: int
    disable_after_hours: float

    def delay(self, attempts: int) -> float:
        """Exponential from `base_seconds`, capped; jitter only lengthens, so the span is a floor."""
        exponent = min(attempts - 1, 60)
        return min(self.max_seconds, self.base_seconds * 2.0**exponent) * random.uniform(1.0, 1.25)


def claim(session: Session, limit: int) -> list[Job]:
    """Claim due deliveries whose earlier deliveries (same endpoint and shipment) are all settled."""
    now = utcnow()
    earlier = aliased(Delivery)
    open_before = (
        select(earlier.id)
        .where(
            earlier.endpoint_id == Delivery.endpoint_id,
            earlier.shipment_id == Delivery.shipment_id,
            earlier.id < Delivery.id,
            earlier.status.in_((PENDING, IN_FLIGHT)),
        )
        .exists()
    )
    stmt = (
        select(Delivery)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(
            Delivery.status == PENDING,
            Delivery.next_attempt_at <= now,
            Endpoint.enabled.is_(True),
            ~open_before,
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    )
    deliveries = list(session.scalars(stmt))
    for delivery in deliveries:
        delivery.status, delivery.claimed_at = IN_FLIGHT, now
        delivery.attempts += 1
    return _jobs(session, deliveries)


def _jobs(session: Session, deliveries: list[Delivery]) -> list[Job]:
    if not deliveries:
        return []
    endpoints = {
        e.id: e
        for e in session.scalars(select(Endpoint).where(Endpoint.id.in_({d.endpoint_id for d in deliveries})))
    }
    events = {
        e.id: e
        for e in session.scalars(
            select(OutboundEvent).where(OutboundEvent.id.in_({d.event_id for d in deliveries}))
        )
    }
    return [
        Job(
            delivery_id=d.id,
            endpoint_id=d.endpoint_id,
            url=endpoints[d.endpoint_id].url,
            secret=endpoints[d.endpoint_id].secret,
            message_id=events[d.event_id].public_id,
            payload=events[d.event_id].payload,
        )
        for d in deliveries
    ]


def settle(session: Session, results: list[tuple[Job, Outcome]], policy: RetryPolicy) -> dict[str, int]:
    """Log each attempt; a success closes its delivery, a failure retries later or gives up."""
    counts = {"delivered": 0, "retrying": 0, "given_up": 0, "disabled": 0}
    now = utcnow()
    # Endpoint rows are updated in id order, so two settling workers never deadlock on them.
    for job, outcome in sorted(results, key=lambda pair: (pair[0].endpoint_id, pair[0].delivery_id)):
        delivery = session.get(Delivery, job.delivery_id)
        if delivery is None:  # its endpoint was removed meanwhile
            continue
        session.add(DeliveryAttempt(delivery_id=delivery.id, attempted_at=now, ok=outcome.ok,
                                    status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                                    response_excerpt=outcome.excerpt))  # fmt: skip
        counts[_settle_one(session, delivery, outcome, policy, now)] += 1
    session.flush()
    counts["disabled"] = disable_failing(session, policy, now)
    return counts


def _settle_one(
    session: Session, delivery: Delivery, outcome: Outcome, policy: RetryPolicy, now: datetime
) -> str:
    endpoint_row = update(Endpoint).where(Endpoint.id == delivery.endpoint_id)
    delivery.claimed_at = None
    if outcome.ok:
        delivery.status, delivery.completed_at, delivery.last_error = DELIVERED, now, None
        session.execute(endpoint_row.values(consecutive_failures=0, failing_since=None, last_success_at=now))
        return "delivered"
    delivery.last_error = outcome.excerpt if outcome.status_code is None else f"HTTP {outcome.status_code}"
    session.execute(endpoint_row.values(consecutive_failures=Endpoint.consecutive_failures + 1))
    session.execute(endpoint_row.where(Endpoint.failing_since.is_(None)).values(failing_since=now))
    if delivery.attempts >= policy.max_attempts:
        delivery.status, delivery.completed_at = FAILED, now
        log.warning("outbound delivery %d given up after %d attempts", delivery.id, delivery.attempts)
        return "given_up"
    delivery.status = PENDING
    delivery.next_attempt_at = now + timedelta(seconds=policy.delay(delivery.attempts))
    return "retrying"


def disable_failing(session: Session, policy: RetryPolicy, now: datetime) -> int:
    """Disable endpoints failing for long enough and often enough, each with an alert."""
    cutoff = now - timedelta(hours=policy.disable_after_hours)
    stmt = select(Endpoint).where(
        Endpoint.enabled.is_(True),
        Endpoint.consecutive_failures >= policy.disable_after_failures,
        Endpoint.failing_since <= cutoff,
    )
    disabled = 0
    for endpoint in session.scalars(stmt.with_for_update(skip_locked=True)):
        since = f"{endpoint.failing_since:%Y-%m-%d %H:%M}"
        reason = f"{endpoint.consecutive_failures} consecutive failures since {since} UTC"
        endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason
        # Without its query string: a receiver's URL may carry a token of its own.
        url = urlsplit(endpoint.url)._replace(query="", fragment="").geturl()
        raise_alert(session, "outbound", alert_key(endpoint.id),
                    f"outbound endpoint {endpoint.id} ({url}) disabled: {reason}",
                    {"endpoint_id": endpoint.id, "url": url})  # fmt: skip
        disabled += 1
    return disabled


def alert_key(endpoint_id: int) -> str:
    return f"outbound:disabled:{endpoint_id}"


def release_abandoned(session: Session, lease_seconds: float) -> int:
    """Put back deliveries whose worker died between claiming and settling them."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    stmt = (
        update(Delivery)
        .where(Delivery.status == IN_FLIGHT, Delivery.claimed_at < cutoff)
        .values(status=PENDING, claimed_at=None, next_attempt_at=utcnow())
    )
    return session.execute(stmt).rowcount or 0
