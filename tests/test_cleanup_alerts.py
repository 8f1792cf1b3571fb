"""Job alerts (17TRACK deletion warning, reconcile drift, CargoAi subscription ending) reach the
alert webhook, once each, retried by the sweeper until the receiver takes them."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import time_machine
from flask import request

from lifecycle import create_app, jobs, runtime
from lifecycle.extensions import db
from tests.cleanup_helpers import NOW, add_shipment, alerts, run
from tests.receiver import HttpReceiver
from tests.test_cleanup_reconcile import FakeSeventeenTrack


class AlertReceiver(HttpReceiver):
    """The operator's alert webhook: answers 503 to the first `failures` posts, then takes them."""

    def __init__(self, failures: int) -> None:
        super().__init__("/alerts")
        self.failures, self.bodies, self.attempts = failures, [], 0
        self._lock = threading.Lock()

    def _hook(self) -> tuple[str, int]:
        with self._lock:
            self.attempts += 1
            if self.failures:
                self.failures -= 1
                return "down for maintenance", 503
            self.bodies.append(request.get_json())
        return "ok", 200


def raise_one_alert_per_job(app: Any) -> None:
    stopped_at = NOW - timedelta(days=85)
    with app.app_context():
        add_shipment("RR9", status="delivered", tracking="stopped", stopped_at=stopped_at,
                     last_event_at=stopped_at - timedelta(days=1), last_seen_at=stopped_at)  # fmt: skip
        add_shipment("17612345675", provider="cargoai", carrier=176, tracking_mode="push", subscriptions=1,
                     subscription_expires_at=NOW + timedelta(hours=20))  # fmt: skip
    fake = FakeSeventeenTrack({}, quota_used=3)
    collaborators = {"client17": lambda: fake, "account17": lambda: runtime.account("17track")}
    with time_machine.travel(NOW, tick=False):
        assert run(app, "mirror-17track")["warned"] == 1
        assert run(app, "cargoai-subscriptions")["alerts_raised"] == 1
        # RR9 is not in 17TRACK's (empty) list, and 17TRACK counts 3 units the ledger does not.
        assert run(app, "reconcile", collaborators=collaborators)["alerts_raised"] == 2


def test_job_alerts_reach_the_webhook_once_each_and_a_failed_post_is_retried(settings_factory):
    with AlertReceiver(failures=1) as receiver:
        app = create_app(settings_factory(alert_webhook_url=receiver.url))
        try:
            raise_one_alert_per_job(app)
            with app.app_context():
                first = jobs.sweep()
                assert first["job_alerts_sent"] == 0 and receiver.bodies == []
                assert "503" in alerts()[0].delivery_error  # kept, with why, for the next round
                second, third = jobs.sweep(), jobs.sweep()
        finally:
            db.engine.dispose()  # type: ignore[union-attr]
    assert (second["job_alerts_sent"], third["job_alerts_sent"]) == (4, 0)
    assert receiver.attempts == 5  # one refused, then each alert once
    by_key = {body["alert"].split(":")[0]: body for body in receiver.bodies}
    assert len(receiver.bodies) == len(by_key) == 4
    assert by_key["17track-delete"]["job"] == "mirror-17track"
    assert "17TRACK will delete RR9" in by_key["17track-delete"]["message"]
    assert by_key["17track-delete"]["details"]["number"] == "RR9"
    assert "17612345675" in by_key["cargoai-ending"]["message"]
    assert "(+3)" in by_key["drift"]["message"] and "1 only here" in by_key["reconcile"]["message"]
    assert all(alert.delivered_at is not None and alert.delivery_error is None for alert in alerts())


def test_without_a_webhook_job_alerts_count_as_delivered(settings_factory):
    app = create_app(settings_factory(alert_webhook_url=""))
    try:
        raise_one_alert_per_job(app)
        with app.app_context():
            assert jobs.sweep()["job_alerts_sent"] == 0
    finally:
        db.engine.dispose()  # type: ignore[union-attr]
    assert all(alert.delivered_at is not None for alert in alerts())
