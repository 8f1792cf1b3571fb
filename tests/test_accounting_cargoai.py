"""CargoAi in the accountant's report: subscriptions and pull calls are separate buckets and both cost;
the pull budget counts the account's months, not UTC's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from config.settings import PROJECT_ROOT
from lifecycle import create_app, runtime
from lifecycle.accounting import service
from lifecycle.accounting.reports import quota_report
from lifecycle.accounting.rules import BillableEvent
from lifecycle.extensions import db
from lifecycle.providers.cargoai.pull import calls_allowed_now

NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def charge_usage(app, subscriptions: int, calls: int) -> dict:  # type: ignore[no-untyped-def]
    """Charge subscriptions and pull calls in November; return CargoAi's part of the report."""
    with app.app_context():
        account = runtime.account("cargoai")
        events = [
            BillableEvent("cargoai", "subscribe", f"cargoai:subscribe:AWB{n}:1", NOV)
            for n in range(subscriptions)
        ]
        events += [BillableEvent("cargoai", "pull_call", f"cargoai:pull:AWB{n}", NOV) for n in range(calls)]
        with db.new_session() as session, session.begin():
            service.charge(session, account, events)
        with db.new_session() as session:
            return quota_report(session, {"cargoai": account}, NOV + timedelta(hours=1))["providers"][
                "cargoai"
            ]


def buckets(report: dict) -> list[tuple[str, str, int, int | None]]:
    return [(b["unit"], b["bucket"], b["used"], b["remaining"]) for b in report["buckets"]]


@pytest.fixture
def priced_pull_rules(tmp_path: Path) -> Path:
    """The shipped rules, with a pull-pro price, as a user would add one once CargoAi quotes it."""
    for name in ("17track.toml", "cargoai.toml"):
        (tmp_path / name).write_text((PROJECT_ROOT / "config/quota_rules" / name).read_text())
    text = (tmp_path / "cargoai.toml").read_text()
    unpriced = 'included_units = 10\nprice = "unknown"\noverage_unit_price = "unknown"'
    assert text.count(unpriced) == 1  # pull-pro's
    priced = 'included_units = 10\nprice = "20"\noverage_unit_price = "0.5"'
    (tmp_path / "cargoai.toml").write_text(text.replace(unpriced, priced))
    return tmp_path


def test_pull_calls_are_their_own_buckets_and_their_unknown_price_makes_the_total_unknown(settings_factory):
    app = create_app(settings_factory(cargoai_plan="push-pro,pull-pro"))
    report = charge_usage(app, subscriptions=3, calls=12)
    db.engine.dispose()  # type: ignore[union-attr]
    assert buckets(report) == [
        ("subscription", "included", 2, 0),
        ("subscription", "overage", 1, None),
        ("call", "included", 10, 0),
        ("call", "overage", 2, None),
    ]
    assert report["units"]["call"]["used"] == 12 and report["units"]["call"]["remaining"] == 0
    assert (report["used"], report["remaining"]) == (3, 0)  # the provider's own unit: subscriptions
    total = report["cost"]["month_total"]
    assert total["fee"] == "unknown"  # pull-pro's fee is in no source
    assert total["by_unit"] == {"subscription": "1", "call": "unknown"}
    assert (total["total"], total["known_part"]) == ("unknown", "50")  # 49 fee + 1 extra subscription


def test_the_month_total_is_fee_plus_subscriptions_plus_calls_when_every_price_is_known(
    settings_factory, priced_pull_rules
):
    app = create_app(settings_factory(cargoai_plan="push-pro,pull-pro", quota_rules_dir=priced_pull_rules))
    report = charge_usage(app, subscriptions=3, calls=12)
    db.engine.dispose()  # type: ignore[union-attr]
    total = report["cost"]["month_total"]
    assert (total["fee"], total["fee_plans"]) == ("69", ["push-pro", "pull-pro"])
    assert total["by_unit"] == {"subscription": "1", "call": "1"}  # 2 calls over the 10 at 0.5
    assert total["total"] == "71"


def test_calls_without_a_pull_plan_are_reported_unpriced_not_dropped(settings_factory):
    app = create_app(settings_factory(cargoai_plan="push-pro"))
    report = charge_usage(app, subscriptions=1, calls=4)
    db.engine.dispose()  # type: ignore[union-attr]
    assert ("call", "overage", 4, None) in buckets(report)
    assert report["cost"]["month_total"]["total"] == "unknown"
    assert report["units"]["call"]["unpriced_units"] == 4


def test_pull_budget_counts_the_account_month_not_the_utc_month(app):
    shanghai = ZoneInfo("Asia/Shanghai")
    with app.app_context():
        account = runtime.account("cargoai")
        # 01:00 on 1 December in Shanghai, still 30 November in UTC: December's first call.
        first_call = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
        with db.new_session() as session, session.begin():
            service.charge(
                session, account, [BillableEvent("cargoai", "pull_call", "cargoai:pull:A:1", first_call)]
            )
        later = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 the same local day
        with db.new_session() as session:
            # 31 calls for December's 31 days: today's share is 1, and today already spent it.
            assert calls_allowed_now(session, 31, later, shanghai) == 0
            assert calls_allowed_now(session, 31, later) == 1  # in UTC the call was last month's


def test_quota_json_reports_the_pull_calls(settings_factory, monkeypatch):
    from click.testing import CliRunner

    from config.settings import get_settings
    from lifecycle.cli import cli

    settings = settings_factory(cargoai_plan="push-pro,pull-pro")
    app = create_app(settings)
    charge_usage(app, subscriptions=2, calls=11)
    db.engine.dispose()  # type: ignore[union-attr]
    env = {"DATABASE_URL": settings.database_url, "BROKER_URL": settings.broker_url,
           "VAR_DIR": str(settings.var_dir), "CARGOAI_PLAN": "push-pro,pull-pro"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with time_machine.travel(NOV + timedelta(days=1), tick=False):
        result = CliRunner().invoke(cli, ["quota", "--json"], catch_exceptions=False)
    get_settings.cache_clear()
    cargoai = json.loads(result.output)["providers"]["cargoai"]
    assert ("call", "overage", 1, None) in buckets(cargoai)
    # Included calls are in pull-pro's fee and the extra one is past it: both prices are unknown.
    assert cargoai["units"]["call"] == {
        "plan": "pull-pro", "used": 11, "remaining": 0, "amount": "0", "unpriced_units": 11,
    }  # fmt: skip
    assert cargoai["cost"]["month_total"]["by_unit"] == {"subscription": "0", "call": "unknown"}
