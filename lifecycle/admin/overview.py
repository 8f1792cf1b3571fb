"""The overview: what an operator checks first, cheap at any table size.

Counts per status and tracking state come from one GROUP BY kept as a cached aggregate (refreshed at
most every COUNTS_TTL_SECONDS per process), so a page load does not count a million shipments. The
other figures read small indexed sets: pending/failed inbox rows (partial indexes), unsettled
operations, the accountant's running totals, pauses, alerts and heartbeats.
"""

from __future__ import annotations

import threading
import time
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
class CountsCache:
    """Shipment counts per (provider, status, tracking), recomputed when older than the TTL."""

    ttl: float = COUNTS_TTL_SECONDS
    _value: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    _at: float = float("-inf")
    _computed_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session) -> tuple[dict[str, dict[str, dict[str, int]]], datetime | None]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                self._value, self._at, self._computed_at = (
                    count_shipments(session),
                    time.monotonic(),
                    utcnow(),
                )
            return self._value, self._computed_at

    def clear(self) -> None:
        with self._lock:
            self._at = float("-inf")


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


def overview(
    session: Session, accounts: dict[str, Account], counts: CountsCache, silent_after: timedelta
) -> dict[str, Any]:
    now = utcnow()
    shipment_counts, counted_at = counts.get(session)
    return {
        "counts": shipment_counts,
        "counted_at": counted_at,
        "inbox": pipeline.inbox_summary(session),
        "backlog": pipeline.backlog(session),
        "errors": pipeline.recent_errors(session),
        "pauses": pipeline.pauses(session),
        "quota": {name: provider_report(session, account, now) for name, account in accounts.items()},
        "alerts": quota_page.open_alerts(session),
        "heartbeats": heartbeat.heartbeats(session, silent_after, now),
        "job_runs": heartbeat.latest_job_runs(session),
        "job_alerts": heartbeat.open_job_alerts(session),
        "now": now,
    }
