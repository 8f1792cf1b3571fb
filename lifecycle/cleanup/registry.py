"""Each scheduled job's service function, by name (schedule.py holds the names and intervals)."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.cleanup import mirror17, reconcile, retention, retry, safety_net, stale, subscriptions
from lifecycle.cleanup.runs import JobContext

FUNCTIONS: dict[str, Callable[[JobContext], None]] = {
    "safety-net": safety_net.stop_ended,
    "stale": stale.stale_shipments,
    "mirror-17track": mirror17.mirror_housekeeping,
    "retention": retention.purge_old,
    "retry-failed": retry.retry_failures,
    "reconcile": reconcile.reconcile_daily,
    "cargoai-subscriptions": subscriptions.renew_or_report,
}
