"""Each scheduled job's service function, by name (schedule.py holds the names and intervals).

The core's jobs are listed here; a provider's own housekeeping (17TRACK's auto-stop mirror and list
reconciliation, CargoAi's subscription renewals) comes from its adapter.
"""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.cleanup import retention, retry, safety_net, stale
from lifecycle.cleanup.runs import JobContext
from lifecycle.providers import registry

FUNCTIONS: dict[str, Callable[[JobContext], None]] = {
    "safety-net": safety_net.stop_ended,
    "stale": stale.stale_shipments,
    "retention": retention.purge_old,
    "retry-failed": retry.retry_failures,
    **registry.jobs(),
}
