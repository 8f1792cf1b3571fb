"""Air cargo end to end against the CargoAi simulator: AWBs, subscriptions, callbacks, pull mode."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select
from werkzeug.serving import make_server

from lifecycle import create_app, jobs
from lifecycle.accounting.models import LedgerEntry
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations.models import Operation
from lifecycle.providers.cargoai import awb
from lifecycle.providers.cargoai import tasks as cargoai_tasks
from lifecycle.providers.cargoai import webhook as cargoai
from lifecycle.providers.cargoai.pull import calls_allowed_now
from lifecycle.shipments.models import Shipment, Transition
from lifecycle.shipments.registration import Registration, register
from simulators.cargoai import CargoAiSimulatorServer
from tests.helpers import count

KEY = "cargo-test-key"
AWB = "176-12345675"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("176-12345675", "176-12345675"), ("17612345675", "176-12345675"), ("000-99999970", "000-99999970"),
     (" 020-17363006 ", "020-17363006"), ("057 06399886", "057-06399886")],
)  # fmt: skip
def test_valid_awbs_are_normalised_and_keep_their_prefix(raw, normalised):
    assert awb.normalise(raw) == normalised
    assert awb.airline_prefix(raw) == int(normalised[:3])


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("000-01234567", "check digit 7"),  # CargoAi's own docs example
        ("020-12345678", "can never be valid"),
        ("176-98765439", "can never be valid"),
        ("176-98765432", "should be 5"),
        ("176-1234567", "not an air waybill"),
        ("ABC-12345675", "not an air waybill"),
        ("", "not an air waybill"),
    ],
)
def test_invalid_awbs_are_refused_with_the_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        awb.normalise(raw)


@pytest.fixture
def cargo_sim():  # type: ignore[no-untyped-def]
    with CargoAiSimulatorServer(KEY, step_seconds=None, interline_rate=0, rebook_rate=0) as server:
        yield server


@pytest.fixture
def served(settings_factory, cargo_sim):  # type: ignore[no-untyped-def]
    """Our app on a real port, so the simulator's callbacks arrive over HTTP."""
    holder: dict = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = settings_factory(
        cargoai_api_key=KEY,
        cargoai_api_url=cargo_sim.url,
        public_base_url=base,
        cargoai_plan="push-pro,pull-pro",
    )
    app = create_app(settings)
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    db.engine.dispose()  # type: ignore[union-attr]


def queue(app, *registrations):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return register(session, list(registrations))


