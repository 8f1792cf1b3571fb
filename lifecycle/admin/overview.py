"""The overview: what an operator checks first, cheap at any table size.

Counts per status and tracking state come from one GROUP BY kept as a cached aggregate (refreshed at
most every COUNTS_TTL_SECONDS per process), so a page load does not count a million shipments; the
quota summary (the accountant's report, itself read from running totals) is cached the same way.
The other figures read small indexed sets: pending/failed inbox rows (partial indexes), unsettled
operations, pauses, alerts and heartbeats.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.accounting.ledger import Account
from lifecycle.accounting.reports import provider_report
from lifecycle.admin import heartbeat, pipeline, quota_page
from lifecycle.db import utcnow
from lifecycle.shipments.models import Shipment

COUNTS_TTL_SECONDS = 30.0


@dataclass
class Aggregates:
    """Aggregates recomputed when older than the TTL: shipment counts and the quota summary.

    Both read tables that grow (shipments) or take dozens of small queries (the accountant's
    report), and an operator glancing at the overview does not need them fresher than the TTL.
    """

    ttl: float = COUNTS_TTL_SECONDS
    _values: dict[str, tuple[float, datetime, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str, compute: Callable[[], Any]) -> tuple[Any, datetime]:
        """The cached value and when it was computed, recomputing it (once, under a lock) if stale."""
        with self._lock:
            found = self._values.get(key)
            if found is None or time.monotonic() - found[0] > self.ttl:
                found = (time.monotonic(), utcnow(), compute())
                self._values[key] = found
            return found[2], found[1]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def count_shipments(session: Session) -> dict[str, dict[str, dict[str, int]]]:
    """{provider: {"status": {status: n}, "tracking": {state: n}, "total": {"all": n}}}."""
    result: dict[str, dict[str, dict[str, int]]] = {}
    stmt = select(Shipment.provider, Shipment.status, Shipment.tracking, func.count()).group_by(
        Shipment.provider, Shipment.status, Shipment.tracking
    )
    for provider, status, tracking, count in session.execute(stmt):
        entry = result.setdefault(provider, {"status": {}, "tracking": {}, "total": {"all": 0}})
        entry["status"][status] = entry["status"].get(status, 0) + count
        entry["tracking"][tracking] = entry["tracking"].get(tracking, 0) + count
        entry["total"]["all"] += count
    return result


def quota_summary(session: Session, accounts: dict[str, Account], now: datetime) -> dict[str, Any]:
    return {name: provider_report(session, account, now) for name, account in accounts.items()}


def overview(
    session: Session,
    accounts: Callable[[], dict[str, Account]],
    counts: Aggregates,
    silent_after: timedelta,
) -> dict[str, Any]:
    """Everything the overview shows; `accounts` is called only when the quota summary is recomputed."""
    now = utcnow()
    shipment_counts, counted_at = counts.get("shipments", lambda: count_shipments(session))
    quota, _ = counts.get("quota", lambda: quota_summary(session, accounts(), now))
    return {
        "counts": shipment_counts,
        "counted_at": counted_at,
        "inbox": pipeline.inbox_summary(session),
        "backlog": pipeline.backlog(session),
        "errors": pipeline.recent_errors(session),
        "pauses": pipeline.pauses(session),
        "quota": quota,
        "alerts": quota_page.open_alerts(session),
        "heartbeats": heartbeat.heartbeats(session, silent_after, now),
        "job_runs": heartbeat.latest_job_runs(session),
        "job_alerts": heartbeat.open_job_alerts(session),
        "now": now,
    }
