"""Deciding, claiming and settling outbox operations."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.locks import LEASE_SECONDS
from lifecycle.metrics import count_operation
from lifecycle.operations.models import CANCELLED, DONE, FAILED, IN_FLIGHT, PENDING, Operation


def cancel_pending(
    session: Session, shipment_ids: Sequence[int], kinds: Sequence[str], reason: str = "stopped by provider"
) -> None:
    """No call is needed any more: the provider stopped these shipments on its own, or they are
    moving again, so their queued stop operations (`kinds`) are withdrawn while still unsent."""
    if not shipment_ids or not kinds:
        return
    session.execute(
        update(Operation)
        .where(
            Operation.shipment_id.in_(shipment_ids),
            Operation.kind.in_(kinds),
            Operation.status == PENDING,
        )
        .values(status=CANCELLED, completed_at=utcnow(), result_message=reason)
    )


def claim_ready(session: Session, provider: str, kind: str, limit: int) -> list[Operation]:
    """Claim up to `limit` due operations, one per number; the caller commits before the call.

    One per number, because 17TRACK answers per number: two operations on the same number in one
    call could not be told apart. The others stay pending for the next call.
    """
    now = utcnow()
    stmt = (
        select(Operation)
        .where(
            Operation.status == PENDING,
            Operation.provider == provider,
            Operation.kind == kind,
            Operation.next_attempt_at <= now,
        )
        .order_by(Operation.id)
        .limit(limit * 2)
        .with_for_update(skip_locked=True)
    )
    operations: dict[str, Operation] = {}
    for operation in session.scalars(stmt):
        if operation.number not in operations and len(operations) < limit:
            operations[operation.number] = operation
    for operation in operations.values():
        operation.status = IN_FLIGHT
        operation.claimed_at = now
        operation.attempts += 1
    return list(operations.values())


def release(operation: Operation) -> None:
    """Give a claimed operation back untouched (claimed, then not sent)."""
    operation.status = PENDING
    operation.attempts -= 1
    operation.claimed_at = None


def retry_later(operations: Sequence[Operation], error: str, max_attempts: int, floor: float) -> None:
    """Back off exponentially with jitter; give up (failed) after `max_attempts`."""
    now = utcnow()
    for operation in operations:
        operation.result_message = error
        if operation.attempts >= max_attempts:
            operation.status = FAILED
            operation.completed_at = now
            count_operation(operation.provider, operation.kind, "failed")
            continue
        count_operation(operation.provider, operation.kind, "retried")
        delay = max(floor, min(300.0, 2.0 ** (operation.attempts - 1)))
        operation.status = PENDING
        operation.next_attempt_at = now + timedelta(seconds=delay * random.uniform(1.0, 1.25))


def settle(operation: Operation, code: int | None, message: str | None, ok: bool) -> None:
    operation.status = DONE if ok else FAILED
    count_operation(operation.provider, operation.kind, "sent" if ok else "failed")
    operation.result_code = code
    operation.result_message = message
    operation.completed_at = utcnow()


def release_abandoned(session: Session, lease_seconds: float) -> int:
    """Put back operations whose worker died between claiming and settling them."""
    cutoff: datetime = utcnow() - timedelta(seconds=lease_seconds)
    result = session.execute(
        update(Operation)
        .where(Operation.status == IN_FLIGHT, Operation.claimed_at < cutoff)
        .values(status=PENDING, next_attempt_at=utcnow())
    )
    return result.rowcount or 0


def any_in_flight_since(session: Session, seconds: float) -> bool:
    """Whether an operation has been in flight longer than a live sender's call could take: its
    sender died, and the next flush takes it back (the sweeper's own lease is far longer)."""
    cutoff = utcnow() - timedelta(seconds=seconds)
    stmt = select(Operation.id).where(Operation.status == IN_FLIGHT, Operation.claimed_at < cutoff)
    return bool(session.scalars(stmt.limit(1)).all())


def count_ready(session: Session, provider: str | None = None) -> int:
    """1 if any operation is due (of this provider), else 0: a cheap existence check."""
    stmt = select(Operation.id).where(Operation.status == PENDING, Operation.next_attempt_at <= utcnow())
    if provider:
        stmt = stmt.where(Operation.provider == provider)
    return len(session.scalars(stmt.limit(1)).all())


def reclaim_abandoned(session: Session, provider: str, call_timeout: float) -> int:
    """Give back operations a dead sender left in flight, as soon as its call must have ended.

    Senders run only under the send lock, so an operation still in flight when a sender starts
    was claimed by a previous holder; once that holder's lease and any call it made are over, it
    is gone, and waiting for the sweeper's much longer lease would only delay stoptracks.
    """
    cutoff = utcnow() - timedelta(seconds=2 * call_timeout + LEASE_SECONDS)
    stmt = (
        update(Operation)
        .where(Operation.provider == provider, Operation.status == IN_FLIGHT, Operation.claimed_at < cutoff)
        .values(status=PENDING, next_attempt_at=utcnow())
    )
    return session.execute(stmt).rowcount or 0


def queued_since(session: Session, since: datetime) -> bool:
    """Whether an operation queued at or after `since` is still waiting and due."""
    stmt = select(Operation.id).where(
        Operation.status == PENDING, Operation.created_at >= since, Operation.next_attempt_at <= utcnow()
    )
    return bool(session.scalars(stmt.limit(1)).all())
