"""The sender task's body: send what is due with the configured policy, then re-signal if needed."""

from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from lifecycle import runtime
from lifecycle.extensions import db
from lifecycle.outbound.claims import RetryPolicy
from lifecycle.outbound.sender import SendOptions, send_due
from lifecycle.outbound.wakeup import SEND_TASK

log = logging.getLogger(__name__)


def options(config: Settings) -> SendOptions:
    return SendOptions(
        timeout_seconds=config.outbound_timeout_seconds,
        allow_private=config.outbound_allow_private,
        # A claimed round is a few timeouts long at most (batch / parallel calls): never reclaimed early.
        lease_seconds=max(config.operation_lease_seconds, config.outbound_timeout_seconds * 10),
        policy=RetryPolicy(
            max_attempts=config.outbound_max_attempts,
            base_seconds=config.outbound_retry_base_seconds,
            max_seconds=config.outbound_retry_max_seconds,
            disable_after_failures=config.outbound_disable_after_failures,
            disable_after_hours=config.outbound_disable_after_hours,
        ),
    )


def send() -> dict[str, Any]:
    """Send due outbound deliveries for at most FLUSH_MAX_SECONDS; beat runs this every sweep."""
    config = runtime.settings()
    report = send_due(db.new_session, options(config), config.flush_max_seconds)
    if any(report[key] for key in ("delivered", "retrying", "given_up", "disabled")):
        log.info("outbound events sent: %s", report)
    if report["more"]:
        runtime.signal(SEND_TASK)
    return report
