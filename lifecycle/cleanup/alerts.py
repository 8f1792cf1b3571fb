"""Delivering the jobs' alerts to the optional alert webhook, the way budget alerts go there.

A job raises an alert once per condition (runs.raise_alert: a drift against 17TRACK's quota or
list, a number 17TRACK will delete soon, a CargoAi subscription about to end). The sweeper posts
each one once to ALERT_WEBHOOK_URL; a failed post is kept with its error and tried again on the
sweeper's next round, oldest first. Without a webhook an alert counts as delivered: it was logged
when raised and stays on the admin overview and `cleanup --list` until resolved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting.alerts import post_each
from lifecycle.cleanup.models import JobAlert

# Posted per sweep at most: a burst (many numbers about to be deleted) drains over a few rounds.
BATCH = 50


def deliver(session: Session, url: str, timeout: float = 5.0) -> int:
    """POST each undelivered job alert as JSON; returns how many were delivered now."""
    # Locked and skipped by a second sweeper at the same time (PostgreSQL): each alert is sent once.
    stmt = (
        select(JobAlert)
        .where(JobAlert.delivered_at.is_(None))
        .order_by(JobAlert.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return post_each(session.scalars(stmt), url, _body, timeout, "a job alert")


def _body(alert: JobAlert) -> dict[str, Any]:
    return {
        "job": alert.job,
        "alert": alert.key.split("#resolved-", 1)[0],
        "message": alert.message,
        "details": alert.details,
        "raised_at": alert.raised_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }
