"""Prometheus metrics counted where things happen (README "Production: what to watch").

Counters and histograms only: they add up correctly across gunicorn workers and Celery's prefork
children in multiprocess mode (lifecycle/observability/multiproc.py). Everything that is a level
rather than a count — inbox lag, outbox backlog, quota, heartbeats, last job success — is read
from the database when /metrics is scraped (lifecycle/observability/collector.py), so no process
keeps a gauge that another process would contradict.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter(
    "lifecycle_webhooks_total",
    "Webhook requests by provider and result: stored, or the reason it was refused",
    ["provider", "result"],
)
EVENTS_APPLIED = Counter(
    "lifecycle_events_applied_total",
    "Inbox rows processed by outcome (applied, duplicate, stale, stopped, unknown_event, failed, …)",
    ["outcome"],
)
DRAIN_BATCH_SECONDS = Histogram(
    "lifecycle_drain_batch_seconds",
    "Time to claim, apply and commit one inbox batch",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OPERATIONS = Counter(
    "lifecycle_operations_total",
    "Outbox operations settled by provider, kind and result (sent, failed, retried)",
    ["provider", "kind", "result"],
)
PROVIDER_CALL_SECONDS = Histogram(
    "lifecycle_provider_call_seconds",
    "Provider API call latency (including the wait for a rate-limit slot)",
    ["provider", "endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
PROVIDER_THROTTLED = Counter(
    "lifecycle_provider_throttled_total", "HTTP 429 answers from a provider", ["provider"]
)
OUTBOUND_DELIVERIES = Counter(
    "lifecycle_outbound_deliveries_total",
    "Outbound delivery attempts settled, by result (delivered, retrying, given_up)",
    ["result"],
)
JOB_RUNS = Counter(
    "lifecycle_job_runs_total", "Scheduled job runs by job and result (ok, error, skipped)", ["job", "result"]
)


def count_outcomes(outcomes: dict[int, str]) -> None:
    """One increment per outcome seen in a batch (a batch holds few distinct outcomes)."""
    tally: dict[str, int] = {}
    for outcome in outcomes.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    for outcome, amount in tally.items():
        EVENTS_APPLIED.labels(outcome=outcome).inc(amount)


def count_operation(provider: str, kind: str, result: str) -> None:
    OPERATIONS.labels(provider=provider, kind=kind, result=result).inc()


def count_deliveries(counts: dict[str, int]) -> None:
    """A settled round of outbound attempts: delivered, retrying and given_up as counted."""
    for result in ("delivered", "retrying", "given_up"):
        if counts.get(result):
            OUTBOUND_DELIVERIES.labels(result=result).inc(counts[result])


def observe_call(provider: str, endpoint: str, seconds: float, status: int | None) -> None:
    PROVIDER_CALL_SECONDS.labels(provider=provider, endpoint=endpoint).observe(seconds)
    if status == 429:
        PROVIDER_THROTTLED.labels(provider=provider).inc()
