"""Send CargoAi subscribe/unsubscribe operations and apply each answer (one AWB per call).

CargoAi has no batch endpoint, so each operation is one call, through the shared limiter; a
subscription is charged only when CargoAi confirms it, and charged again for every renewal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from lifecycle.accounting import service as accountant
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.operations import service
from lifecycle.operations.models import Operation
from lifecycle.providers.base import ProviderError, SendReport, calls_now
from lifecycle.providers.cargoai.client import CargoAiClient
from lifecycle.providers.cargoai.subscriptions import SUBSCRIPTION_LIFETIME
from lifecycle.shipments.models import Shipment

PROVIDER = "cargoai"


@dataclass
class CargoAiSender:
    session_factory: Callable[[], Session]
    client: CargoAiClient
    callback_url: str
    account: Account | None = None
    thresholds: tuple[int, ...] = ()
    max_attempts: int = 20
    report: SendReport = field(default_factory=SendReport)

    def flush(self, max_seconds: float = 20.0, should_stop: Callable[[], bool] | None = None) -> SendReport:
        """One AWB per call until none is due, time is up or `should_stop()` (the send lock was lost)."""
        deadline = time.monotonic() + max_seconds
        with self.session_factory() as session, session.begin():
            service.reclaim_abandoned(session, PROVIDER, self.client.timeout)
        while any([self._send_one("subscribe"), self._send_one("unsubscribe")]):
            if time.monotonic() > deadline or (should_stop is not None and should_stop()):
                self.report.more = True  # the caller signals again
                break
        return self.report

    def _send_one(self, kind: str) -> bool:
        if not calls_now(self.client, self.report):
            return False  # run again when the limiter frees a slot (report.retry_after)
        with self.session_factory() as session, session.begin():
            claimed = service.claim_ready(session, PROVIDER, kind, 1)
            if not claimed:
                return False
            op_id, number, payload = claimed[0].id, claimed[0].number, dict(claimed[0].payload)
        self.report.calls += 1
        try:
            if kind == "subscribe":
                answer = self.client.subscribe(number, self.callback_url, payload.get("emails") or [],
                                               payload.get("airline_code"))  # fmt: skip
            else:
                answer = self.client.unsubscribe(number, self.callback_url)
        except ProviderError as exc:
            with self.session_factory() as session, session.begin():
                op = session.get_one(Operation, op_id)
                service.retry_later([op], str(exc), self.max_attempts, 1.0 if exc.transient else 60.0)
            self.report.retried += 1
            return True
        with self.session_factory() as session, session.begin():
            self._settle(session, session.get_one(Operation, op_id), *answer)
        return True

    def _settle(self, session: Session, op: Operation, status: int, body: dict) -> None:
        shipment = session.get(Shipment, op.shipment_id) if op.shipment_id else None
        message = str(body.get("message") or body.get("error") or "")
        if op.kind == "subscribe":
            ok = status == 200
            if ok and shipment is not None:
                self._subscribed(session, op, shipment)
            elif shipment is not None:
                shipment.tracking, shipment.error_code, shipment.last_error = "rejected", status, message
        else:
            # 404 "No active subscription": nothing is subscribed any more, which is what we wanted.
            ok = status in (200, 404)
            if ok and shipment is not None:
                shipment.tracking, shipment.stopped_at = "stopped", utcnow()
        service.settle(op, status, message, ok=ok)
        if ok:
            self.report.done += 1
        else:
            self.report.failed += 1

    def _subscribed(self, session: Session, op: Operation, shipment: Shipment) -> None:
        shipment.subscriptions = (shipment.subscriptions or 0) + 1
        shipment.subscription_expires_at = utcnow() + SUBSCRIPTION_LIFETIME
        shipment.registered_at = shipment.registered_at or utcnow()
        if shipment.tracking in ("pending", "rejected"):
            shipment.tracking = "tracking"
        if self.account is not None:
            key = f"cargoai:subscribe:{shipment.number}:{shipment.subscriptions}"
            event = BillableEvent(PROVIDER, "subscribe", key, utcnow(), shipment_id=shipment.id)
            accountant.charge(session, self.account, [event], self.thresholds)
