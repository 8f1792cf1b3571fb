"""Inbox and outbox for operators: failed rows, waiting operations, retry / cancel, pauses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.inbox.models import FAILED as INBOX_FAILED
from lifecycle.inbox.models import PENDING as INBOX_PENDING
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations import pause
from lifecycle.operations.models import CANCELLED, FAILED, IN_FLIGHT, PENDING, Operation

SHOWN = 100
WAITING = (PENDING, IN_FLIGHT, FAILED)


def inbox_summary(session: Session) -> dict[str, Any]:
    """Pending and failed counts and the oldest pending row: the partial indexes keep these cheap."""
    pending = session.scalar(select(func.count()).where(InboxEvent.status == INBOX_PENDING)) or 0
    failed = session.scalar(select(func.count()).where(InboxEvent.status == INBOX_FAILED)) or 0
    oldest_id = session.scalar(select(func.min(InboxEvent.id)).where(InboxEvent.status == INBOX_PENDING))
    oldest = session.get(InboxEvent, oldest_id) if oldest_id else None
    return {"pending": pending, "failed": failed, "oldest_pending_at": oldest.received_at if oldest else None}


def failed_inbox(session: Session, limit: int = SHOWN) -> list[InboxEvent]:
    stmt = select(InboxEvent).where(InboxEvent.status == INBOX_FAILED).order_by(InboxEvent.id.desc())
    return list(session.scalars(stmt.limit(limit)))


def operations(session: Session, status: str, limit: int = SHOWN) -> list[Operation]:
    stmt = select(Operation).where(Operation.status == status).order_by(Operation.id.desc())
    return list(session.scalars(stmt.limit(limit)))


def backlog(session: Session) -> dict[str, dict[str, int]]:
    """Operations not settled yet, by kind and status."""
    counts: dict[str, dict[str, int]] = {}
    stmt = (
        select(Operation.kind, Operation.status, func.count())
        .where(Operation.status.in_(WAITING))
        .group_by(Operation.kind, Operation.status)
    )
    for kind, status, count in session.execute(stmt):
        counts.setdefault(kind, {})[status] = count
    return counts


def recent_errors(session: Session, limit: int = 5) -> list[Operation]:
    """The latest provider answers that were errors (failed, or waiting for a retry with a code)."""
    stmt = (
        select(Operation)
        .where(Operation.status.in_(WAITING), Operation.result_message.is_not(None))
        .order_by(Operation.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def pauses(session: Session) -> dict[str, dict[str, Any]]:
    """Paused operation kinds in force, keyed `<provider>:<kind>`, with code, reason, since, until."""
    return {key.removeprefix(pause.PREFIX): value for key, value in pause.in_force(session).items()}


def paused_operations(
    session: Session, paused: dict[str, dict[str, Any]], limit: int = SHOWN
) -> list[Operation]:
    """The operations held by a pause: pending, of a paused provider and kind, oldest first."""
    kinds = [tuple(key.split(":", 1)) for key in paused if ":" in key]
    if not kinds:
        return []
    held = or_(*(and_(Operation.provider == provider, Operation.kind == kind) for provider, kind in kinds))
    stmt = select(Operation).where(Operation.status == PENDING, held).order_by(Operation.id)
    return list(session.scalars(stmt.limit(limit)))


def retry(session: Session, ids: list[int]) -> int:
    """Send failed (or waiting) operations again now, with a fresh attempt budget."""
    stmt = (
        update(Operation)
        .where(Operation.id.in_(ids), Operation.status.in_((PENDING, FAILED)))
        .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), completed_at=None)
    )
    return session.execute(stmt).rowcount or 0


def cancel(session: Session, ids: list[int]) -> int:
    """Drop operations that were not sent (an in-flight one is the sender's to settle)."""
    stmt = (
        update(Operation)
        .where(Operation.id.in_(ids), Operation.status.in_((PENDING, FAILED)))
        .values(status=CANCELLED, completed_at=utcnow(), result_message="cancelled by an operator")
    )
    return session.execute(stmt).rowcount or 0
