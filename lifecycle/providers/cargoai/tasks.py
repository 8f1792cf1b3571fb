"""CargoAi's own periodic work, run by the Celery tasks in workers/tasks.py (inside an app context)."""

from __future__ import annotations

from typing import Any

from lifecycle import runtime
from lifecycle.extensions import db
from lifecycle.providers.cargoai import pull


def poll() -> dict[str, Any]:
    """Pull mode: poll due AWBs within the month's call budget, then apply what came back."""
    config = runtime.settings()
    report = pull.poll_due(
        db.new_session,
        runtime.client("cargoai"),
        runtime.account("cargoai"),
        config.cargoai_pull_calls_per_month,
    )
    if report["polled"]:
        runtime.signal(runtime.DRAIN_INBOX)
    return report
