"""Delivering budget alerts to the optional alert webhook (retried by the sweeper until sent)."""

from __future__ import annotations

import logging

import requests
from sqlalchemy.orm import Session

from lifecycle.accounting.service import undelivered_alerts
from lifecycle.db import utcnow

log = logging.getLogger(__name__)


def deliver(session: Session, url: str, timeout: float = 5.0) -> int:
    """POST each undelivered alert as JSON; returns how many were delivered now."""
    delivered = 0
    for alert in undelivered_alerts(session):
        if not url:
            alert.delivered_at = utcnow()  # logged when raised; nowhere else to send it
            continue
        body = {
            "provider": alert.provider,
            "plan_period": alert.plan_period,
            "threshold_percent": alert.threshold,
            "used_units": alert.used_units,
            "limit_units": alert.limit_units,
            "message": alert.message,
            "crossed_at": alert.crossed_at.isoformat(),
        }
        try:
            response = requests.post(url, json=body, timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            alert.delivery_error = str(exc)[:500]
            log.warning("alert webhook failed, will retry: %s", exc)
            break
        alert.delivered_at = utcnow()
        delivered += 1
    return delivered
