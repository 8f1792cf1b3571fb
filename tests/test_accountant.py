"""The accountant end to end: charges from provider answers, the budget guard, reports, advice, replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import PROJECT_ROOT
from lifecycle import create_app, jobs, runtime
from lifecycle.accounting.advice import advise
from lifecycle.accounting.models import BudgetAlert, LedgerEntry, UsageTotal
from lifecycle.accounting.reports import quota_report
from lifecycle.accounting.service import set_overage_allowed
from lifecycle.api.tokens import create_token
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.replay import replay
from lifecycle.operations import pause
from lifecycle.shipments.registration import Registration, register
from simulators.seventeentrack import SimulatorServer, pushes
from tests.conftest import API_KEY
from tests.helpers import at, count, post_push


@pytest.fixture
def sim():  # type: ignore[no-untyped-def]
    with SimulatorServer(API_KEY, rate_per_second=50, step_seconds=None) as server:
        yield server


@pytest.fixture
def tiny_rules(tmp_path: Path) -> Path:
    """The shipped rules with 2 free units a month and a 5-unit plan, to reach 100% quickly."""
    text = (PROJECT_ROOT / "config/quota_rules/17track.toml").read_text()
    text = text.replace("free_monthly_units = 100", "free_monthly_units = 2")
    text += (
        '\n[plans.tiny]\nperiod = "year"\nincluded_units = 5\nprice = "10"\noverage_unit_price = "unknown"\n'
    )
    (tmp_path / "17track.toml").write_text(text)
    return tmp_path


def make_app(settings_factory, sim, **overrides):  # type: ignore[no-untyped-def]
    return create_app(
        settings_factory(seventeentrack_api_url=sim.url, seventeentrack_rate_per_second=50, **overrides)
    )


def queue(app, *registrations: Registration) -> None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        register(session, list(registrations))


def flush(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return jobs.flush_operations()


def ledger_rows(app) -> list[LedgerEntry]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))


def test_registrations_are_charged_from_the_providers_answers(settings_factory, sim):
    app = make_app(settings_factory, sim)
    sim.add_parcel("RR000000009CN", 3011)  # registered elsewhere: 17TRACK answers "already registered"
    queue(app, Registration("RR000000001CN", lang="en"), Registration("RR000000002CN", 3011),
          Registration("ZZ000000003"), Registration("RR000000009CN", 3011))  # fmt: skip
    flush(app)
    rows = ledger_rows(app)
    assert [(e.rule, e.units) for e in rows] == [
        ("17track.register", 1),
        ("17track.translation", 1),
        ("17track.register", 1),
        ("17track.register_rejected", 0),
    ]
    # The key names the carrier 17TRACK detected, not the "unknown" it was queued with.
    assert rows[0].idempotency_key == "17track:register:RR000000001CN:3011:1"
    flush(app)
    assert len(ledger_rows(app)) == 4


def test_budget_guard_alerts_once_per_threshold_and_holds_registrations_at_100_percent(
    settings_factory, sim, tiny_rules
):
    app = make_app(settings_factory, sim, quota_rules_dir=tiny_rules, seventeentrack_plan="tiny")
    queue(app, *[Registration(f"RR{n:09d}CN", 3011) for n in range(10)])
    first = flush(app)
    assert first["done"] == 7  # 2 free this month + the plan's 5; the rest waits
    assert "budget guard" in first["paused"]["register"]["reason"]
    with app.app_context():
        assert count(LedgerEntry, LedgerEntry.bucket == "overage") == 0
        with db.new_session() as session:
            thresholds = session.scalars(select(BudgetAlert.threshold).order_by(BudgetAlert.threshold)).all()
        assert thresholds == [80, 95, 100]
    assert flush(app)["calls"] == 0  # held, not dropped, not looping
    with app.app_context(), db.new_session() as session, session.begin():
        set_overage_allowed(session, "17track", True)
        pause.resume(session, "17track", "register")
    assert flush(app)["done"] == 3
    with app.app_context():
        assert count(LedgerEntry, LedgerEntry.bucket == "overage") == 3
        assert count(BudgetAlert) == 3  # no second alert for the same crossing


def test_quota_report_over_api_and_cli_shape(settings_factory, sim):
    app = make_app(settings_factory, sim, seventeentrack_plan="basic")
    queue(app, *[Registration(f"RR{n:09d}CN", 3011) for n in range(3)])
    flush(app)
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "t")
    body = app.test_client().get("/api/quota", headers={"Authorization": f"Bearer {token}"}).json
    report = body["providers"]["17track"]
    assert (report["unit"], report["used"], report["plan"]["name"]) == ("quota", 3, "basic")
    free, plan, overage = report["buckets"]
    assert (free["bucket"], free["used"], free["remaining"]) == ("monthly_free", 3, 97)
    assert (plan["limit"], plan["remaining"], overage["unit_price"]) == (10000, 10000, "unknown")
    assert report["remaining"] == 97 + 10000
    assert report["top_cost_drivers"][0] == {
        "rule": "17track.register",
        "units": 3,
        "events": 3,
        "amount": "0",
    }
    assert report["forecast_exhausted_on"] is None  # 3 units in 30 days: the free quota covers it
    assert json.dumps(body)  # plain JSON: no Decimal or datetime objects


def test_on_the_free_plan_a_burn_the_free_quota_covers_never_runs_out(settings_factory, sim, tiny_rules):
    """The free plan's bucket is 0 of 0: the forecast said "runs out today" with 95 of 100 free left."""
    app = make_app(settings_factory, sim, seventeentrack_plan="free")
    queue(app, *[Registration(f"RR{n:09d}CN", 3011) for n in range(5)])
    assert flush(app)["done"] == 5
    with app.app_context(), db.new_session() as session:
        report = quota_report(session, runtime.accounts_in_force(), utcnow())["providers"]["17track"]
    free, plan = report["buckets"][:2]
    assert (free["bucket"], free["remaining"], plan["limit"], plan["remaining"]) == ("monthly_free", 95, 0, 0)
    assert report["forecast_exhausted_on"] is None
    # Two free units a month, and three used in the last 30 days: the burn is beyond the free quota,
    # and with nothing left this month it has run out today.
    short = make_app(settings_factory, sim, seventeentrack_plan="free", quota_rules_dir=tiny_rules,
                     allow_overage=True)  # fmt: skip
    queue(short, *[Registration(f"RR{n:09d}CN", 3011) for n in range(5, 8)])
    assert flush(short)["done"] == 3
    with short.app_context(), db.new_session() as session:
        tight = quota_report(session, runtime.accounts_in_force(), utcnow())["providers"]["17track"]
    assert tight["buckets"][0]["remaining"] == 0
    assert tight["forecast_exhausted_on"] == utcnow().date().isoformat()  # ACCOUNT_TIMEZONE is UTC


