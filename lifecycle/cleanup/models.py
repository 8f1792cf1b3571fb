"""What the scheduled jobs leave behind: one row per run, process heartbeats and job alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow


class JobRun(Base):
    """One run of a scheduled job (by beat or `manage.py cleanup JOB`): when, what it did, or why not."""

    __tablename__ = "job_runs"
    # `cleanup --list` and the overview read the latest run of each job.
    __table_args__ = (Index("ix_job_runs_job_id", "job", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Heartbeat(Base):
    """The last sign of life of one worker or beat process, refreshed by a tiny periodic task."""

    __tablename__ = "heartbeats"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "worker" or "beat".
    kind: Mapped[str] = mapped_column(String(16))
    # Celery's node name for a worker (celery@host), "beat@host" for the scheduler.
    name: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class JobAlert(Base):
    """Something a job found that an operator must hear about, raised once per `key` until resolved.

    Examples: drift against 17TRACK's quota appeared; a number 17TRACK will stop or delete soon.
    Delivered once to ALERT_WEBHOOK_URL by the sweeper, retried on its next rounds until sent.
    """

    __tablename__ = "job_alerts"
    # The sweeper looks for undelivered alerts every few seconds: only those are indexed.
    __table_args__ = (
        Index(
            "ix_job_alerts_undelivered",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    # Names the condition (e.g. "drift:17track"); a unique key makes "raise once" a constraint.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the alert webhook took it (or at once when none is configured: it was logged).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_error: Mapped[str | None] = mapped_column(Text)


class InboxRetry(Base):
    """How often the retry job has put a failed inbox row back, so it stops after a limit."""

    __tablename__ = "inbox_retries"

    inbox_id: Mapped[int] = mapped_column(ForeignKey("inbox.id", ondelete="CASCADE"), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_retried_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
