"""Retention: empty processed inbox bodies past INBOX_RETENTION_DAYS; trim the jobs' own history.

The inbox body is the only raw provider payload kept: a transition stores what was read from it
(status, event time, description) and points at its inbox row, so emptying the body purges the raw
payload of that row's transitions too. Rows themselves stay (their id, outcome and time are the
audit trail); failed and pending rows keep their bodies, whatever their age. The ledger is never
touched. `replay` can rebuild only the rows whose body is kept: `replay_window` says which.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from lifecycle.cleanup.models import Heartbeat, JobAlert, JobRun
from lifecycle.cleanup.runs import JobContext, last_completed_run
from lifecycle.inbox.models import PROCESSED, InboxEvent

JOB = "retention"


def purge_old(context: JobContext) -> None:
    """Empty old processed inbox bodies in batches, then delete old job runs, alerts and heartbeats."""
    _purge_inbox_bodies(context)
    if not context.dry_run:
        _trim_job_history(context)


def _purge_inbox_bodies(context: JobContext) -> None:
    cutoff = context.now - timedelta(days=context.settings.inbox_retention_days)
    context.counts["retention_cutoff"] = cutoff.isoformat()
    with context.session_factory() as session:
        previous = last_completed_run(session, JOB)
    # Rows up to the last run's high-water mark were purged (or kept on purpose) already.
    after = int((previous.counts or {}).get("scanned_through_id") or 0) if previous else 0
    through = previous.counts.get("purged_through_received_at") if previous else None
    while not context.out_of_time():
        with context.session_factory() as session, session.begin():
            rows = _next_rows(session, after, context.settings.cleanup_batch_size)
            # Inbox ids grow with arrival: the first row inside the window ends the scan.
            old = list(takewhile(lambda row: row.received_at < cutoff, rows))
            purgeable = [row for row in old if row.status == PROCESSED and row.size]
            context.tally("inbox_bodies_purged", len(purgeable))
            context.tally("inbox_bytes_freed", sum(row.size for row in purgeable))
            if purgeable and not context.dry_run:
                ids = [row.id for row in purgeable]
                session.execute(update(InboxEvent).where(InboxEvent.id.in_(ids)).values(body=b""))
        if old:
            after = old[-1].id
            newest = max(row.received_at for row in old).isoformat()
            through = max(through or "", newest)
        if len(old) < context.settings.cleanup_batch_size:
            break
    context.counts["scanned_through_id"] = after
    context.counts["purged_through_received_at"] = through


def _next_rows(session: Session, after: int, limit: int) -> list[Any]:
    # Sizes, not bodies: a batch never loads the payloads it is about to drop.
    stmt = (
        select(
            InboxEvent.id,
            InboxEvent.status,
            InboxEvent.received_at,
            func.length(InboxEvent.body).label("size"),
        )
        .where(InboxEvent.id > after)
        .order_by(InboxEvent.id)
        .limit(limit)
    )
    return list(session.execute(stmt))


def _trim_job_history(context: JobContext) -> None:
    cutoff = context.now - timedelta(days=context.settings.job_history_retention_days)
    # The latest completed run of each job is kept: it is what `cleanup --list` and replay read.
    latest = (
        select(func.max(JobRun.id))
        .where(JobRun.finished_at.is_not(None), JobRun.error.is_(None), JobRun.dry_run.is_(False))
        .group_by(JobRun.job)
    )
    with context.session_factory() as session, session.begin():
        runs = session.execute(delete(JobRun).where(JobRun.started_at < cutoff, JobRun.id.not_in(latest)))
        alerts = session.execute(delete(JobAlert).where(JobAlert.resolved_at < cutoff))
        beats = session.execute(delete(Heartbeat).where(Heartbeat.beat_at < cutoff))
    context.add("job_runs_deleted", runs.rowcount or 0)
    context.add("alerts_deleted", alerts.rowcount or 0)
    context.add("heartbeats_deleted", beats.rowcount or 0)


def replay_window(session: Session) -> dict[str, Any]:
    """What `replay` can rebuild: inbox rows after `purged_through_id` still have their bodies.

    For `manage.py replay`: copy only rows with id > purged_through_id and print `message`.
    """
    run = last_completed_run(session, JOB)
    counts = run.counts if run else {}
    through: str | None = counts.get("purged_through_received_at")
    if not through or not counts.get("scanned_through_id"):
        return {"complete": True, "purged_through_id": 0, "purged_through_received_at": None,
                "message": "replay can rebuild the whole history: no inbox body has been purged"}  # fmt: skip
    since = datetime.fromisoformat(through)
    return {
        "complete": False,
        "purged_through_id": int(counts["scanned_through_id"]),
        "purged_through_received_at": through,
        "message": (
            f"replay can rebuild only what arrived after {since:%Y-%m-%d %H:%M} UTC: older inbox bodies "
            "were purged by the retention job (INBOX_RETENTION_DAYS); the ledger itself is complete"
        ),
    }
