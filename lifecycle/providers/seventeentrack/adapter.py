"""17TRACK behind the provider interface (lifecycle/providers/base.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lifecycle.providers.base import (
    STOPPED,
    UNKNOWN,
    UPDATE,
    CanonicalEvent,
    OperationKind,
    ParsedBody,
    Refusal,
    SendContext,
)
from lifecycle.providers.seventeentrack import billing, numbers, registration, webhook
from lifecycle.providers.seventeentrack import kinds as operations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.settings import Settings
    from lifecycle.accounting.rules import BillableEvent
    from lifecycle.providers.seventeentrack.client import SeventeenTrackClient
    from lifecycle.providers.seventeentrack.sender import Sender
    from lifecycle.shipments.requests import Outcome, Registration, RegistrationPlan
    from lifecycle.shipments.rows import ShipmentRow

# 17TRACK counts requests as they arrive; a slightly longer window absorbs network jitter (40 ms
# either way) so that calls bunched in transit still never exceed the limit in any one second at
# the provider, at the price of 4% of the throughput.
WINDOW_SECONDS = 1.04
_KINDS = {webhook.EVENT_UPDATED: UPDATE, webhook.EVENT_STOPPED: STOPPED}


def canonical(push: webhook.Push) -> CanonicalEvent:
    kind = _KINDS.get(push.event, UNKNOWN)
    when = push.event_time.isoformat() if push.event_time else ""
    key = f"{push.event}|{push.status}|{push.sub_status}|{when}"
    return CanonicalEvent(
        number=push.number,
        carrier=push.carrier,
        kind=kind,
        status=push.status,
        sub_status=push.sub_status,
        event_time=push.event_time,
        # A stop is recorded in the history under 17TRACK's own name for it.
        description=push.event if kind == STOPPED else push.description,
        dedupe_key=hashlib.sha256(key.encode()).hexdigest()[:40],
        carrier_name=push.carrier_name,
        tag=push.tag,
    )


class SeventeenTrack:
    name = webhook.PROVIDER
    title = "17TRACK"
    kinds = tuple(OperationKind(kind, 40) for kind in operations.KINDS)
    stop_kind = operations.STOPTRACK
    not_an_event = "not_a_17track_event"

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: Settings) -> Refusal | None:
        key = settings.seventeentrack_api_key.get_secret_value()
        if not key:
            # Fail closed, and with a status 17TRACK retries: nothing is lost while it is configured.
            return Refusal(503, "not_configured", "SEVENTEENTRACK_API_KEY is not set")
        if not webhook.signature_is_valid(raw, headers.get("sign"), key):
            return Refusal(401, "bad_signature", "missing or invalid 'sign' header")
        return None

    def check_envelope(self, payload: Any) -> None:
        webhook.check_envelope(payload)

    def parse(self, raw: bytes) -> ParsedBody:
        return ParsedBody((canonical(webhook.parse_push(raw)),))

    def normalise(self, raw: str) -> str:
        return numbers.normalise(raw)

    def claims(self, raw: str) -> bool:
        return False  # the default provider: whatever no other adapter claims comes here

    def register(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> list[Outcome]:
        return self.plan_registrations(session, requests, settings).store(session)

    def plan_registrations(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> RegistrationPlan:
        from lifecycle.shipments.requests import Outcome, RegistrationPlan

        if settings is not None and not settings.seventeentrack_api_key.get_secret_value():
            # A queued registration could never be sent (17TRACK answers 401 on every retry):
            # refuse at once on every path (CLI, CSV, API), as AWBs are refused without a CargoAi key.
            refused = [Outcome(r.number, False, registration.NO_KEY) for r in requests]
            return RegistrationPlan.decided(refused, lambda session: None)
        return registration.plan(session, requests)

    def adopted(self, event: CanonicalEvent, now: datetime) -> dict[str, Any]:
        return {"tag": event.tag}

    def stop_row(self, shipment: ShipmentRow) -> dict[str, Any] | None:
        return operations.stoptrack_row(shipment)

    def update_cycle(
        self, shipment: ShipmentRow, key: str, tracked: bool, received_at: datetime
    ) -> BillableEvent | None:
        return billing.update_cycle(shipment, key, tracked, received_at)

    def jobs(self) -> dict[str, Callable[..., None]]:
        from lifecycle.providers.seventeentrack import mirror, reconcile_job

        return {"mirror-17track": mirror.mirror_housekeeping, "reconcile": reconcile_job.reconcile_daily}

    def client(self, settings: Settings) -> SeventeenTrackClient:
        from lifecycle.providers.seventeentrack.client import SeventeenTrackClient
        from lifecycle.ratelimit import make_limiter

        rate = settings.seventeentrack_rate_per_second
        limiter = make_limiter(settings.shared_limiter_url, settings.var_dir, rate, WINDOW_SECONDS)
        return SeventeenTrackClient(
            settings.seventeentrack_api_url,
            settings.seventeentrack_api_key.get_secret_value(),
            limiter,
            settings.seventeentrack_timeout_seconds,
        )

    def sender(self, context: SendContext) -> Sender:
        from lifecycle.providers.seventeentrack.sender import Sender

        config = context.settings
        return Sender(
            context.session_factory,
            context.client(),
            batch_size=config.seventeentrack_batch_size,
            max_attempts=config.operation_max_attempts,
            account=context.account,
            thresholds=tuple(config.alert_thresholds),
            allow_overage=config.allow_overage,
        )


ADAPTER = SeventeenTrack()
