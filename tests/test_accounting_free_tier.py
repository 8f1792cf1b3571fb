"""The free tier as data: a dated change in the rule file moves the ledger's buckets on that date, and
whether the free quota is spent beside a paid plan is a rule-file setting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import PROJECT_ROOT, Settings
from lifecycle.accounting import ledger
from lifecycle.accounting.models import LedgerEntry
from lifecycle.accounting.reports import provider_report
from lifecycle.accounting.rules import BillableEvent, load_rules
from lifecycle.accounting.service import build_accounts
from lifecycle.extensions import db

SHIPPED = (PROJECT_ROOT / "config/quota_rules/17track.toml").read_text()
REPORTED_2026_CHANGE = """
[[free_tier_changes]]
effective_from = 2026-01-07
monthly_units = 0
one_time_units = 200
"""


def rules_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "17track.toml").write_text(text)
    return tmp_path


def account(directory: Path, plan: str = "free"):  # type: ignore[no-untyped-def]
    settings = Settings(seventeentrack_plan=plan, quota_rules_dir=directory, _env_file=None)
    return build_accounts(settings, load_rules(directory))["17track"]


def registrations(first: int, count: int, when: datetime) -> list[BillableEvent]:
    return [
        BillableEvent("17track", "register", f"17track:register:RR{n:09d}CN:3011:1", when)
        for n in range(first, first + count)
    ]


def charge(app, acct, events) -> None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        ledger.charge(session, acct, events)


def units_by_bucket(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        found: dict[str, int] = {}
        for entry in session.scalars(select(LedgerEntry)):
            found[entry.bucket] = found.get(entry.bucket, 0) + entry.units
        return found


@pytest.fixture
def changed_tier(tmp_path: Path) -> Path:
    """The shipped rules with the reported change in force: no monthly refill, a one-time 200."""
    text = SHIPPED.replace('default_rule_set = "17track-official"\n',
                           'default_rule_set = "17track-official"\n' + REPORTED_2026_CHANGE)  # fmt: skip
    return rules_dir(tmp_path, text)


def test_a_dated_free_tier_change_is_a_data_edit(app, changed_tier):
    acct = account(changed_tier)
    charge(app, acct, registrations(0, 150, datetime(2026, 1, 5, 12, tzinfo=UTC)))  # the old tier
    assert units_by_bucket(app) == {"monthly_free": 100, "overage": 50}
    charge(app, acct, registrations(150, 250, datetime(2026, 1, 10, 12, tzinfo=UTC)))  # the new one
    assert units_by_bucket(app) == {"monthly_free": 100, "one_time_free": 200, "overage": 100}
    # A month later nothing refills: the grant was one-time and is spent.
    february = datetime(2026, 2, 3, 12, tzinfo=UTC)
    charge(app, acct, registrations(400, 10, february))
    assert units_by_bucket(app)["overage"] == 110
    with app.app_context(), db.new_session() as session:
        report = provider_report(session, acct, february)
    assert [(b["bucket"], b["period"], b["used"], b["remaining"]) for b in report["buckets"]] == [
        ("one_time_free", "2026-01-07", 200, 0),
        ("plan", "2026-01-01", 0, 0),
        ("overage", "2026-01-01", 10 + 100, None),
    ]


def test_the_free_quota_beside_a_paid_plan_is_a_rule_file_setting(app, tmp_path):
    strict = rules_dir(
        tmp_path, SHIPPED.replace("free_units_alongside_plan = true", "free_units_alongside_plan = false")
    )
    when = datetime(2026, 3, 2, 12, tzinfo=UTC)
    charge(app, account(strict, plan="basic"), registrations(0, 3, when))
    assert units_by_bucket(app) == {"plan": 3}  # straight into Basic's quota
    charge(app, account(strict, plan="free"), registrations(3, 3, when))
    assert units_by_bucket(app) == {"plan": 3, "monthly_free": 3}  # without a paid plan, the free 100 apply
    charge(app, account(PROJECT_ROOT / "config/quota_rules", plan="basic"), registrations(6, 3, when))
    assert units_by_bucket(app)["monthly_free"] == 6  # the shipped file: free first, beside the plan too
