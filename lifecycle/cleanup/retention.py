"""Retention: empty processed inbox bodies past INBOX_RETENTION_DAYS; trim the jobs' own history.

The inbox body is the only raw provider payload kept: a transition stores what was read from it
(status, event time, description) and points at its inbox row, so emptying the body purges the raw
payload of that row's transitions too. Rows themselves stay (their id, outcome and time are the
audit trail); failed and pending rows keep their bodies while they are failed or pending, and are
looked at again by later runs, so one processed since (by the retry job) is emptied in its turn.
The ledger is never touched. `replay` can rebuild only the rows whose body is kept: `replay_window`
says which.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class _Found:
    """What the scans learn: the lowest id still kept, the newest id purged (for replay)."""

    purged_through_id: int
    purged_through_received_at: str | None
    lowest_kept_id: int | None = None

    def settle(self, context: JobContext, session: Session, rows: list[Any]) -> None:
        """Purge the processed rows of a batch; note the lowest row kept for a later run."""
        purgeable = [row for row in rows if row.status == PROCESSED and row.size]
        kept = [row.id for row in rows if row.status != PROCESSED and row.size]
        if kept and (self.lowest_kept_id is None or kept[0] < self.lowest_kept_id):
            self.lowest_kept_id = kept[0]
        context.tally("inbox_bodies_purged", len(purgeable))
        context.tally("inbox_bytes_freed", sum(row.size for row in purgeable))
        if not purgeable or context.dry_run:
            return
        ids = [row.id for row in purgeable]
        session.execute(update(InboxEvent).where(InboxEvent.id.in_(ids)).values(body=b""))
        self.purged_through_id = max(self.purged_through_id, purgeable[-1].id)
        newest = max(row.received_at for row in purgeable).isoformat()
        self.purged_through_received_at = max(self.purged_through_received_at or "", newest)


def _purge_inbox_bodies(context: JobContext) -> None:
    """A forward scan from the last run's high-water mark, then a second look at the rows earlier
    runs kept (failed or pending then): a row processed since, by the retry job or a late drain,
    is purged in its turn instead of keeping its body for ever."""
    cutoff = context.now - timedelta(days=context.settings.inbox_retention_days)
    context.counts["retention_cutoff"] = cutoff.isoformat()
    with context.session_factory() as session:
        previous = last_completed_run(session, JOB)
    state = previous.counts if previous else {}
    scanned_before = int(state.get("scanned_through_id") or 0)
    # Runs from before `revisit_from_id` existed passed kept rows by for good: look at all again.
    revisit_from = state.get("revisit_from_id", 1 if scanned_before else None)
    found = _Found(
        int(state.get("purged_through_id", scanned_before) or 0), state.get("purged_through_received_at")
    )
    scanned = _scan_forward(context, cutoff, scanned_before, found)
    if revisit_from is not None and not context.must_stop():
        revisit_from = _revisit(context, cutoff, revisit_from, scanned_before, found)
    still_to_look_at = [found.lowest_kept_id, revisit_from]
    context.counts["scanned_through_id"] = scanned
    context.counts["revisit_from_id"] = min((i for i in still_to_look_at if i is not None), default=None)
    context.counts["purged_through_id"] = found.purged_through_id
    context.counts["purged_through_received_at"] = found.purged_through_received_at


def _scan_forward(context: JobContext, cutoff: datetime, after: int, found: _Found) -> int:
    """Rows after `after` up to the first inside the window; returns the last id looked at."""
    size, done = context.settings.cleanup_batch_size, 0
    total = _count_old(context, after, cutoff)
    while not context.must_stop():
        with context.session_factory() as session, session.begin():
            rows = _next_rows(session, after, size)
            # Inbox ids grow with arrival: the first row inside the window ends the scan.
            old = list(takewhile(lambda row: row.received_at < cutoff, rows))
            found.settle(context, session, old)
        if old:
            after, done = old[-1].id, done + len(old)
            if context.progress is not None:
                context.progress(done, max(done, total))
        if len(old) < size:
            break
    return after


def _count_old(context: JobContext, after: int, cutoff: datetime) -> int:
    """Rows the forward scan has ahead of it, counted only for a bar on a terminal."""
    if context.progress is None:
        return 0
    stmt = select(func.count()).where(InboxEvent.id > after, InboxEvent.received_at < cutoff)
    with context.session_factory() as session:
        return session.scalar(stmt) or 0


def _revisit(context: JobContext, cutoff: datetime, start: int, through: int, found: _Found) -> int | None:
    """Look again at the rows from `start` through `through` that still have a body (those earlier
    runs kept); None when done, else the id the next run starts from (time ran out)."""
    size, after = context.settings.cleanup_batch_size, start - 1
    while not context.must_stop():
        with context.session_factory() as session, session.begin():
            rows = _next_rows(session, after, size, through=through, cutoff=cutoff)
            found.settle(context, session, rows)
        context.add("inbox_rows_rechecked", len(rows))
        if len(rows) < size:
            return None
        after = rows[-1].id
    return after + 1


def _next_rows(
    session: Session, after: int, limit: int, through: int | None = None, cutoff: datetime | None = None
) -> list[Any]:
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
    if through is not None:
        # A second look: only rows that still have a body, none of them inside the window.
        stmt = stmt.where(InboxEvent.id <= through, func.length(InboxEvent.body) > 0)
    if cutoff is not None:
        stmt = stmt.where(InboxEvent.received_at < cutoff)
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
    """What `replay` can rebuild: inbox rows after `purged_through_id` all still have their bodies.

    For `manage.py replay`: copy only rows with id > purged_through_id and print `message`.
    `purged_through_id` is the newest row whose body was emptied, not how far the scan got: rows
    kept past it (failed or pending) stay replayable until retention empties them too.
    """
    run = last_completed_run(session, JOB)
    counts = run.counts if run else {}
    # Runs from before `purged_through_id` existed recorded only how far they had scanned.
    through_id = int(counts.get("purged_through_id", counts.get("scanned_through_id")) or 0)
    through: str | None = counts.get("purged_through_received_at")
    if not through or not through_id:
        return {"complete": True, "purged_through_id": 0, "purged_through_received_at": None,
                "message": "replay can rebuild the whole history: no inbox body has been purged"}  # fmt: skip
    since = datetime.fromisoformat(through)
    return {
        "complete": False,
        "purged_through_id": through_id,
        "purged_through_received_at": through,
        "message": (
            f"replay can rebuild only what arrived after {since:%Y-%m-%d %H:%M} UTC: older inbox bodies "
            "were purged by the retention job (INBOX_RETENTION_DAYS); the ledger itself is complete"
        ),
    }
