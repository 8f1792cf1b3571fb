"""Read side of the outbox: what the operator sees of operations still being retried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.operations.models import PENDING, Operation


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def retrying(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """Pending operations that failed at least once: what went wrong and when the next try is."""
    stmt = (
        select(Operation)
        .where(Operation.status == PENDING, Operation.attempts > 0)
        .order_by(Operation.next_attempt_at)
        .limit(limit)
    )
    return [
        {
            "kind": op.kind,
            "provider": op.provider,
            "number": op.number,
            "attempts": op.attempts,
            "last_error": op.result_message,
            "next_attempt_at": _iso(op.next_attempt_at),
        }
        for op in session.scalars(stmt)
    ]


def retrying_count(session: Session) -> int:
    stmt = select(func.count()).where(Operation.status == PENDING, Operation.attempts > 0)
    return session.scalar(stmt) or 0


def retries_by_shipment(session: Session, shipment_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """For each listed shipment, its operation being retried (the most recent one), if any."""
    if not shipment_ids:
        return {}
    stmt = (
        select(Operation)
        .where(
            Operation.shipment_id.in_(list(shipment_ids)),
            Operation.status == PENDING,
            Operation.attempts > 0,
        )
        .order_by(Operation.id)
    )
    found: dict[int, dict[str, Any]] = {}
    for op in session.scalars(stmt):
        found[op.shipment_id] = {  # type: ignore[index]
            "kind": op.kind,
            "attempts": op.attempts,
            "last_error": op.result_message,
            "next_attempt_at": _iso(op.next_attempt_at),
        }
    return found
