"""The service's levels read from the database: what /metrics exports and `manage.py status` shows.

Every query here is bounded, whatever the size of the tables: counts stop at COUNT_CAP rows of a
partial or leading-column index, the oldest pending row is the first entry of the pending index,
quota comes from the accountant's running totals (primary-key reads) and job runs from the
(job, id) index. A scrape every 15 s therefore costs the same at a thousand rows or a hundred million.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.accounting.ledger import Account, total_key
from lifecycle.accounting.models import UsageTotal
from lifecycle.accounting.reports import report_units
from lifecycle.cleanup import runs
from lifecycle.cleanup.heartbeat import ages
from lifecycle.cleanup.schedule import JOBS
from lifecycle.inbox.models import FAILED, PENDING, InboxEvent
from lifecycle.operations import models as ops
from lifecycle.operations import pause
from lifecycle.operations.models import Operation
from lifecycle.outbound import models as outbound_models
from lifecycle.outbound.models import Delivery, Endpoint

# Past this many rows a count says "at least": an operator needs "huge", not the exact figure.
COUNT_CAP = 100_000


def capped_count(session: Session, stmt: Any) -> int:
    """Rows of `stmt` (a select of one column), counted up to COUNT_CAP."""
    return session.scalar(select(func.count()).select_from(stmt.limit(COUNT_CAP).subquery())) or 0


def inbox_lag(session: Session, now: datetime) -> dict[str, Any]:
    pending = capped_count(session, select(InboxEvent.id).where(InboxEvent.status == PENDING))
    failed = capped_count(session, select(InboxEvent.id).where(InboxEvent.status == FAILED))
    # The oldest pending row is the lowest pending id: the first entry of the partial index.
    oldest_id = session.scalar(select(func.min(InboxEvent.id)).where(InboxEvent.status == PENDING))
    oldest_age = None
    if oldest_id is not None:
        received = session.scalar(select(InboxEvent.received_at).where(InboxEvent.id == oldest_id))
        oldest_age = round(max(0.0, (now - received).total_seconds()), 1) if received else None
    return {
        "pending": pending,
        "failed": failed,
        "capped": pending >= COUNT_CAP or failed >= COUNT_CAP,
        "oldest_pending_age_seconds": oldest_age,
    }


def _by_provider_and_kind(session: Session, status: str) -> list[dict[str, Any]]:
    """Operations in `status` per provider and kind, counted up to COUNT_CAP in all."""
    rows = (
        select(Operation.provider, Operation.kind).where(Operation.status == status).limit(COUNT_CAP)
    ).subquery()
    counted = session.execute(
        select(rows.c.provider, rows.c.kind, func.count()).group_by(rows.c.provider, rows.c.kind)
    ).all()
    return [{"provider": p, "kind": k, "count": n} for p, k, n in sorted(counted)]


def outbox(session: Session) -> dict[str, Any]:
    """Operations waiting and given up (by provider and kind) and in flight, from the status index."""
    failed = _by_provider_and_kind(session, ops.FAILED)
    return {
        "queued": _by_provider_and_kind(session, ops.PENDING),
        "in_flight": capped_count(session, select(Operation.id).where(Operation.status == ops.IN_FLIGHT)),
        "failed": sum(row["count"] for row in failed),
        "failed_by_kind": failed,
    }


def outbound(session: Session, now: datetime) -> dict[str, Any]:
    """Outbound deliveries waiting (first tries and retries) and given up, and endpoints switched off.

    Pending counts only deliveries to enabled endpoints: a switched-off endpoint's deliveries are
    held, not late (they show as `held` and `endpoints_disabled`), so the lag alert does not fire
    for ever. The oldest pending delivery is the lowest id among the first COUNT_CAP pending ones:
    bounded like the counts, and exact unless more than COUNT_CAP are pending.
    """
    waiting = select(Delivery.id).join(Endpoint, Endpoint.id == Delivery.endpoint_id)
    waiting = waiting.where(Delivery.status == outbound_models.PENDING)
    pending = waiting.where(Endpoint.enabled.is_(True)).limit(COUNT_CAP).subquery()
    count, oldest_id = session.execute(select(func.count(), func.min(pending.c.id))).one()
    oldest_age = None
    if oldest_id is not None:
        created = session.scalar(select(Delivery.created_at).where(Delivery.id == oldest_id))
        oldest_age = round(max(0.0, (now - created).total_seconds()), 1) if created else None
    failed = select(Delivery.id).where(Delivery.status == outbound_models.FAILED)
    enabled = dict(session.execute(select(Endpoint.enabled, func.count()).group_by(Endpoint.enabled)).all())
    return {
        "endpoints": sum(enabled.values()),
        "endpoints_disabled": enabled.get(False, 0),
        "pending": count,
        "held": capped_count(session, waiting.where(Endpoint.enabled.is_(False))),
        "oldest_pending_age_seconds": oldest_age,
        "in_flight": capped_count(
            session, select(Delivery.id).where(Delivery.status == outbound_models.IN_FLIGHT)
        ),
        "given_up": capped_count(session, failed),
    }


def pauses(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Operation kinds paused now (e.g. 17TRACK registration on a quota error), read-only."""
    found = []
    for key, value in pause.in_force(session, now).items():
        _, provider, kind = key.split(":", 2)
        found.append({"provider": provider, "kind": kind, **value})
    return found


def quota(session: Session, accounts: dict[str, Account], now: datetime) -> list[dict[str, Any]]:
    """Used and remaining per provider, unit and bucket in force now (running totals only)."""
    rows = []
    for provider, account in accounts.items():
        for unit in report_units(account):
            for bucket in account.buckets(now, unit):
                key = (provider, "bucket", bucket.scope_period, total_key(bucket.name, unit))
                total = session.get(UsageTotal, key)
                used = total.units if total else 0
                limited = bucket.name != "overage"
                rows.append({
                    "provider": provider,
                    "unit": unit,
                    "bucket": bucket.name,
                    "period": bucket.scope_period,
                    "limit": bucket.limit if limited else None,
                    "used": used,
                    "remaining": max(0, bucket.limit - used) if limited else None,
                })  # fmt: skip
    return rows


def jobs(session: Session, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Each scheduled job's last run and last success, and whether the success is overdue."""
    latest = runs.last_runs(session, [job.name for job in JOBS])
    report = []
    for job in JOBS:
        run, success = latest.get(job.name), runs.last_completed_run(session, job.name)
        success_at = success.finished_at if success else None
        report.append({
            "job": job.name,
            "interval_seconds": job.interval(settings),
            "last_run_at": run.started_at.isoformat() if run else None,
            "last_error": run.error if run else None,
            "last_success_at": success_at.isoformat() if success_at else None,
            "last_success_age_seconds": round((now - success_at).total_seconds(), 1) if success_at else None,
        })  # fmt: skip
    return report


def heartbeats(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    return ages(session, now, settings)


def open_alerts(session: Session) -> list[dict[str, Any]]:
    return [
        {"job": alert.job, "message": alert.message, "raised_at": alert.raised_at.isoformat()}
        for alert in runs.open_alerts(session)
    ]
