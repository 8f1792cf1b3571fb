"""The admin's cost preview equals what the ledger then charges, for every lifecycle command and
under both 17TRACK rule sets; the shipment's running cost equals its ledger entries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from lifecycle import create_app, jobs, runtime
from lifecycle.accounting.models import LedgerEntry
from lifecycle.admin import actions
from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.providers.seventeentrack import preview
from lifecycle.shipments import queries
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.registration import Registration, register
from simulators.seventeentrack import SimulatorServer
from tests.conftest import API_KEY

NUMBER = "RR123456789CN"
RULE_SETS = ["17track-official", "17track-per-cycle"]


@pytest.fixture
def sim():  # type: ignore[no-untyped-def]
    with SimulatorServer(API_KEY, rate_per_second=50, step_seconds=None, not_found_rate=0) as server:
        yield server


def make_app(settings_factory, sim, rule_set: str):  # type: ignore[no-untyped-def]
    return create_app(
        settings_factory(
            seventeentrack_api_url=sim.url, seventeentrack_rate_per_second=50, seventeentrack_rules=rule_set
        )
    )


def send(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        jobs.flush_operations()
        inbox.drain(db.new_session, batch_size=100)


def the_shipment(session) -> Shipment:  # type: ignore[no-untyped-def]
    return session.scalars(
        select(Shipment).where(Shipment.number == NUMBER, Shipment.tracking != "deleted")
    ).one()


def last_ledger_id(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return session.scalar(select(func.max(LedgerEntry.id))) or 0


def charged_since(app, ledger_id: int, kinds: set[str]) -> tuple[int, Decimal]:  # type: ignore[no-untyped-def]
    """Units and money charged after `ledger_id` for events of these kinds (update cycles excluded)."""
    with app.app_context(), db.new_session() as session:
        rows = session.scalars(
            select(LedgerEntry).where(LedgerEntry.id > ledger_id, LedgerEntry.event_kind.in_(kinds))
        ).all()
        assert rows, f"nothing charged for {kinds}"
        return sum(r.units for r in rows), sum((r.amount or Decimal(0) for r in rows), Decimal(0))


def previewed(app, command: str, **args) -> preview.Preview:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return preview.preview(session, runtime.account("17track"), the_shipment(session), command, **args)


def run_command(app, command: str, **args) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        with db.new_session() as session:
            shipment_id = the_shipment(session).id
        result = actions.run(db.new_session, command, shipment_id, **args)
    assert result.ok, result.message
    send(app)


def check(app, command: str, kinds: set[str], **args) -> preview.Preview:  # type: ignore[no-untyped-def]
    expected = previewed(app, command, **args)
    before = last_ledger_id(app)
    run_command(app, command, **args)
    assert charged_since(app, before, kinds) == (expected.cost.units, expected.cost.amount), expected.summary
    return expected


@pytest.mark.parametrize("rule_set", RULE_SETS)
def test_preview_equals_the_charge_for_every_lifecycle_command(settings_factory, sim, rule_set):
    app = make_app(settings_factory, sim, rule_set)
    with app.app_context(), db.new_session() as session, session.begin():
        register(session, [Registration(NUMBER, 3011)])
    send(app)
    sim.advance(steps=1, numbers=[NUMBER])
    run_command(app, "sync")  # the first result: carrier changes are allowed from here on

    changed = check(app, "change-carrier", {"carrier_change"}, new_carrier=21051)
    assert "4 of 5 free changes left" not in changed.summary and "5 of 5" in changed.summary
    set_lang = check(app, "set-language", {"lang_set"}, lang="en")
    assert set_lang.cost.units == 1 and set_lang.summary.startswith("set language: +1 quota")
    change_lang = check(app, "set-language", {"lang_change"}, lang="de")
    assert change_lang.cost.units == 0 and change_lang.summary.startswith("change language: free")

    stop = previewed(app, "stop")
    before = last_ledger_id(app)
    run_command(app, "stop")
    assert stop.cost.units == 0 and last_ledger_id(app) == before  # stopping is never charged
    retrack = check(app, "retrack", {"retrack"})
    assert retrack.summary == "retrack: free, 1st of 1"

    delete = previewed(app, "delete")
    again = reregistration_cost(app)
    assert f"registering this number again will cost {again.units} quota" in delete.summary
    check(app, "delete", {"delete"})
    before = last_ledger_id(app)
    with app.app_context(), db.new_session() as session, session.begin():
        register(session, [Registration(NUMBER, 21051, lang="de")])
    send(app)
    assert charged_since(app, before, {"register"}) == (again.units, again.amount)
    db.engine.dispose()  # type: ignore[union-attr]


def reregistration_cost(app) -> preview.Cost:  # type: ignore[no-untyped-def]
    with app.app_context():
        account = runtime.account("17track")  # before our session: SQLite has one writer at a time
        with db.new_session() as session:
            return preview.price(session, account, preview.reregistration_event(the_shipment(session)))


@pytest.mark.parametrize("rule_set", RULE_SETS)
def test_shipment_cost_is_a_running_total_equal_to_its_ledger(settings_factory, sim, rule_set):
    app = make_app(settings_factory, sim, rule_set)
    with app.app_context(), db.new_session() as session, session.begin():
        register(session, [Registration(NUMBER, 3011, lang="en")])
    send(app)
    for steps in (1, 2):
        sim.advance(steps=steps, numbers=[NUMBER])
        run_command(app, "sync")
    with app.app_context(), db.new_session() as session:
        shipment = the_shipment(session)
        entries = session.scalars(select(LedgerEntry).where(LedgerEntry.shipment_id == shipment.id)).all()
        cost = queries.shipment_json(shipment)["cost"]
    assert cost["units"] == sum(e.units for e in entries) >= 2  # registration + translation
    assert Decimal(cost["money"]) == sum((e.amount or Decimal(0) for e in entries), Decimal(0))
    assert cost["currency"] == "CNY"
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "test")
    detail = app.test_client().get(
        f"/api/shipments/17track/{NUMBER}", headers={"Authorization": f"Bearer {token}"}
    )
    shown = detail.get_json()["shipment"]
    assert shown["cost"] == cost and sum(e["units"] for e in shown["ledger"]) == cost["units"]
    assert {e["event"] for e in shown["ledger"]} >= {"register"}
    db.engine.dispose()  # type: ignore[union-attr]
