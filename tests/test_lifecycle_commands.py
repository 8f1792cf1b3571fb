"""Lifecycle commands end to end against the simulator: local refusals, per-item answers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lifecycle import create_app, jobs, runtime
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import commands
from lifecycle.providers.seventeentrack.reconcile import queue_stale_syncs, reconcile
from lifecycle.shipments.registration import Registration, register
from simulators.seventeentrack import SimulatorServer
from tests.conftest import API_KEY
from tests.helpers import shipment

NUMBER = "RR123456789CN"


@pytest.fixture
def sim():  # type: ignore[no-untyped-def]
    with SimulatorServer(API_KEY, rate_per_second=50, step_seconds=None, not_found_rate=0) as server:
        yield server


@pytest.fixture
def app(settings_factory, sim):  # type: ignore[no-untyped-def]
    app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_rate_per_second=50))
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


def run(app, command, *args, **kwargs):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return command(session, *args, **kwargs)


def send(app):  # type: ignore[no-untyped-def]
    """Send every queued operation, then apply what came back into the inbox."""
    with app.app_context():
        report = jobs.flush_operations()
        inbox.drain(db.new_session, batch_size=100)
    return report


def registered(app, sim, number: str = NUMBER, carrier: int | None = 3011):  # type: ignore[no-untyped-def]
    run(app, register, [Registration(number, carrier)])
    send(app)
    return shipment(number)


def test_rejected_registration_keeps_code_and_message_and_accepted_records_detected_carrier(app, sim):
    run(app, register, [Registration("ZZ123456789"), Registration(NUMBER)])
    report = send(app)
    assert report["done"] == 1 and report["failed"] == 1
    with app.app_context():
        rejected, accepted = shipment("ZZ123456789"), shipment(NUMBER)
        assert rejected.tracking == "rejected" and rejected.error_code == -18019903 and rejected.last_error
        assert accepted.tracking == "tracking" and accepted.carrier == 3011  # detected by 17TRACK


def test_second_retrack_is_refused_locally(app, sim):
    registered(app, sim)
    run(app, commands.stop, NUMBER)
    send(app)
    assert run(app, commands.retrack, NUMBER).ok
    send(app)
    with app.app_context():
        assert shipment(NUMBER).tracking == "tracking" and shipment(NUMBER).retracked
    run(app, commands.stop, NUMBER)
    send(app)
    calls_before = len(sim.calls("retrack"))
    with pytest.raises(commands.CommandRefused, match="already retracked once"):
        run(app, commands.retrack, NUMBER)
    assert len(sim.calls("retrack")) == calls_before == 1


def test_retrack_only_a_stopped_number(app, sim):
    registered(app, sim)
    with pytest.raises(commands.CommandRefused, match="only a stopped number"):
        run(app, commands.retrack, NUMBER)


def test_carrier_changes_five_then_the_sixth_is_refused_locally(app, sim):
    registered(app, sim)
    with pytest.raises(commands.CommandRefused, match="no tracking result yet"):
        run(app, commands.change_carrier, NUMBER, 21051)
    sim.advance(steps=1, numbers=[NUMBER])
    run(app, commands.sync, NUMBER)  # the first result arrives (pulled here instead of pushed)
    send(app)
    for carrier in (21051, 100002, 100003, 7041, 2151):
        assert run(app, commands.change_carrier, NUMBER, carrier).ok
        send(app)
    with app.app_context():
        assert (shipment(NUMBER).carrier, shipment(NUMBER).carrier_changes) == (2151, 5)
    with pytest.raises(commands.CommandRefused, match="5 carrier changes"):
        run(app, commands.change_carrier, NUMBER, 3011)
    assert len(sim.calls("changecarrier")) == 5


def test_no_carrier_change_on_a_stopped_number(app, sim):
    registered(app, sim)
    run(app, commands.stop, NUMBER)
    send(app)
    with pytest.raises(commands.CommandRefused, match="stopped"):
        run(app, commands.change_carrier, NUMBER, 21051)


def test_delete_then_register_again_is_a_new_registration(app, sim):
    registered(app, sim)
    run(app, commands.delete, NUMBER)
    send(app)
    with app.app_context():
        assert shipment(NUMBER).tracking == "deleted"
    outcome = run(app, register, [Registration(NUMBER, 3011)])[0]
    assert outcome.ok
    send(app)
    with app.app_context():
        again = shipment(NUMBER)
        assert again.tracking == "tracking" and again.registration_generation == 2
        with db.new_session() as session:
            keys = session.scalars(
                select(Operation.idempotency_key).where(Operation.kind == "register")
            ).all()
    assert sorted(keys) == [f"17track:register:{NUMBER}:3011:1", f"17track:register:{NUMBER}:3011:2"]


def test_changeinfo_updates_tag_and_lang(app, sim):
    registered(app, sim)
    run(app, commands.change_info, NUMBER, tag="order-7", lang="en")
    send(app)
    with app.app_context():
        assert (shipment(NUMBER).tag, shipment(NUMBER).lang) == ("order-7", "en")
    assert sim.calls("changeinfo")[0]["items"] == 1


def test_sync_backfills_missed_pushes_through_the_inbox(app, sim):
    registered(app, sim)
    sim.advance(steps=3, numbers=[NUMBER])
    run(app, commands.sync, NUMBER)
    send(app)
    with app.app_context():
        synced = shipment(NUMBER)
        assert synced.status == "in_transit" and synced.last_event_at is not None
        assert synced.first_result_at is not None


def test_silent_shipments_are_queued_for_a_sync_once_per_window(app, sim):
    registered(app, sim)
    with app.app_context(), db.new_session() as session, session.begin():
        row = session.get(type(shipment(NUMBER)), shipment(NUMBER).id)
        row.registered_at = row.registered_at.replace(year=2020)
    assert run(app, queue_stale_syncs, 24) == 1
    assert run(app, queue_stale_syncs, 24) == 0


def test_reconcile_finds_numbers_on_one_side_only_and_state_mismatches(app, sim):
    registered(app, sim, NUMBER)
    registered(app, sim, "LX000000001CN")
    sim.add_parcel("OR000000001CN", 3011)  # registered in the dashboard, never pushed here
    with sim.state.lock:
        sim.state.parcels["LX000000001CN"].tracking = "Stopped"
    with app.app_context():
        report = reconcile(db.new_session, runtime.client("17track"))
    assert [i["number"] for i in report["only_at_provider"]] == ["OR000000001CN"]
    assert report["only_here"] == []
    assert [(i["number"], i["at_17track"]) for i in report["state_mismatch"]] == [
        ("LX000000001CN", "Stopped")
    ]
