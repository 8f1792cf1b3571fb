"""The durable inbox: every accepted webhook body, verbatim, before any processing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow

PENDING = "pending"
PROCESSED = "processed"
FAILED = "failed"


class InboxEvent(Base):
    __tablename__ = "inbox"
    __table_args__ = (
        # Claiming scans only pending rows, oldest first.
        Index(
            "ix_inbox_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Failed rows are few and operators list them; keep that cheap at any inbox size.
        Index(
            "ix_inbox_failed",
            "id",
            postgresql_where=text("status = 'failed'"),
            sqlite_where=text("status = 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    # "push" for webhooks; "gettrackinfo" for data pulled to backfill missed pushes.
    source: Mapped[str] = mapped_column(String(16), default="push", server_default="push")
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # What processing did: applied, duplicate, stale, stopped, unknown_event, failed.
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
