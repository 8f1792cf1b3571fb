"""Delivering budget alerts to the optional alert webhook (retried by the sweeper until sent)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import requests
from sqlalchemy.orm import Session

from lifecycle.accounting.service import undelivered_alerts
from lifecycle.db import utcnow

log = logging.getLogger(__name__)


def deliver(session: Session, url: str, timeout: float = 5.0) -> int:
    """POST each undelivered budget alert as JSON; returns how many were delivered now."""
    return post_each(undelivered_alerts(session), url, _body, timeout, "a budget alert")


def _body(alert: Any) -> dict[str, Any]:
    return {
        "provider": alert.provider,
        "plan_period": alert.plan_period,
        "threshold_percent": alert.threshold,
        "used_units": alert.used_units,
        "limit_units": alert.limit_units,
        "message": alert.message,
        "crossed_at": alert.crossed_at.isoformat(),
    }


def post_each(
    alerts: Iterable[Any], url: str, body_of: Callable[[Any], dict[str, Any]], timeout: float, what: str
) -> int:
    """POST each alert row (anything with `delivered_at` and `delivery_error`) to the alert webhook,
    oldest first; the first failure keeps its error and stops the round, so the sweeper's next round
    retries in order. Without a webhook an alert counts as delivered: it was logged when raised."""
    delivered = 0
    for alert in alerts:
        if not url:
            alert.delivered_at = utcnow()
            continue
        try:
            response = requests.post(url, json=body_of(alert), timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            alert.delivery_error = str(exc)[:500]
            log.warning("alert webhook failed for %s, will retry: %s", what, exc)
            break
        alert.delivered_at, alert.delivery_error = utcnow(), None
        delivered += 1
    return delivered