@pytest.mark.parametrize(
    ("monthly", "cheapest", "if_free_alongside", "saving"),
    [
        (50, "free", "free", None),
        (833, "basic", "basic", None),  # 9,996 a year fits Basic's 10,000
        (834, "advanced", "basic", "1000"),  # 10,008 does not, unless the free 100 a month also count
        (933, "advanced", "basic", "1000"),  # (933 - 100) × 12 = 9,996
        (934, "advanced", "advanced", None),
        (4000, "advanced", "advanced", None),
        (30000, "pro", "pro", None),
    ],
)
def test_plan_advice_sizes_on_monthly_volume_times_twelve_and_shows_the_free_quota_alternative(
    app, monthly, cheapest, if_free_alongside, saving
):
    with app.app_context(), db.new_session() as session, session.begin():
        for month in range(1, 13):
            session.add(UsageTotal(provider="17track", scope="month", period=f"2025-{month:02d}", key="quota",
                                   units=monthly, entries=monthly))  # fmt: skip
    with app.app_context(), db.new_session() as session:
        advice = advise(session, runtime.account("17track"))
    assert advice["cheapest"] == cheapest
    assert advice["annual_need"] == monthly * 12
    alternative = advice["alternative"]
    assert (alternative["cheapest"], alternative["saving"]) == (if_free_alongside, saving)
    assert alternative["annual_need"] == max(0, monthly - 100) * 12
    assert alternative["rule_file_assumes_it"] is True
    assert advice["savings"]["quota_saved"]["17track-official"]["units"] == 0


