"""The ledger: each billable event charged once, into the right bucket and period, money exact."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from config.settings import Settings
from lifecycle.accounting import ledger
from lifecycle.accounting.models import LedgerEntry, UsageTotal
from lifecycle.accounting.rules import BillableEvent, load_rules
from lifecycle.accounting.service import build_accounts
from lifecycle.extensions import db

NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def account(plan: str = "basic", rules: str = "17track-official", tz: str = "UTC", start: date | None = None):  # type: ignore[no-untyped-def]
    settings = Settings(
        seventeentrack_plan=plan, seventeentrack_rules=rules, account_timezone=tz,
        seventeentrack_plan_start=start, _env_file=None,
    )  # fmt: skip
    return build_accounts(settings, load_rules())["17track"]


def register(n: int, when: datetime = NOV, lang: str | None = None) -> BillableEvent:
    return BillableEvent(
        "17track", "register", f"17track:register:RR{n:09d}CN:3011:1", when, attrs={"lang": lang}
    )


def charge(app, acct, events):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return ledger.charge(session, acct, events)


def entries(app) -> list[LedgerEntry]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))


def event(kind: str, **attrs: object) -> BillableEvent:
    return BillableEvent("17track", kind, f"17track:{kind}:RR1", NOV, attrs=attrs)


FREE = "free"
MONTHLY = "monthly_free"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (rule, units, bucket) per entry, in order
        ([register(1)], [("17track.register", 1, MONTHLY)]),
        ([register(1, lang="en")], [("17track.register", 1, MONTHLY), ("17track.translation", 1, MONTHLY)]),
        ([event("register_rejected")], [("17track.register_rejected", 0, FREE)]),
        ([event("lang_set", lang="en")], [("17track.lang_set", 1, MONTHLY)]),
        ([event("lang_change", lang="de")], [("17track.lang_change", 0, FREE)]),
        ([event("retrack")], [("17track.retrack", 0, FREE)]),
        ([event("carrier_change", change_number=5)], [("17track.carrier_change", 0, FREE)]),
        ([event("delete")], [("17track.delete", 0, FREE)]),
    ],
)
def test_each_seed_rule_lands_in_the_ledger(app, events, expected):
    charge(app, account(), events)
    assert [(e.rule, e.units, e.bucket) for e in entries(app)] == expected
    assert all(isinstance(e.amount, Decimal) for e in entries(app))


def test_reregistration_after_delete_is_charged_again(app):
    first = register(1)
    again = replace(first, key=first.key[:-1] + "2")  # the next registration generation
    charge(app, account(), [first, again])
    assert [e.units for e in entries(app)] == [1, 1]


def test_the_same_event_is_charged_once(app):
    acct = account()
    assert len(charge(app, acct, [register(1), register(1)])) == 1
    assert charge(app, acct, [register(1)]) == []
    assert len(entries(app)) == 1


def test_monthly_free_then_plan_then_overage_with_exact_money(app):
    acct = account(plan="basic")
    small = replace(acct, plans={"quota": replace(acct.plans["quota"], included_units=2)})
    charge(app, small, [register(n) for n in range(103)])
    buckets = [e.bucket for e in entries(app)]
    assert (
        buckets.count("monthly_free") == 100 and buckets.count("plan") == 2 and buckets.count("overage") == 1
    )
    plan_entry = next(e for e in entries(app) if e.bucket == "plan")
    # The plan's price spread over its units: ¥299 over this shrunken plan's 2 units.
    assert plan_entry.amount == Decimal("149.5") and plan_entry.currency == "CNY"
    assert (
        next(e for e in entries(app) if e.bucket == "overage").amount is None
    )  # price unknown, not invented


def test_free_quota_is_per_calendar_month_and_not_cumulative(app):
    october = [register(n, datetime(2026, 10, 5, tzinfo=UTC)) for n in range(10)]
    november = [register(100 + n, NOV) for n in range(101)]
    charge(app, account(), october + november)
    rows = entries(app)
    assert sum(e.bucket == "monthly_free" and e.month == "2026-10" for e in rows) == 10
    assert sum(e.bucket == "monthly_free" and e.month == "2026-11" for e in rows) == 100
    assert sum(e.bucket == "plan" for e in rows) == 1  # October's 90 unused did not carry over


@pytest.mark.parametrize(
    ("instant", "tz", "month"),
    [
        (datetime(2026, 10, 31, 23, 59, 59, 999000, tzinfo=UTC), "UTC", "2026-10"),
        (datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC), "UTC", "2026-11"),
        # 16:30 UTC on 31 October is already 1 November in Shanghai.
        (datetime(2026, 10, 31, 16, 30, tzinfo=UTC), "Asia/Shanghai", "2026-11"),
        (datetime(2026, 10, 31, 15, 59, 59, 999000, tzinfo=UTC), "Asia/Shanghai", "2026-10"),
    ],
)
def test_month_boundaries_are_exact_in_the_account_time_zone(app, instant, tz, month):
    charge(app, account(tz=tz), [register(1, instant)])
    assert entries(app)[0].month == month


def test_plan_year_runs_from_the_plan_start_date(app):
    acct = account(start=date(2026, 3, 15))
    charge(
        app,
        acct,
        [
            register(1, datetime(2026, 3, 14, 23, 0, tzinfo=UTC)),
            register(2, datetime(2026, 3, 15, tzinfo=UTC)),
        ],
    )
    assert [e.plan_period for e in entries(app)] == ["2025-03-15", "2026-03-15"]


def test_emails_300_free_a_month_then_two_per_unit(app):
    acct = account()
    batch = [BillableEvent("17track", "email", f"17track:email:{i}", NOV, quantity=100) for i in range(4)]
    charge(app, acct, batch)  # 400 emails: 300 free, then 100 → 50 units
    assert sum(e.units for e in entries(app)) == 50


def test_concurrent_workers_charging_the_same_events_write_one_entry_each(app, backend):
    acct = account()
    events = [register(n) for n in range(150)]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for start in range(0, 150, 10):
                charge(app, acct, events[start : start + 10])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    rows = entries(app)
    assert len(rows) == 150 and len({e.idempotency_key for e in rows}) == 150
    assert (
        sum(e.bucket == "monthly_free" for e in rows) == 100 and sum(e.bucket == "plan" for e in rows) == 50
    )


def test_per_cycle_rule_set_charges_update_cycles_while_tracked(app):
    acct = account(rules="17track-per-cycle")
    tracked = BillableEvent("17track", "update_cycle", "c1", NOV, attrs={"tracking": True})
    after = BillableEvent(
        "17track", "update_cycle", "c2", NOV + timedelta(hours=1), attrs={"tracking": False}
    )
    charge(app, acct, [tracked, after])
    assert [e.units for e in entries(app)] == [1, 0]
    charge(app, account(), [BillableEvent("17track", "update_cycle", "c3", NOV, attrs={"tracking": True})])
    assert len(entries(app)) == 2  # continuous tracking is free under the official rules


def test_an_email_batch_reported_twice_counts_once(app):
    acct = account()
    batch = BillableEvent("17track", "email", "17track:email:day-1", NOV, quantity=302)
    charge(app, acct, [batch])
    charge(app, acct, [batch, BillableEvent("17track", "email", "17track:email:day-2", NOV, quantity=2)])
    assert sum(e.units for e in entries(app)) == 2  # 304 emails: 300 free, then 4 → 2 units


def _direct_units(kinds: list[str], langs: list[bool]) -> int:
    """The seed rules counted by hand: registration 1 (+1 translation), lang set 1, the rest 0."""
    units = 0
    for kind, lang in zip(kinds, langs, strict=True):
        units += {"register": 1 + lang, "lang_set": 1}.get(kind, 0)
    return units


KINDS = ["register", "register_rejected", "lang_set", "lang_change", "retrack", "delete"]


@given(
    picks=st.lists(
        st.tuples(st.sampled_from(KINDS), st.booleans(), st.integers(0, 5)), min_size=1, max_size=40
    ),
    cuts=st.lists(st.integers(1, 40), max_size=5),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ledger_total_equals_a_direct_count_whatever_the_batching_and_repeats(app, picks, cuts):
    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(delete(UsageTotal))
        session.execute(delete(LedgerEntry))
    events, kinds, langs = [], [], []
    for index, (kind, lang, repeat) in enumerate(picks):
        attrs = {"lang": "en" if lang else None} if kind in ("register", "lang_set", "lang_change") else {}
        event = BillableEvent(
            "17track", kind, f"17track:{kind}:N{index}", NOV + timedelta(minutes=index), attrs=attrs
        )
        events += [event] * (1 + repeat % 2)  # some events delivered twice
        kinds.append(kind)
        langs.append(lang and kind == "register")
    acct, start = account(), 0
    for cut in [*cuts, len(events)]:
        charge(app, acct, events[start : start + cut])
        start += cut
    charge(app, acct, events[start:])
    rows = entries(app)
    assert sum(e.units for e in rows) == _direct_units(kinds, langs)
    assert len({e.idempotency_key for e in rows}) == len(rows)


def test_a_large_batch_is_charged_in_one_call(app):
    """4,000 events × 19 columns is past PostgreSQL's 65,535 parameters for a single statement."""
    acct = account(plan="pro")
    assert len(charge(app, acct, [register(n) for n in range(4000)])) == 4000
    assert sum(e.units for e in entries(app)) == 4000


def test_carrier_changes_of_one_number_under_two_carriers_are_charged_separately(app):
    from lifecycle.operations.models import Operation
    from lifecycle.providers.seventeentrack import billing as events17
    from lifecycle.shipments.models import Shipment

    answers = []
    for carrier in (3011, 190271):  # the same number registered under two carriers: two registrations
        shipment = Shipment(provider="17track", number="RR1", carrier=carrier, registration_generation=1,
                            carrier_changes=0)  # fmt: skip
        op = Operation(provider="17track", kind="changecarrier", number="RR1", carrier=carrier,
                       payload={"carrier_new": 100003})  # fmt: skip
        answers += events17.for_answer(op, shipment, {"number": "RR1"})
    assert [e.key for e in answers] == [
        "17track:changecarrier:RR1:3011:1:1",
        "17track:changecarrier:RR1:190271:1:1",
    ]
    charge(app, account(), answers)
    assert [(e.rule, e.idempotency_key) for e in entries(app)] == [
        ("17track.carrier_change", "17track:changecarrier:RR1:3011:1:1"),
        ("17track.carrier_change", "17track:changecarrier:RR1:190271:1:1"),
    ]
