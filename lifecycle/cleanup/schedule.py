"""The scheduled jobs by name: their Celery task, how often beat runs them, what they do.

Kept free of the services it names, so the Celery configuration can read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.settings import Settings


@dataclass(frozen=True)
class JobSpec:
    name: str
    # A stable task name: queued messages carry it.
    task: str
    # The Settings field that holds the interval in seconds.
    interval_setting: str
    summary: str

    def interval(self, settings: Settings) -> float:
        return float(getattr(settings, self.interval_setting))


JOBS = (
    JobSpec("safety-net", "lifecycle.cleanup.safety_net", "safety_net_interval_seconds",
            "queue the stop of ended shipments still tracked after SAFETY_NET_AFTER_HOURS"),
    JobSpec("stale", "lifecycle.cleanup.stale", "stale_interval_seconds",
            "list (or stop, STALE_ACTION=stop) shipments without an event / not found for too long"),
    JobSpec("mirror-17track", "lifecycle.cleanup.mirror_17track", "mirror_17track_interval_seconds",
            "apply 17TRACK's auto-stop (15/30 days) and deletion (90 days); warn before a deletion"),
    JobSpec("retention", "lifecycle.cleanup.retention", "retention_interval_seconds",
            "empty processed inbox bodies past INBOX_RETENTION_DAYS; trim job history"),
    JobSpec("retry-failed", "lifecycle.cleanup.retry_failed", "retry_interval_seconds",
            "retry failed inbox rows and exhausted operations with backoff, up to RETRY_FAILED_LIMIT"),
    JobSpec("reconcile", "lifecycle.cleanup.reconcile", "reconcile_interval_seconds",
            "gettracklist against our shipments, getquota against our ledger; alert on a new gap"),
    JobSpec("cargoai-subscriptions", "lifecycle.cargoai.renew", "cargoai_renew_interval_seconds",
            "renew or let lapse CargoAi subscriptions near their 3-week end; warn before they end"),
)  # fmt: skip
BY_NAME = {job.name: job for job in JOBS}

HEARTBEAT_TASK = "lifecycle.maintenance.heartbeat"
# The admin overview's shipment counts (lifecycle/admin/counts.py): recounted this often, by beat
# only, so no page load ever counts the shipments table. Not a job: no run row every 30 s.
OVERVIEW_COUNTS_TASK = "lifecycle.admin.refresh_counts"
OVERVIEW_COUNTS_SECONDS = 30.0


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for every job, the heartbeat and the overview's counts."""
    entries = {f"job-{job.name}": {"task": job.task, "schedule": job.interval(settings)} for job in JOBS}
    entries["heartbeat"] = {"task": HEARTBEAT_TASK, "schedule": settings.heartbeat_interval_seconds}
    entries["overview-counts"] = {"task": OVERVIEW_COUNTS_TASK, "schedule": OVERVIEW_COUNTS_SECONDS}
    return entries