def settle(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        jobs.flush_operations()
        inbox.drain(db.new_session, batch_size=100)


def shipment(app, number: str = AWB) -> Shipment:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return session.scalars(select(Shipment).where(Shipment.number == number)).one()


def test_awb_shaped_numbers_go_to_cargoai_and_garbage_is_refused_locally(served, cargo_sim):
    outcomes = queue(
        served, Registration("17612345675"), Registration("176-12345678"), Registration("RR123456789CN")
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "check digit" in outcomes[1].message
    with served.app_context(), db.new_session() as session:
        providers = dict(session.execute(select(Shipment.number, Shipment.provider)).all())
    assert providers == {AWB: "cargoai", "RR123456789CN": "17track"}
    assert shipment(served).carrier == 176  # the airline prefix is kept


def test_subscription_callbacks_and_automatic_unsubscribe_on_delivery(served, cargo_sim):
    queue(served, Registration(AWB))
    settle(served)
    assert cargo_sim.billable()["subscriptions"] == 1
    assert shipment(served).tracking == "tracking" and shipment(served).subscription_expires_at is not None
    for _ in range(12):  # BKD → … → DLV, one event per step, each pushed to our webhook
        cargo_sim.advance(1, [AWB])
        cargo_sim.wait_for_callbacks()
        settle(served)
    delivered = shipment(served)
    assert delivered.status == "delivered" and delivered.sub_status == "DLV"
    assert delivered.tracking == "stopped"
    assert len(cargo_sim.calls("unsubscribe")) == 1
    with served.app_context():
        charged = count(LedgerEntry, LedgerEntry.event_kind == "subscribe")
    assert charged == 1


def test_the_same_callback_three_times_gives_one_transition_per_event_and_one_charge(served, cargo_sim):
    queue(served, Registration(AWB))
    settle(served)
    events = [{"code": "BKD", "eventLocation": "DXB", "flight": {"number": "EK1"}},
              {"code": "RCS", "eventDate": "2026-11-01T10:00:00+04:00", "eventLocation": "DXB"}]  # fmt: skip
    body = json.dumps({"awb": AWB, "oldEvents": [], "newEvents": events, "events": events}).encode()
    client = served.test_client()
    for _ in range(3):
        headers = {"cargoai-api-key": cargoai.hmac_signature(body, KEY)}
        assert client.post("/webhooks/cargoai", data=body, headers=headers).status_code == 200
    settle(served)
    with served.app_context():
        assert count(Transition) == 2
        assert count(LedgerEntry, LedgerEntry.event_kind == "subscribe") == 1
    assert shipment(served).status == "in_transit"


def test_no_second_subscription_while_one_is_active_but_a_resubscription_is_billed(served, cargo_sim):
    queue(served, Registration(AWB))
    settle(served)
    again = queue(served, Registration(AWB))
    assert not again[0].ok and "not billed again" in again[0].message
    settle(served)
    assert len(cargo_sim.calls("subscribe")) == 1
    with served.app_context(), db.new_session() as session, session.begin():  # the subscription lapsed
        row = session.scalars(select(Shipment)).one()
        row.tracking = "stopped"
    assert queue(served, Registration(AWB))[0].ok
    settle(served)
    assert len(cargo_sim.calls("subscribe")) == 2 and cargo_sim.billable()["subscriptions"] == 2
    with served.app_context():
        assert count(LedgerEntry, LedgerEntry.event_kind == "subscribe") == 2


def test_subscribe_errors_are_kept_per_awb(served, cargo_sim):
    cargo_sim.fail_next(503)
    queue(served, Registration(AWB))
    settle(served)
    with served.app_context(), db.new_session() as session:
        op = session.scalars(select(Operation)).one()
        assert op.status == "pending" and "HTTP 503" in op.result_message


@pytest.mark.parametrize(
    ("mode", "extra", "headers", "status"),
    [
        ("hmac", {}, lambda b: {"cargoai-api-key": cargoai.hmac_signature(b, KEY)}, 200),
        ("hmac", {}, lambda b: {"cargoai-api-key": cargoai.hmac_signature(b, "other")}, 401),
        ("hmac", {}, lambda b: {}, 401),
        ("bearer", {"cargoai_callback_token": "t0k"}, lambda b: {"Authorization": "Bearer t0k"}, 200),
        ("bearer", {"cargoai_callback_token": "t0k"}, lambda b: {"Authorization": "Bearer nope"}, 401),
        ("bearer", {}, lambda b: {"Authorization": "Bearer "}, 401),  # no token configured: fail closed
        ("basic", {"cargoai_callback_user": "u", "cargoai_callback_password": "p"},
         lambda b: {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}, 200),
        ("basic", {"cargoai_callback_user": "u", "cargoai_callback_password": "p"},
         lambda b: {"Authorization": "Basic " + base64.b64encode(b"u:x").decode()}, 401),
        ("none", {}, lambda b: {}, 200),
    ],
)  # fmt: skip
def test_callback_authentication_modes(settings_factory, mode, extra, headers, status):
    app = create_app(settings_factory(cargoai_api_key=KEY, cargoai_callback_auth=mode, **extra))
    body = json.dumps({"awb": AWB, "events": [{"code": "BKD"}]}).encode()
    response = app.test_client().post("/webhooks/cargoai", data=body, headers=headers(body))
    assert response.status_code == status
    with app.app_context():
        assert count(Shipment) == 0  # nothing is applied by the web tier, whatever the answer


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"awb": "176-12345675"}', b'{"awb": 1, "events": []}'])
def test_malformed_callbacks_are_400(settings_factory, body):
    app = create_app(settings_factory(cargoai_api_key=KEY, cargoai_callback_auth="none"))
    assert app.test_client().post("/webhooks/cargoai", data=body).status_code == 400


def test_unknown_event_codes_are_kept_verbatim(settings_factory):
    app = create_app(settings_factory(cargoai_callback_auth="none"))
    events = [
        {"code": "RCS", "eventDate": "2026-11-01T10:00:00Z"},
        {"code": "XYZ", "eventDate": "2026-11-02T10:00:00Z"},
    ]
    app.test_client().post("/webhooks/cargoai", data=json.dumps({"awb": AWB, "events": events}))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
        with db.new_session() as session:
            row = session.scalars(select(Shipment)).one()
    assert (row.status, row.sub_status, row.origin) == ("in_transit", "XYZ", "adopted")


def test_pull_budget_is_respected_over_a_simulated_month(served, cargo_sim):
    queue(served, *[Registration(a, mode="pull") for a in ("176-12345675", "000-99999970", "020-17363006")])
    start = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    with served.app_context():
        for hour in range(31 * 24):
            with time_machine.travel(start + timedelta(hours=hour), tick=False):
                cargoai_tasks.poll()
        calls = count(LedgerEntry, LedgerEntry.event_kind == "pull_call")
        with db.new_session() as session:
            spread = len({e.occurred_at.date() for e in session.scalars(select(LedgerEntry))})
    assert calls == 10  # pull-pro's 10 calls, spent over the month, not on day one
    assert spread >= 9
    assert len(cargo_sim.calls("track")) == 10


def test_budget_share_never_exceeds_what_is_left(app):
    with app.app_context(), db.new_session() as session:
        assert calls_allowed_now(session, 10, datetime(2026, 12, 31, 12, tzinfo=UTC)) == 10
        assert calls_allowed_now(session, 31, datetime(2026, 12, 1, 12, tzinfo=UTC)) == 1
        assert calls_allowed_now(session, 0, datetime(2026, 12, 1, 12, tzinfo=UTC)) == 0


def test_push_vs_pull_break_even_from_observed_updates(settings_factory, tmp_path):
    from config.settings import PROJECT_ROOT
    from lifecycle import runtime
    from lifecycle.accounting.advice import cargoai_break_even

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "17track.toml").write_text((PROJECT_ROOT / "config/quota_rules/17track.toml").read_text())
    text = (PROJECT_ROOT / "config/quota_rules/cargoai.toml").read_text()
    # Give pull an assumed per-call price (the sources have none): 0.25 USD → break-even at 4 updates.
    head, tail = text.split("[plans.pull-pro]", 1)
    first, rest = tail.split("\n[", 1)
    first = "\n".join(line for line in first.splitlines() if not line.startswith("overage_unit_price"))
    (rules / "cargoai.toml").write_text(
        f'{head}[plans.pull-pro]{first}\noverage_unit_price = "0.25"\n\n[{rest}'
    )
    app = create_app(settings_factory(quota_rules_dir=rules, cargoai_callback_auth="none"))
    chatty = [
        {"code": c, "eventDate": f"2026-11-0{i + 1}T10:00:00Z"}
        for i, c in enumerate("BKD RCS MAN DEP ARR DLV".split())
    ]
    quiet = chatty[:2]
    client = app.test_client()
    client.post("/webhooks/cargoai", data=json.dumps({"awb": "176-12345675", "events": chatty}))
    client.post("/webhooks/cargoai", data=json.dumps({"awb": "000-99999970", "events": quiet}))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
        with db.new_session() as session:
            report = cargoai_break_even(session, runtime.account("cargoai"))
    assert report["break_even_updates"] == "4"
    assert report["cheaper_on_push"] == ["176-12345675"] and report["cheaper_on_pull"] == ["000-99999970"]


