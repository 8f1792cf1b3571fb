"""Health facts shared by /healthz and the CLI."""

from __future__ import annotations

from celery import Celery
from sqlalchemy import func, select

from config.settings import Settings
from lifecycle.cleanup.heartbeat import ages
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import FAILED, PENDING, InboxEvent


def broker_status(celery_app: Celery, settings: Settings) -> str:
    if settings.is_embedded_broker:
        folder = settings.broker_dir / "queue"
        return "ok" if folder.is_dir() else f"error: {folder} missing"
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"


def inbox_gauges() -> dict[str, int]:
    with db.new_session() as session:
        counts = dict(
            session.execute(
                select(InboxEvent.status, func.count())
                .where(InboxEvent.status.in_([PENDING, FAILED]))
                .group_by(InboxEvent.status)
            ).all()
        )
    return {"inbox_pending": counts.get(PENDING, 0), "inbox_failed": counts.get(FAILED, 0)}


def worker_gauges(settings: Settings) -> dict[str, object]:
    """Heartbeat ages of workers and beat, with a sentence for each that has fallen silent."""
    with db.new_session() as session:
        return ages(session, utcnow(), settings)
