"""The generic signed-webhook provider behind the provider interface (lifecycle/providers/base.py).

No provider API: nothing is sent, billed or scheduled. Registering a number tracks it locally, and a
delivered shipment simply stops (stop_row is None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lifecycle.db import utcnow
from lifecycle.providers.base import CanonicalEvent, ParsedBody, Refusal, SendContext
from lifecycle.providers.generic import config, webhook
from lifecycle.shipments.models import UNKNOWN_CARRIER, Shipment
from lifecycle.shipments.requests import Outcome

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.settings import Settings
    from lifecycle.accounting.rules import BillableEvent
    from lifecycle.shipments.requests import Registration, RegistrationPlan
    from lifecycle.shipments.rows import ShipmentRow

# A row in one of these states is being tracked here: registering its number again is refused.
TRACKED = ("pending", "tracking", "stopping")


class Generic:
    name = webhook.PROVIDER
    title = "Generic webhook"
    kinds = ()
    stop_kind = None
    not_an_event = "not_a_generic_event"

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: Settings) -> Refusal | None:
        # Its own settings class (GENERIC_*), not the service's: the provider stays in its package.
        try:
            secret = config.current().webhook_secret.get_secret_value()
        except config.GenericConfigError as exc:
            return Refusal(503, "not_configured", str(exc))
        if not secret:
            return Refusal(503, "not_configured", "GENERIC_WEBHOOK_SECRET is not set")
        if not webhook.signature_is_valid(raw, webhook.header_value(headers), secret):
            return Refusal(401, "bad_signature", f"missing or invalid '{webhook.SIGNATURE_HEADER}' header")
        return None

    def check_envelope(self, payload: Any) -> None:
        # The whole body is checked at the door: the sender is the user's own system, and a 400
        # naming the field helps it more than a failed inbox row would.
        webhook.events_of(payload)

    def parse(self, raw: bytes) -> ParsedBody:
        try:
            status_map = config.current().status_map
        except config.GenericConfigError as exc:
            raise webhook.PushError(str(exc)) from None
        events = webhook.parse(raw, status_map)
        # A batch counts as applied when any of its events was new, as a duplicate when none was.
        return ParsedBody(events, history=len(events) > 1)

    def normalise(self, raw: str) -> str:
        return webhook.normalise(raw)

    def claims(self, raw: str) -> bool:
        return False  # never chosen for a number that names no provider

    def register(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> list[Outcome]:
        return [_register_one(session, request) for request in requests]

    def plan_registrations(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> RegistrationPlan:
        from lifecycle.shipments.requests import RegistrationPlan

        return RegistrationPlan(lambda session: self.register(session, requests, settings))  # all at store

    def adopted(self, event: CanonicalEvent, now: datetime) -> dict[str, Any]:
        return {}

    def stop_row(self, shipment: ShipmentRow) -> dict[str, Any] | None:
        return None  # nothing to call: the shipment stops here

    def update_cycle(
        self, shipment: ShipmentRow, key: str, tracked: bool, received_at: datetime
    ) -> BillableEvent | None:
        return None  # free

    def jobs(self) -> dict[str, Callable[..., None]]:
        return {}

    def client(self, settings: Settings) -> None:
        return None

    def sender(self, context: SendContext) -> None:
        return None


def _register_one(session: Session, request: Registration) -> Outcome:
    """Track a number locally: a new row, or a stopped or deleted one tracked again."""
    number = webhook.normalise(request.number)
    if not number or len(number) > webhook.MAX_NUMBER:
        return Outcome(request.number, False, f"tracking numbers have 1 to {webhook.MAX_NUMBER} characters")
    carrier = request.carrier or UNKNOWN_CARRIER
    rows = list(
        session.scalars(
            select(Shipment).where(Shipment.provider == webhook.PROVIDER, Shipment.number == number)
        )
    )
    live = next((row for row in rows if row.tracking in TRACKED), None)
    if live is not None:
        return Outcome(number, False, f"already tracked here ({live.tracking})")
    shipment = next((row for row in rows if row.carrier == carrier), None)
    if shipment is None:
        shipment = Shipment(
            provider=webhook.PROVIDER, number=number, carrier=carrier, registration_generation=0
        )
        session.add(shipment)
    shipment.registration_generation += 1
    shipment.tracking, shipment.origin, shipment.registered_at = "tracking", "registered", utcnow()
    shipment.tag, shipment.lang = request.tag, request.lang
    shipment.deleted_at = shipment.stopped_at = shipment.last_error = None
    session.flush()
    return Outcome(number, True, "tracked here; events arrive on POST /webhooks/generic", request.carrier)


ADAPTER = Generic()