def test_break_even_is_unknown_without_a_pull_price(app):
    from lifecycle import runtime
    from lifecycle.accounting.advice import cargoai_break_even

    with app.app_context(), db.new_session() as session:
        report = cargoai_break_even(session, runtime.account("cargoai"))
    assert report["break_even_updates"] is None and "unknown" in report["why"]


@pytest.mark.parametrize(
    ("renew", "delivered", "expected"),
    [(True, False, "renewed"), (False, False, "expired"), (True, True, "expired")],
)
def test_subscriptions_are_renewed_only_while_undelivered_and_only_by_policy(
    served, cargo_sim, renew, delivered, expected
):
    from tests.cleanup_helpers import run

    queue(served, Registration(AWB))
    settle(served)
    with served.app_context(), db.new_session() as session, session.begin():
        row = session.scalars(select(Shipment)).one()
        row.subscription_expires_at = datetime.now(UTC) - timedelta(minutes=1)
        row.status = "delivered" if delivered else "in_transit"
    report = run(served, "cargoai-subscriptions", cargoai_renew_subscriptions=renew)
    assert report[expected] == 1
    settle(served)
    assert len(cargo_sim.calls("subscribe")) == (2 if expected == "renewed" else 1)
    if expected == "expired":
        assert shipment(served).tracking == "stopped" and "expired" in shipment(served).last_error
    else:
        with served.app_context():
            assert count(LedgerEntry, LedgerEntry.event_kind == "subscribe") == 2  # a renewal is billed again
