"""The overview: what an operator checks first, cheap at any table size.

Counts per status and tracking state are a cached aggregate that beat refreshes (admin/counts.py):
the page reads one stored row, never the shipments table. The quota summary (the accountant's
report, itself read from running totals, but dozens of small queries) is cached per process for
QUOTA_TTL_SECONDS. The other figures read small indexed sets: pending/failed inbox rows (partial
indexes), unsettled operations, pauses, alerts and heartbeats.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from lifecycle.accounting.ledger import Account
from lifecycle.accounting.reports import provider_report
from lifecycle.admin import heartbeat, pipeline, quota_page
from lifecycle.admin.counts import Snapshot
from lifecycle.db import utcnow

QUOTA_TTL_SECONDS = 30.0


@dataclass
class Aggregates:
    """Values recomputed when older than the TTL, per process: the quota summary, which takes
    dozens of small queries and which an operator glancing at the overview needs no fresher."""

    ttl: float = QUOTA_TTL_SECONDS
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


def quota_summary(session: Session, accounts: dict[str, Account], now: datetime) -> dict[str, Any]:
    return {name: provider_report(session, account, now) for name, account in accounts.items()}


def overview(
    session: Session,
    accounts: Callable[[], dict[str, Account]],
    cache: Aggregates,
    counts: Snapshot,
    silent_after: timedelta,
) -> dict[str, Any]:
    """Everything the overview shows; `accounts` is called only when the quota summary is recomputed."""
    now = utcnow()
    quota, _ = cache.get("quota", lambda: quota_summary(session, accounts(), now))
    return {
        "counts": counts.counts,
        "counted_at": counts.counted_at,
        "counts_stale": counts.stale(now),
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
