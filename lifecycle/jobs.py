"""What the Celery tasks do, as plain functions over the services (run inside an app context)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from lifecycle import runtime
from lifecycle.accounting import alerts
from lifecycle.accounting import service as accountant
from lifecycle.cleanup.heartbeat import WORKER
from lifecycle.cleanup.heartbeat import record as record_heartbeat
from lifecycle.cleanup.registry import FUNCTIONS
from lifecycle.cleanup.runs import JobContext, run_job
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.locks import LEASE_SECONDS, singleton
from lifecycle.operations import service as operations
from lifecycle.operations.sender import Sender
from lifecycle.operations.sender_cargoai import CargoAiSender
from lifecycle.shipments import pull

log = logging.getLogger(__name__)


def drain_inbox() -> dict[str, Any]:
    """Apply every pending inbox row; the operation sender is signalled as soon as work appears."""
    signalled = False

    def operations_created() -> None:
        nonlocal signalled
        if not signalled:
            signalled = runtime.signal(runtime.FLUSH_OPERATIONS)

    report = inbox.drain(
        db.new_session,
        runtime.settings().inbox_batch_size,
        charger=_cycle_charger(),
        on_operations=operations_created,
    )
    if report.batches:
        log.info("inbox drained: %s", report.outcomes)
    return asdict(report)


def _cycle_charger():  # type: ignore[no-untyped-def]
    """Charge status update cycles in the inbox batch, only under a rule set that bills them."""
    account = runtime.account("17track")
    if account is None or not accountant.charges_update_cycles(account):
        return None
    thresholds = tuple(runtime.settings().alert_thresholds)
    return lambda session, events: accountant.charge(session, account, events, thresholds)


def flush_operations() -> dict[str, Any]:
    """Send due outbox operations; one sender at a time, for at most FLUSH_MAX_SECONDS per task."""
    config = runtime.settings()
    lease = config.flush_max_seconds + config.seventeentrack_timeout_seconds * 3
    with singleton("flush-operations", config.shared_limiter_url, config.var_dir / "locks", lease) as mine:
        if not mine:
            return {"skipped": "another worker is sending"}
        sender = Sender(
            db.new_session,
            runtime.client17(),
            batch_size=config.seventeentrack_batch_size,
            max_attempts=config.operation_max_attempts,
            account=runtime.account("17track"),
            thresholds=tuple(config.alert_thresholds),
            allow_overage=config.allow_overage,
        )
        report = sender.flush(max_seconds=config.flush_max_seconds)
        cargo = _cargoai_sender(config).flush(max_seconds=config.flush_max_seconds)
        report.more = report.more or bool(cargo["calls"] and _cargoai_pending())
    if cargo["calls"]:
        log.info("CargoAi operations sent: %s", cargo)
    if report.calls:
        log.info("operations sent: %s", report)
    if report.more:
        runtime.signal(runtime.FLUSH_OPERATIONS)
    if report.pulled:
        # gettrackinfo answers went into the inbox: let the workers apply them now.
        runtime.signal(runtime.DRAIN_INBOX)
    return asdict(report)


def _cargoai_sender(config):  # type: ignore[no-untyped-def]
    return CargoAiSender(
        db.new_session,
        runtime.cargoai_client(),
        callback_url=f"{config.public_base_url}/webhooks/cargoai",
        account=runtime.account("cargoai"),
        thresholds=tuple(config.alert_thresholds),
        max_attempts=config.operation_max_attempts,
    )


def _cargoai_pending() -> bool:
    with db.new_session() as session:
        return operations.count_ready(session, provider="cargoai") > 0


def cargoai_poll() -> dict[str, Any]:
    """Pull mode: poll due AWBs within the month's call budget, then apply what came back."""
    config = runtime.settings()
    report = pull.poll_due(
        db.new_session,
        runtime.cargoai_client(),
        runtime.account("cargoai"),
        config.cargoai_pull_calls_per_month,
    )
    if report["polled"]:
        runtime.signal(runtime.DRAIN_INBOX)
    return report


def cargoai_renew() -> dict[str, Any]:
    """Renew subscriptions about to lapse (if CARGOAI_RENEW_SUBSCRIPTIONS), expire the others."""
    return cleanup("cargoai-subscriptions")


def cleanup(name: str, dry_run: bool = False) -> dict[str, Any]:
    """Run one scheduled job (lifecycle/cleanup) under its lock, recorded as a run; then nudge workers."""
    context = JobContext(
        db.new_session,
        runtime.settings(),
        dry_run=dry_run,
        collaborators={"client17": runtime.client17, "account17": lambda: runtime.account("17track")},
    )
    counts = run_job(name, FUNCTIONS[name], context)
    if any(counts.get(key) for key in ("stopped", "operations_queued", "operations_requeued", "renewed")):
        runtime.signal(runtime.FLUSH_OPERATIONS)
    if counts.get("inbox_requeued"):
        runtime.signal(runtime.DRAIN_INBOX)
    return counts


def heartbeat(worker_name: str) -> dict[str, Any]:
    """Record that a worker is taking tasks (beat records its own when it sends this task)."""
    record_heartbeat(db.new_session, WORKER, worker_name)
    return {"worker": worker_name}


def sweep() -> dict[str, Any]:
    """Re-dispatch work a lost signal or a crashed worker left behind."""
    config = runtime.settings()
    with db.new_session() as session, session.begin():
        released = operations.release_abandoned(session, config.operation_lease_seconds)
        stuck_rows = inbox.pending_older_than(session, config.sweep_pending_after_seconds)
        ready_operations = operations.count_ready(session)
        # A sender that died mid-call left operations in flight; a flush takes them back in seconds
        # (lifecycle.operations.sender.reclaim_abandoned), not after OPERATION_LEASE_SECONDS.
        abandoned = operations.any_in_flight_since(
            session, 2 * config.seventeentrack_timeout_seconds + LEASE_SECONDS
        )
    with db.new_session() as session, session.begin():
        alerts_sent = alerts.deliver(session, config.alert_webhook_url)
    if stuck_rows:
        runtime.signal(runtime.DRAIN_INBOX)
    if ready_operations or abandoned:
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return {
        "released_operations": released,
        "pending_rows": stuck_rows,
        "ready_operations": ready_operations,
        "alerts_sent": alerts_sent,
    }


def sync_silent() -> dict[str, Any]:
    """Backfill shipments whose pushes stopped arriving (a free gettrackinfo each)."""
    from lifecycle.shipments.reconcile import queue_stale_syncs

    with db.new_session() as session, session.begin():
        queued = queue_stale_syncs(session, runtime.settings().sync_silent_hours)
    if queued:
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return {"queued": queued}