def test_replay_equals_live_and_prices_what_if_rule_sets(settings_factory, sim, backend):
    app = make_app(settings_factory, sim, seventeentrack_plan="basic")
    numbers = [f"RR{n:09d}CN" for n in range(4)]
    queue(app, *[Registration(n, 3011, lang="en" if n.endswith("1CN") else None) for n in numbers])
    flush(app)
    client = app.test_client()
    for hours, status in ((1, "InTransit"), (20, "OutForDelivery"), (30, "Delivered")):
        for number in numbers:
            post_push(client, pushes.tracking_updated(number, 3011, status, None, at(hours)))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=100)
        live = replay(db.engine, runtime.accounts())
        what_if = replay(db.engine, runtime.accounts(), "17track-per-cycle")
        with db.new_session() as session:
            report = quota_report(session, runtime.accounts_in_force(), utcnow())
    per_delivered = report["providers"]["17track"]["cost_per_delivered_shipment"]
    assert per_delivered["delivered"] == 4  # kept as a running total, not counted
    assert per_delivered["units"] == "1.25"  # 5 units over 4 deliveries
    assert live["differences"] == []
    assert live["live"] == live["replay"] and live["live"]["units"] == 5
    # Per cycle: each of the 3 pushes per number moved a tracked, undelivered shipment.
    assert what_if["replay"]["units"] == 5 + 4 * 3
    # Under another rule set the entries cannot match key by key: it says which rules differ instead.
    assert what_if["what_if"] and what_if["live_rule_set"] == "17track-official"
    assert "rule 17track.update_cycle: live 0 units, replay 12 units (+12)" in what_if["differences"]


def test_a_bad_rule_file_stops_the_service_at_start_naming_the_line(settings_factory, tmp_path):
    from lifecycle.accounting.rules import RulesError

    text = (PROJECT_ROOT / "config/quota_rules/17track.toml").read_text()
    (tmp_path / "17track.toml").write_text(text.replace('price = "299"', "price = 299.0"))
    with pytest.raises(RulesError, match=r"17track\.toml:\d+:"):
        create_app(settings_factory(quota_rules_dir=tmp_path))


def test_an_unknown_plan_stops_the_service_at_start(settings_factory):
    from lifecycle.accounting.rules import RulesError

    with pytest.raises(RulesError, match="plan 'platinum'"):
        create_app(settings_factory(seventeentrack_plan="platinum"))


def test_allow_overage_setting_lets_registrations_past_the_plan(settings_factory, sim, tiny_rules):
    app = make_app(
        settings_factory, sim, quota_rules_dir=tiny_rules, seventeentrack_plan="tiny", allow_overage=True
    )
    queue(app, *[Registration(f"RR{n:09d}CN", 3011) for n in range(10)])
    assert flush(app)["done"] == 10
    with app.app_context():
        assert count(LedgerEntry, LedgerEntry.bucket == "overage") == 3


def test_plan_recorded_in_the_database_overrides_the_environment(app):
    from datetime import date

    from lifecycle.accounting.service import set_plan

    with app.app_context():
        assert runtime.account("17track").plans["quota"].name == "free"
        with db.new_session() as session, session.begin():
            set_plan(session, runtime.accounts()["17track"], "advanced", date(2026, 4, 1))
        in_force = runtime.account("17track")
        assert in_force.plans["quota"].name == "advanced" and in_force.plan_start == date(2026, 4, 1)
        with db.new_session() as session:
            report = quota_report(session, runtime.accounts_in_force(), utcnow())
    assert report["providers"]["17track"]["plan"]["name"] == "advanced"
    assert report["providers"]["17track"]["plan"]["period_start"] == "2026-04-01"


def test_an_unknown_plan_cannot_be_recorded(app):
    from lifecycle.accounting.rules import RulesError
    from lifecycle.accounting.service import set_plan

    with app.app_context(), db.new_session() as session, pytest.raises(RulesError, match="platinum"):
        set_plan(session, runtime.accounts()["17track"], "platinum", None)


def test_drift_compares_with_getquota_and_charges_reported_emails(settings_factory, sim):
    from lifecycle.providers.seventeentrack import drift

    app = make_app(settings_factory, sim, seventeentrack_plan="basic")
    queue(app, Registration("RR000000001CN", 3011))
    assert flush(app)["done"] == 1, sim.calls()
    sim.add_parcel("RR000000009CN", 3011)  # registered in the dashboard: 17TRACK counts it, we do not
    # A push for it would adopt it here; record it the way that push would.
    with app.app_context(), db.new_session() as session, session.begin():
        from lifecycle.shipments.models import Shipment

        session.add(Shipment(provider="17track", number="RR000000009CN", carrier=3011, origin="adopted"))
    with sim.state.lock:
        sim.state.quota.used += 1  # what 17TRACK charged for the dashboard registration
    with app.app_context(), db.new_session() as session, session.begin():
        snapshot = drift.refresh(session, runtime.account("17track"), runtime.client("17track"), utcnow())
    assert (snapshot["ours"], snapshot["difference"]) == (1, snapshot["theirs"] - 1)
    assert any("outside this service" in line for line in snapshot["explanations"])
