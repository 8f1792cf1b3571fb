"""Plan advice over real history: the last 12 months, months without usage, the free quota assumption."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from lifecycle import runtime
from lifecycle.accounting.advice import advise, monthly_history
from lifecycle.accounting.models import UsageTotal
from lifecycle.extensions import db

TODAY = date(2026, 6, 15)


def store_months(app, usage: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        for period, units in usage.items():
            session.add(UsageTotal(provider="17track", scope="month", period=period, key="quota", units=units,
                                   entries=units))  # fmt: skip


def plan_row(advice: dict, name: str) -> dict:
    return next(row for row in advice["plans"] if row["plan"] == name)


def test_actual_history_prices_the_last_twelve_months_of_a_longer_history(app):
    # A quiet first year, then a busy one: the comparison must price the busy one, not padding.
    quiet = {f"2024-{m:02d}": 10 for m in range(1, 13)}
    busy = {f"2025-{m:02d}": 2000 for m in range(1, 13)}
    store_months(app, {**quiet, **busy})
    with app.app_context(), db.new_session() as session:
        advice = advise(session, runtime.account("17track"), TODAY)
    basic = plan_row(advice, "basic")["actual_history"]
    assert basic["overage_units"] == 12 * 2000 - 10_000
    assert basic["runs_out_in_month"] == 6  # 5 × 2,000 empties the 10,000
    assert basic["cost"] is None  # an overage price is unknown: never invented
    assert plan_row(advice, "advanced")["actual_history"] == {
        "overage_units": 0, "runs_out_in_month": None, "cost": "1299",
    }  # fmt: skip


def test_a_month_without_usage_counts_as_zero_in_the_history(app):
    store_months(app, {"2025-11": 300, "2026-01": 300})
    with app.app_context():
        account = runtime.account("17track")
        with db.new_session() as session:
            history = monthly_history(session, account)
            advice = advise(session, account, TODAY)
    assert history == [("2025-11", 300), ("2025-12", 0), ("2026-01", 300)]
    assert (advice["months_observed"], advice["average_monthly_units"]) == (3, "200.0")


def test_a_rule_file_saying_the_free_quota_does_not_apply_beside_a_plan_is_reported(app):
    store_months(app, {f"2025-{m:02d}": 900 for m in range(1, 13)})
    with app.app_context(), db.new_session() as session:
        account = runtime.account("17track")
        strict = replace(account, rules=replace(account.rules, free_units_alongside_plan=False))
        advice = advise(session, strict, TODAY)
    assert advice["cheapest"] == "advanced"
    assert advice["alternative"]["rule_file_assumes_it"] is False
    assert advice["alternative"]["cheapest"] == "basic"


def test_plan_command_prints_the_need_and_the_alternative_on_its_own_line(app, monkeypatch):
    from click.testing import CliRunner

    from config.settings import get_settings
    from lifecycle.cli import cli

    store_months(app, {f"2025-{m:02d}": 900 for m in range(1, 13)})
    settings = app.config["SETTINGS"]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("BROKER_URL", settings.broker_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["plan"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    lines = result.output.splitlines()
    assert lines[0] == "observed 12 month(s), 900.0 units/month: annual need 10,800 units"
    assert (
        "cheapest: advanced — advanced is the cheapest plan whose quota covers the annual need of 10,800"
        in (result.output)
    )
    assert (
        "if the 100 free units a month also apply alongside a paid plan (the rule file assumes so): "
        "annual need 9,600 units, basic would do, saving 1000 CNY a year"
    ) in lines
