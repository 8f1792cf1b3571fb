"""What the Celery tasks do, as plain functions over the services (run inside an app context)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from lifecycle import runtime
from lifecycle.accounting import alerts
from lifecycle.accounting import service as accountant
from lifecycle.cleanup import alerts as job_alerts
from lifecycle.cleanup.heartbeat import WORKER
from lifecycle.cleanup.heartbeat import record as record_heartbeat
from lifecycle.cleanup.registry import FUNCTIONS
from lifecycle.cleanup.runs import JobContext, run_job
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.locks import LEASE_SECONDS, singleton
from lifecycle.operations import service as operations
from lifecycle.providers import registry
from lifecycle.providers.base import SendContext, SendReport

log = logging.getLogger(__name__)


# A drain task hands its worker process back after this long and queues its own continuation:
# the operations flush waiting in the provider queue then gets the process first (the broker
# takes the queues in turn), so a delivered parcel's stoptrack never waits for a backlog to drain.
DRAIN_SLICE_SECONDS = 1.0


def drain_inbox() -> dict[str, Any]:
    """Apply pending inbox rows for one slice of time; the operation sender is signalled as soon as
    work appears, and the drain signals itself to go on when rows may be left."""
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
        max_seconds=DRAIN_SLICE_SECONDS,
    )
    if report.batches:
        log.info("inbox drained: %s", report.outcomes)
    if report.more:
        runtime.signal(runtime.DRAIN_INBOX)
    return asdict(report)


def _cycle_charger():  # type: ignore[no-untyped-def]
    """Charge status update cycles in the inbox batch, for each provider whose rule set bills them."""
    accounts = {
        name: account
        for name, account in ((name, runtime.account(name)) for name in registry.names())
        if account is not None and accountant.charges_update_cycles(account)
    }
    if not accounts:
        return None
    thresholds = tuple(runtime.settings().alert_thresholds)

    def charge(session, events):  # type: ignore[no-untyped-def]
        for name, account in accounts.items():
            mine = [event for event in events if event.provider == name]
            if mine:
                accountant.charge(session, account, mine, thresholds)

    return charge


def flush_operations() -> dict[str, Any]:
    """Send due outbox operations, each provider's through its adapter's sender; one sender at a time,
    for at most FLUSH_MAX_SECONDS per provider per task."""
    config = runtime.settings()
    lease = (config.flush_max_seconds + config.seventeentrack_timeout_seconds * 3) * len(registry.names())
    started = utcnow()
    with singleton("flush-operations", config.shared_limiter_url, config.var_dir / "locks", lease) as mine:
        if not mine:
            return {"skipped": "another worker is sending"}
        # A lost lock (its lease not renewed) stops the senders between calls: another worker
        # may hold it by now, and two senders would share the provider's rate limit.
        reports = {name: _flush_one(name, config, lambda: mine.lost) for name in registry.names()}
    total = SendReport()
    for name, report in reports.items():
        if report.calls:
            log.info("%s operations sent: %s", name, report)
        for key in ("calls", "done", "failed", "retried", "held", "pulled"):
            setattr(total, key, getattr(total, key) + getattr(report, key))
        total.more = total.more or report.more
        total.paused |= report.paused  # kinds are named per provider (register is 17TRACK's)
    waits = [r.retry_after for r in reports.values() if r.retry_after is not None]
    busy = any(r.more and r.retry_after is None for r in reports.values())
    if busy:  # out of time with calls left to make
        runtime.signal(runtime.FLUSH_OPERATIONS)
    elif waits:
        # A provider's rate limit is spent for now: the worker process goes back to the drain, and
        # the flush comes back just before the limiter frees a slot (with whatever was queued since).
        total.retry_after = min(waits)
        runtime.signal(runtime.FLUSH_OPERATIONS, countdown=total.retry_after)
    elif _queued_since(started):
        # Queued while this flush held the lock: its signal found the lock taken and was dropped
        # ("another worker is sending"), so the holder sends it on.
        runtime.signal(runtime.FLUSH_OPERATIONS)
    if total.pulled:
        # Answers went into the inbox (gettrackinfo): let the workers apply them now.
        runtime.signal(runtime.DRAIN_INBOX)
    return asdict(total) | {"providers": {name: asdict(report) for name, report in reports.items()}}


def _queued_since(since: datetime) -> bool:
    with db.read_session() as session:
        return operations.queued_since(session, since)


def _flush_one(name: str, config: Any, lock_lost: Callable[[], bool]) -> SendReport:
    if lock_lost():
        return SendReport(more=True)
    context = SendContext(
        db.new_session, config, client=lambda: runtime.client(name), account=runtime.account(name)
    )
    sender = registry.get(name).sender(context)
    if sender is None:
        return SendReport()
    return sender.flush(max_seconds=config.flush_max_seconds, should_stop=lock_lost)


def cargoai_renew() -> dict[str, Any]:
    """Renew subscriptions about to lapse (if CARGOAI_RENEW_SUBSCRIPTIONS), expire the others."""
    return cleanup("cargoai-subscriptions")


def cleanup(
    name: str, dry_run: bool = False, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run one scheduled job (lifecycle/cleanup) under its lock, recorded as a run; then nudge workers.
    `progress` is told (rows done, rows in this pass) after each batch (a bar on a terminal)."""
    context = JobContext(
        db.new_session,
        runtime.settings(),
        dry_run=dry_run,
        collaborators={
            "client17": lambda: runtime.client("17track"),
            "account17": lambda: runtime.account("17track"),
        },
        progress=progress,
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
    with db.new_session() as session, session.begin():
        job_alerts_sent = job_alerts.deliver(session, config.alert_webhook_url)
    if stuck_rows:
        runtime.signal(runtime.DRAIN_INBOX)
    if ready_operations or abandoned:
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return {
        "released_operations": released,
        "pending_rows": stuck_rows,
        "ready_operations": ready_operations,
        "alerts_sent": alerts_sent,
        "job_alerts_sent": job_alerts_sent,
    }
