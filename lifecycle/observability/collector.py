"""Gauges read from the database when /metrics is scraped (cheap, bounded queries: see snapshot.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.accounting.ledger import Account
from lifecycle.db import utcnow
from lifecycle.observability import snapshot

log = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lifecycle_{name}", documentation, labels=labels)


class DatabaseCollector(Collector):
    """Inbox lag, outbox backlog, pauses, outbound deliveries, quota, job successes and heartbeats."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        settings: Settings,
        accounts: Callable[[Session], dict[str, Account]],
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._accounts = accounts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # All or nothing: with the database down, /metrics still serves the process counters.
        try:
            families = self._read()
        except Exception as exc:
            log.warning("metrics: database gauges unavailable: %s", exc.__class__.__name__)
            families = []
        yield _value("database_up", "1 when the database answered this scrape", 1 if families else 0)
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        now = utcnow()
        with self._session_factory() as session:
            return [
                *_inbox(snapshot.inbox_lag(session, now)),
                *_outbox(snapshot.outbox(session), snapshot.pauses(session, now)),
                *_outbound(snapshot.outbound(session, now)),
                *_quota(snapshot.quota(session, self._accounts(session), now)),
                *_jobs(snapshot.jobs(session, self._settings, now)),
                *_heartbeats(snapshot.heartbeats(session, self._settings, now)),
            ]


def _inbox(lag: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    yield _value("inbox_pending", "Inbox rows waiting to be applied (counted up to 100000)", lag["pending"])
    yield _value("inbox_failed", "Failed inbox rows waiting for an operator (up to 100000)", lag["failed"])
    yield _value(
        "inbox_oldest_pending_age_seconds",
        "Age of the oldest pending inbox row (0 when none is pending)",
        lag["oldest_pending_age_seconds"] or 0.0,
    )


def _outbox(outbox: dict[str, Any], pauses: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    queued = _gauge(
        "operations_queued", "Outbox operations waiting, by provider and kind", ["provider", "kind"]
    )
    for row in outbox["queued"]:
        queued.add_metric([row["provider"], row["kind"]], row["count"])
    yield queued
    yield _value(
        "operations_in_flight", "Operations claimed by a sender, answer pending", outbox["in_flight"]
    )
    failed = _gauge(
        "operations_failed",
        "Operations given up on, by provider and kind (up to 100000)",
        ["provider", "kind"],
    )
    for row in outbox["failed_by_kind"]:
        failed.add_metric([row["provider"], row["kind"]], row["count"])
    yield failed
    paused = _gauge("operations_paused", "1 while an operation kind is paused (quota, daily limit)",
                    ["provider", "kind"])  # fmt: skip
    for pause in pauses:
        paused.add_metric([pause["provider"], pause["kind"]], 1)
    yield paused


def _outbound(outbound: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    yield _value(
        "outbound_pending", "Outbound deliveries waiting for a first try or a retry (up to 100000)",
        outbound["pending"],
    )  # fmt: skip
    yield _value(
        "outbound_oldest_pending_age_seconds",
        "Age of the oldest outbound delivery still pending (0 when none is)",
        outbound["oldest_pending_age_seconds"] or 0.0,
    )
    yield _value("outbound_given_up", "Outbound deliveries given up after their last retry (up to 100000)",
                 outbound["given_up"])  # fmt: skip
    yield _value("outbound_endpoints_disabled", "Outbound endpoints disabled (automatically or by hand)",
                 outbound["endpoints_disabled"])  # fmt: skip


def _quota(buckets: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    labels = ["provider", "unit", "bucket"]
    used = _gauge("quota_used", "Units charged in the bucket's current period", labels)
    remaining = _gauge(
        "quota_remaining", "Units left in the bucket's current period (limited buckets)", labels
    )
    for bucket in buckets:
        if bucket["limit"] == 0 and not bucket["used"]:
            continue  # a bucket the account does not have (e.g. no paid plan): no series for it
        key = [bucket["provider"], bucket["unit"], bucket["bucket"]]
        used.add_metric(key, bucket["used"])
        if bucket["remaining"] is not None:
            remaining.add_metric(key, bucket["remaining"])
    yield used
    yield remaining


def _jobs(jobs: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    success = _gauge("job_last_success_timestamp_seconds", "When each scheduled job last succeeded", ["job"])
    for job in jobs:
        if job["last_success_at"]:
            success.add_metric([job["job"]], datetime.fromisoformat(job["last_success_at"]).timestamp())
    yield success


def _heartbeats(beats: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    age = _gauge(
        "heartbeat_age_seconds", "Seconds since the newest heartbeat of any worker / of beat", ["kind"]
    )
    for kind in ("worker", "beat"):
        value = beats[f"{kind}_heartbeat_age_seconds"]
        if value is not None:
            age.add_metric([kind], value)
    yield age
    yield _value("workers_alive", "Workers with a recent heartbeat", beats["workers"]["alive"])


def _value(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lifecycle_{name}", documentation, value=value)
