"""Mirroring 17TRACK's own housekeeping, and CargoAi subscriptions nearing their end."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from tests.cleanup_helpers import NOW, add_shipment, alerts, operations, run, shipment, shipment_reads

DELIVERED_AT = NOW - timedelta(days=40)


def test_delivered_numbers_stop_15_days_after_the_last_change(app):
    with app.app_context():
        add_shipment("RR1", status="delivered", tracking="stopping", last_event_at=DELIVERED_AT,
                     registered_at=DELIVERED_AT - timedelta(days=5))  # fmt: skip
        add_shipment("RR2", status="delivered", last_event_at=NOW - timedelta(days=3))
    with app.app_context(), time_machine.travel(NOW - timedelta(days=26), tick=False):
        early = run(app, "mirror-17track")
    assert "stopped_delivered" not in early and shipment("RR1").tracking == "stopping"
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "mirror-17track")
    stopped = shipment("RR1")
    assert counts["stopped_delivered"] == 1
    assert stopped.tracking == "stopped" and stopped.stopped_at == DELIVERED_AT + timedelta(days=15)
    assert "15 days" in stopped.last_error
    assert shipment("RR2").tracking == "tracking"


def test_a_queued_stoptrack_is_cancelled_once_17track_has_stopped_the_number(app):
    from lifecycle.extensions import db
    from lifecycle.operations.models import Operation
    from lifecycle.providers.seventeentrack.kinds import stoptrack_row
    from lifecycle.shipments.models import Shipment
    from lifecycle.sqlutil import insert_ignoring_conflicts

    with app.app_context():
        shipment_id = add_shipment("RR1", status="delivered", tracking="stopping", last_event_at=DELIVERED_AT)
        with db.new_session() as session, session.begin():
            row = stoptrack_row(session.get_one(Shipment, shipment_id))
            insert_ignoring_conflicts(session, Operation, [row], ["idempotency_key"])
    with time_machine.travel(NOW, tick=False):
        run(app, "mirror-17track")
    (op,) = operations("stoptrack")
    assert op.status == "cancelled"


def test_silent_numbers_stop_after_30_days_without_an_event(app):
    with app.app_context():
        add_shipment("QUIET", last_event_at=NOW - timedelta(days=31))
        add_shipment("NEVER-HEARD", last_event_at=None, registered_at=NOW - timedelta(days=31))
        add_shipment("RECENTLY-REGISTERED", last_event_at=NOW - timedelta(days=40),
                     registered_at=NOW - timedelta(days=10))  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        dry = run(app, "mirror-17track", dry_run=True)
        assert dry["would_stopped_silent"] == 2 and shipment("QUIET").tracking == "tracking"
        counts = run(app, "mirror-17track")
    assert counts["stopped_silent"] == 2
    assert shipment("QUIET").tracking == "stopped" and shipment("NEVER-HEARD").tracking == "stopped"
    assert shipment("RECENTLY-REGISTERED").tracking == "tracking"


def test_the_user_is_warned_before_17track_deletes_a_stopped_number_then_it_is_deleted(app):
    stopped_at = NOW - timedelta(days=85)
    with app.app_context():
        add_shipment("RR9", status="delivered", tracking="stopped", stopped_at=stopped_at,
                     last_event_at=stopped_at - timedelta(days=1), last_seen_at=stopped_at)  # fmt: skip
        add_shipment("RR-YOUNG", status="delivered", tracking="stopped", stopped_at=NOW - timedelta(days=10))
    with time_machine.travel(NOW, tick=False):
        first = run(app, "mirror-17track")
        second = run(app, "mirror-17track")
    assert first["warned"] == 1 and "warned" not in second
    (alert,) = alerts("mirror-17track")
    deletion_day = (stopped_at + timedelta(days=90)).date().isoformat()
    assert "RR9" in alert.message and deletion_day in alert.message and alert.resolved_at is None
    assert shipment("RR9").tracking == "stopped"
    with time_machine.travel(NOW + timedelta(days=6), tick=False):
        deleted = run(app, "mirror-17track")
    gone = shipment("RR9")
    assert deleted["deleted"] == 1 and gone.tracking == "deleted"
    assert gone.deleted_at == stopped_at + timedelta(days=90)
    assert alerts("mirror-17track")[0].resolved_at is not None
    assert shipment("RR-YOUNG").tracking == "stopped"


def test_cargoai_subscriptions_ending_soon_are_reported_and_alerted_once(app):
    def awb(number: str, ends_in: timedelta, **fields):  # type: ignore[no-untyped-def]
        add_shipment(number, provider="cargoai", carrier=int(number[:3]), tracking_mode="push",
                     subscriptions=1, subscription_expires_at=NOW + ends_in, **fields)  # fmt: skip

    with app.app_context():
        awb("17612345675", timedelta(hours=20))
        awb("17612345686", timedelta(days=10))
        awb("17612345690", timedelta(hours=-1))
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "cargoai-subscriptions")
        again = run(app, "cargoai-subscriptions")
    assert counts["policy"] == "let lapse" and counts["ending_soon"] == 1 and counts["expired"] == 1
    assert counts["alerts_raised"] == 1 and again.get("alerts_raised", 0) == 0
    assert [a.message.split()[4] for a in alerts("cargoai-subscriptions")] == ["17612345675"]
    assert shipment("17612345690").tracking == "stopped"


def test_cargoai_renewal_policy_queues_a_new_subscription_and_raises_no_alert(app):
    with app.app_context():
        add_shipment("17612345675", provider="cargoai", carrier=176, tracking_mode="push", subscriptions=1,
                     subscription_expires_at=NOW + timedelta(hours=5))  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "cargoai-subscriptions", cargoai_renew_subscriptions=True)
    assert counts["policy"] == "renew" and counts["renewed"] == 1 and alerts() == []
    assert [op.kind for op in operations()] == ["subscribe"]


@pytest.mark.parametrize("renew", [False, True])
def test_cargoai_renewals_and_expiries_are_read_in_bounded_batches(app, renew):
    """Never every due AWB in one query and one transaction: pages of CLEANUP_BATCH_SIZE."""
    with app.app_context():
        for i in range(7):
            add_shipment(f"1761234567{i}", provider="cargoai", carrier=176, tracking_mode="push",
                         subscriptions=1, subscription_expires_at=NOW - timedelta(hours=1))  # fmt: skip
    with time_machine.travel(NOW, tick=False), shipment_reads() as reads:
        counts = run(app, "cargoai-subscriptions", cargoai_renew_subscriptions=renew, cleanup_batch_size=3)
    assert counts["renewed" if renew else "expired"] == 7
    assert len(operations("subscribe")) == (7 if renew else 0)
    due = [statement for statement in reads if "subscription_expires_at <" in statement]
    assert len(due) >= 3 and all(" limit " in statement for statement in due), due
