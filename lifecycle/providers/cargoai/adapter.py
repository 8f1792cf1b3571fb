"""CargoAi (air waybills) behind the provider interface (lifecycle/providers/base.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lifecycle.providers.base import CanonicalEvent, OperationKind, ParsedBody, Refusal, SendContext
from lifecycle.providers.cargoai import awb, subscriptions, webhook

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.settings import Settings
    from lifecycle.accounting.rules import BillableEvent
    from lifecycle.providers.cargoai.client import CargoAiClient
    from lifecycle.providers.cargoai.sender import CargoAiSender
    from lifecycle.shipments.requests import Outcome, Registration, RegistrationPlan
    from lifecycle.shipments.rows import ShipmentRow


def canonical(number: str, event: webhook.AwbEvent) -> CanonicalEvent:
    return CanonicalEvent(
        number=number,
        carrier=awb.airline_prefix(number),
        status=event.status,
        sub_status=event.code,  # unknown codes are kept verbatim here
        event_time=event.time,
        description=" ".join(filter(None, (event.code, event.location, event.flight))),
        dedupe_key=event.dedupe_key,
    )


def secrets(settings: Settings) -> dict[str, str]:
    return {
        "api_key": settings.cargoai_api_key.get_secret_value(),
        "token": settings.cargoai_callback_token.get_secret_value(),
        "user": settings.cargoai_callback_user,
        "password": settings.cargoai_callback_password.get_secret_value(),
    }


class CargoAi:
    name = webhook.PROVIDER
    title = "CargoAi"
    # No batch endpoint: one AWB per call (awb.md §1.2).
    kinds = (OperationKind("subscribe"), OperationKind("unsubscribe"))
    stop_kind = "unsubscribe"
    not_an_event = "not_a_cargoai_callback"

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: Settings) -> Refusal | None:
        mode = settings.cargoai_callback_auth
        if webhook.authorised(mode, raw, headers, secrets(settings)):
            return None
        return Refusal(401, "unauthorised", f"callback authentication ({mode}) failed")

    def check_envelope(self, payload: Any) -> None:
        webhook.check_envelope(payload)

    def parse(self, raw: bytes) -> ParsedBody:
        # A callback repeats the whole history (oldEvents, events, newEvents).
        callback = webhook.parse_callback(raw)
        return ParsedBody(tuple(canonical(callback.awb, e) for e in callback.events), history=True)

    def normalise(self, raw: str) -> str:
        try:
            return awb.normalise(raw)
        except ValueError:
            return (raw or "").strip().upper()

    def claims(self, raw: str) -> bool:
        return awb.looks_like_awb(raw)

    def register(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> list[Outcome]:
        from lifecycle.shipments.requests import Outcome

        if settings is not None and not settings.cargoai_api_key.get_secret_value():
            # A queued subscription could never be sent: refuse at once, and say how to fix it.
            return [Outcome(r.number, False, subscriptions.NO_KEY) for r in requests]
        mode = settings.cargoai_mode if settings is not None else "push"
        return subscriptions.subscribe(session, requests, mode)

    def plan_registrations(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> RegistrationPlan:
        from lifecycle.shipments.requests import RegistrationPlan

        return RegistrationPlan(lambda session: self.register(session, requests, settings))  # all at store

    def adopted(self, event: CanonicalEvent, now: datetime) -> dict[str, Any]:
        return {"tracking_mode": "push"}

    def stop_row(self, shipment: ShipmentRow) -> dict[str, Any] | None:
        # A polled AWB simply stops being polled; a subscribed one is unsubscribed.
        return None if shipment.tracking_mode == "pull" else subscriptions.unsubscribe_row(shipment)

    def update_cycle(
        self, shipment: ShipmentRow, key: str, tracked: bool, received_at: datetime
    ) -> BillableEvent | None:
        return None  # billed per subscription, not per update

    def jobs(self) -> dict[str, Callable[..., None]]:
        from lifecycle.providers.cargoai import renewal

        return {"cargoai-subscriptions": renewal.renew_or_report}

    def client(self, settings: Settings) -> CargoAiClient:
        from lifecycle.providers.cargoai.client import CargoAiClient
        from lifecycle.ratelimit import make_limiter

        config = settings
        limiter = make_limiter(config.shared_limiter_url, config.var_dir, config.cargoai_rate_per_second, 1.0)
        return CargoAiClient(
            settings.cargoai_api_url,
            settings.cargoai_api_key.get_secret_value(),
            limiter,
            settings.seventeentrack_timeout_seconds * 3,  # CargoAi answers in 1 s to 30 s (awb.md §1.2)
        )

    def sender(self, context: SendContext) -> CargoAiSender:
        from lifecycle.providers.cargoai.sender import CargoAiSender

        config = context.settings
        return CargoAiSender(
            context.session_factory,
            context.client(),
            callback_url=f"{config.public_base_url}/webhooks/{self.name}",
            account=context.account,
            thresholds=tuple(config.alert_thresholds),
            max_attempts=config.operation_max_attempts,
        )


ADAPTER = CargoAi()
