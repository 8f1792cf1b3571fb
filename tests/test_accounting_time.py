"""Billing periods through the CLI, with the clock moved by time-machine across a month and a plan year.

The account is in Asia/Shanghai (UTC+8): its months and plan years turn eight hours before UTC's,
so a report that counted in UTC would show the old month here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy.orm import Session

from config.settings import get_settings
from lifecycle.accounting import service
from lifecycle.accounting.rules import BillableEvent
from lifecycle.cli import cli
from lifecycle.db import make_engine, utcnow
from tests.test_accounting_cli import dispose_cli_app

JAN_31_LATE = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)  # 23:30 on 31 January in Shanghai
FEB_1_EARLY = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 February there: new month, new plan year
MAR_1_EARLY = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)  # 00:30 on 1 March there: new month only


@pytest.fixture
def account_cli(settings_factory, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The CLI on this backend's database, for an account in Shanghai; returns the database URL."""
    settings = settings_factory()
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "VAR_DIR": str(settings.var_dir),
        "ACCOUNT_TIMEZONE": "Asia/Shanghai",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("lifecycle.cli.context._app", None)
    get_settings.cache_clear()
    yield settings.database_url
    dispose_cli_app()
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def register_now(database_url: str, first: int, count: int) -> None:
    """Charge `count` registrations at the (travelled) current time, as the worker would."""
    engine = make_engine(database_url)
    with Session(engine) as session, session.begin():
        account = service.accounts_in_force(session, get_settings())["17track"]
        events = [
            BillableEvent("17track", "register", f"17track:register:RR{n:09d}CN:3011:1", utcnow())
            for n in range(first, first + count)
        ]
        service.charge(session, account, events)
    engine.dispose()


def seventeen(*args: str) -> dict:
    return json.loads(run("quota", "--json", *args))["providers"]["17track"]


def buckets(report: dict) -> list[tuple[str, str, int, int | None]]:
    return [(b["bucket"], b["period"], b["used"], b["remaining"]) for b in report["buckets"]]


def test_free_quota_resets_and_the_plan_year_turns_at_local_midnight(account_cli):
    assert "plan in force: basic from 2025-02-01" in run("plan", "--set", "basic", "--start", "2025-02-01")
    with time_machine.travel(JAN_31_LATE, tick=False):
        register_now(account_cli, 0, 150)
        report = seventeen()
    assert report["period"] == "2026-01" and report["used"] == 150
    # Spent in order: the month's free quota first, then the plan year's quota.
    assert buckets(report) == [
        ("monthly_free", "2026-01", 100, 0),
        ("plan", "2025-02-01", 50, 9950),
        ("overage", "2025-02-01", 0, None),
    ]
    assert (report["plan"]["period_start"], report["plan"]["period_end"]) == ("2025-02-01", "2026-01-31")

    with time_machine.travel(FEB_1_EARLY, tick=False):
        report = seventeen()
        register_now(account_cli, 150, 120)
        after = seventeen()
        january = seventeen("--period", "2026-01")
    assert (report["period"], report["used"], report["remaining"]) == ("2026-02", 0, 100 + 10000)
    assert buckets(report) == [
        ("monthly_free", "2026-02", 0, 100),  # a new month: the free quota is whole again
        ("plan", "2026-02-01", 0, 10000),  # a new plan year: last year's 50 are not carried over
        ("overage", "2026-02-01", 0, None),
    ]
    assert report["plan"]["period_start"] == "2026-02-01"
    assert buckets(after) == [
        ("monthly_free", "2026-02", 100, 0),
        ("plan", "2026-02-01", 20, 9980),
        ("overage", "2026-02-01", 0, None),
    ]
    assert buckets(january)[:2] == [("monthly_free", "2026-01", 100, 0), ("plan", "2025-02-01", 50, 9950)]


def test_a_month_boundary_inside_the_plan_year_resets_only_the_free_quota(account_cli):
    run("plan", "--set", "basic", "--start", "2025-02-01")
    with time_machine.travel(FEB_1_EARLY, tick=False):
        register_now(account_cli, 0, 130)
    with time_machine.travel(MAR_1_EARLY, tick=False):
        report = seventeen()
        advice = json.loads(run("plan", "--json"))
    assert buckets(report) == [
        ("monthly_free", "2026-03", 0, 100),
        ("plan", "2026-02-01", 30, 9970),
        ("overage", "2026-02-01", 0, None),
    ]
    assert report["units"]["quota"] == {
        "plan": "basic", "used": 0, "remaining": 100 + 9970, "amount": "0", "unpriced_units": 0,
    }  # fmt: skip
    # The history is kept by the account's months: all 130 fell in its February.
    assert (advice["months_observed"], advice["annual_need"]) == (1, 130 * 12)
