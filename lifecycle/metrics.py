"""Prometheus metrics. Under gunicorn, set PROMETHEUS_MULTIPROC_DIR to aggregate workers."""

from prometheus_client import Counter

WEBHOOKS = Counter(
    "lifecycle_webhooks_total", "Webhook requests by provider and result", ["provider", "result"]
)
