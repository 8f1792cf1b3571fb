"""The overview's shipment counts: a cached aggregate refreshed by beat, never counted by a page load.

One GROUP BY over the shipments (provider, status, tracking state) is stored as a row of
`cached_aggregates` every OVERVIEW_COUNTS_SECONDS by a beat task, and again right after an
operator's action in the admin; the overview reads that row and says when it was counted. Only a
fresh install, before beat's first refresh, counts during a page load (once: it stores the result).
At 1,000,000 shipments the GROUP BY takes some 0.4 s on PostgreSQL: one worker pays it every 30 s,
instead of every web process on a cold overview.

Not running totals (a counter per provider, status and state, moved in each change's transaction):
every push applied, command and cleanup batch would update the same few counter rows, serialising
the workers on them, and every path that changes a status or state would have to remember to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lifecycle.admin.models import CachedAggregate
from lifecycle.cleanup.schedule import OVERVIEW_COUNTS_SECONDS
from lifecycle.db import utcnow
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import insert_ignoring_conflicts

NAME = "shipment-counts"
# Older than this, beat has missed several refreshes: the overview says so.
STALE_AFTER_SECONDS = 4 * OVERVIEW_COUNTS_SECONDS

Counts = dict[str, dict[str, dict[str, int]]]
SessionFactory = Callable[[], Session]


@dataclass(frozen=True)
class Snapshot:
    counts: Counts
    counted_at: datetime

    def stale(self, now: datetime) -> bool:
        return (now - self.counted_at).total_seconds() > STALE_AFTER_SECONDS


def count_shipments(session: Session) -> Counts:
    """{provider: {"status": {status: n}, "tracking": {state: n}, "total": {"all": n}}}."""
    result: Counts = {}
    stmt = select(Shipment.provider, Shipment.status, Shipment.tracking, func.count()).group_by(
        Shipment.provider, Shipment.status, Shipment.tracking
    )
    for provider, status, tracking, count in session.execute(stmt):
        entry = result.setdefault(provider, {"status": {}, "tracking": {}, "total": {"all": 0}})
        entry["status"][status] = entry["status"].get(status, 0) + count
        entry["tracking"][tracking] = entry["tracking"].get(tracking, 0) + count
        entry["total"]["all"] += count
    return result


def stored(session: Session) -> Snapshot | None:
    row = session.get(CachedAggregate, NAME)
    return Snapshot(row.value, row.computed_at) if row is not None else None


def refresh(read: SessionFactory, write: SessionFactory) -> Snapshot:
    """Count now and store the result. The count runs in a read session (on SQLite it does not
    hold the write lock while it scans); the store is one short write."""
    with read() as session:
        counted_at = utcnow()
        counts = count_shipments(session)
    with write() as session, session.begin():
        store(session, counts, counted_at)
    return Snapshot(counts, counted_at)


def store(session: Session, counts: Counts, counted_at: datetime) -> None:
    """Keep these counts unless a later count is already stored (two refreshes may overlap)."""
    newer = session.execute(
        update(CachedAggregate)
        .where(CachedAggregate.name == NAME, CachedAggregate.computed_at <= counted_at)
        .values(value=counts, computed_at=counted_at)
    )
    if not newer.rowcount:
        row = {"name": NAME, "value": counts, "computed_at": counted_at}
        insert_ignoring_conflicts(session, CachedAggregate, [row], ["name"])


def current(session: Session, read: SessionFactory, write: SessionFactory) -> Snapshot:
    """The stored counts; counted and stored once here if there are none yet (before beat's first)."""
    return stored(session) or refresh(read, write)


def refresh_job() -> dict[str, Any]:
    """The beat task's work: one refresh at a time across processes; a concurrent one is skipped."""
    from lifecycle import runtime
    from lifecycle.extensions import db
    from lifecycle.locks import singleton

    config = runtime.settings()
    lease = 10 * OVERVIEW_COUNTS_SECONDS
    with singleton("overview-counts", config.shared_limiter_url, config.var_dir / "locks", lease) as mine:
        if not mine:
            return {"skipped": "another process is counting"}
        snapshot = refresh(db.read_session, db.new_session)
    total = sum(entry["total"]["all"] for entry in snapshot.counts.values())
    return {"shipments": total, "counted_at": snapshot.counted_at.isoformat()}
