"""The accountant as the rest of the service sees it: accounts in force, charging, the guard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.accounting import ledger
from lifecycle.accounting.ledger import Account, total_key
from lifecycle.accounting.models import BudgetAlert, UsageTotal
from lifecycle.accounting.rules import BillableEvent, ProviderRules, RulesError, load_rules
from lifecycle.db import utcnow
from lifecycle.operations.models import IN_FLIGHT, Operation, ServiceState
from lifecycle.sqlutil import insert_ignoring_conflicts

log = logging.getLogger(__name__)
OVERAGE_KEY = "overage-allowed:{provider}"


def build_accounts(settings: Settings, rules: dict[str, ProviderRules]) -> dict[str, Account]:
    """The accounts the settings describe; a plan or rule set the rule files lack is a start-up error."""
    tz = ZoneInfo(settings.account_timezone)
    wanted = {
        "17track": (
            settings.seventeentrack_plan,
            settings.seventeentrack_rules,
            settings.seventeentrack_plan_start,
        ),
        "cargoai": (settings.cargoai_plan, settings.cargoai_rules, settings.cargoai_plan_start),
    }
    accounts = {}
    for provider, (plan_names, rule_set, start) in wanted.items():
        provider_rules = rules.get(provider)
        if provider_rules is None:
            continue
        if rule_set and rule_set not in provider_rules.rule_sets:
            known = ", ".join(provider_rules.rule_sets)
            raise RulesError(f"{provider}: rule set {rule_set!r} is not in {provider_rules.source} ({known})")
        plans = {}
        for name in filter(None, (n.strip() for n in plan_names.split(","))):
            if name not in provider_rules.plans:
                known = ", ".join(provider_rules.plans)
                raise RulesError(f"{provider}: plan {name!r} is not in {provider_rules.source} ({known})")
            plan = provider_rules.plans[name]
            plans[plan.unit or provider_rules.unit] = plan
        accounts[provider] = Account(
            provider_rules, provider_rules.rule_set(rule_set or None), plans, start, tz
        )
    return accounts


def charges_update_cycles(account: Account) -> bool:
    probe = BillableEvent(account.provider, "update_cycle", "probe", utcnow(), attrs={"tracking": True})
    try:
        return any(c.units for c in account.rule_set.charges(probe))
    except ValueError:
        return False


def charge(
    session: Session, account: Account, events: Sequence[BillableEvent], thresholds: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Charge events once each, then raise any budget alert the new usage crosses."""
    entries = ledger.charge(session, account, events)
    if entries and thresholds:
        for when in {e["occurred_at"] for e in entries[-1:]}:
            _check_budget(session, account, when, thresholds)
    return entries


def plan_usage(session: Session, account: Account, when: datetime, unit: str = "") -> tuple[int, int]:
    """(used, limit) of the plan's own bucket in the period holding `when`."""
    plan = account.plan_for(unit)
    if plan is None or not plan.included_units:
        return 0, 0
    unit = unit or account.rules.unit
    bucket = account.buckets(when, unit)[-2]
    row = session.get(
        UsageTotal, (account.provider, "bucket", bucket.scope_period, total_key(bucket.name, unit))
    )
    return (row.units if row else 0), plan.included_units


def _check_budget(session: Session, account: Account, when: datetime, thresholds: Sequence[int]) -> None:
    used, limit = plan_usage(session, account, when)
    if not limit:
        return
    period = account.plan_period(when)
    crossed = [t for t in thresholds if used * 100 >= t * limit]
    rows = [
        {
            "provider": account.provider,
            "plan_period": period,
            "threshold": threshold,
            "used_units": used,
            "limit_units": limit,
            "message": f"{account.provider}: {used} of {limit} plan units used ({threshold}% threshold)",
            "crossed_at": utcnow(),
        }
        for threshold in crossed
    ]
    if insert_ignoring_conflicts(session, BudgetAlert, rows, ["provider", "plan_period", "threshold"]):
        log.warning("budget alert: %s", rows[-1]["message"])


def overage_allowed(session: Session, provider: str) -> bool:
    return session.get(ServiceState, OVERAGE_KEY.format(provider=provider)) is not None


def set_overage_allowed(session: Session, provider: str, allowed: bool) -> None:
    key = OVERAGE_KEY.format(provider=provider)
    state = session.get(ServiceState, key)
    if allowed and state is None:
        session.add(ServiceState(key=key, value={"since": utcnow().isoformat()}))
    elif not allowed and state is not None:
        session.delete(state)


def registration_allowance(session: Session, account: Account, allow_overage: bool = False) -> int | None:
    """Quota units registrations may still spend now (None: no limit), in-flight ones reserved.

    Locks the bucket totals, so two workers claiming registrations at once see each other's claims.
    `allow_overage` is ALLOW_OVERAGE; `quota --allow-overage` allows it at run time.
    """
    if allow_overage or overage_allowed(session, account.provider):
        return None
    now = utcnow()
    buckets = [b for b in account.buckets(now) if b.name != "overage"]
    keys = {(b.scope_period, total_key(b.name, account.rules.unit)) for b in buckets}
    used = ledger._lock_bucket_totals(session, account.provider, keys)
    room = sum(
        b.limit - used.get((b.scope_period, total_key(b.name, account.rules.unit)), 0) for b in buckets
    )
    return max(0, room - _reserved_units(session, account.provider))


def _reserved_units(session: Session, provider: str) -> int:
    """Units that in-flight registrations will cost: 1 each, 2 with a translation language."""
    stmt = select(Operation.payload).where(
        Operation.provider == provider, Operation.kind == "register", Operation.status == IN_FLIGHT
    )
    return sum(register_units(payload) for payload in session.scalars(stmt))


def register_units(payload: dict[str, Any]) -> int:
    return 2 if payload.get("lang") else 1


def undelivered_alerts(session: Session) -> list[BudgetAlert]:
    stmt = select(BudgetAlert).where(BudgetAlert.delivered_at.is_(None)).order_by(BudgetAlert.id)
    return list(session.scalars(stmt))


def count_entries(session: Session) -> int:
    from lifecycle.accounting.models import LedgerEntry

    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


PLAN_KEY = "plan:{provider}"


def set_plan(session: Session, account: Account, plan_names: str, start: date | None) -> None:
    """Record the plan in force in the database; it overrides SEVENTEENTRACK_PLAN / CARGOAI_PLAN."""
    with_plan(account, plan_names, start)  # refuses a plan the rule file does not know
    key = PLAN_KEY.format(provider=account.provider)
    value = {"plans": plan_names, "start": start.isoformat() if start else None}
    state = session.get(ServiceState, key)
    if state is None:
        session.add(ServiceState(key=key, value=value))
    else:
        state.value = value


def with_plan(account: Account, plan_names: str, start: date | None) -> Account:
    plans = {}
    for name in filter(None, (n.strip() for n in plan_names.split(","))):
        if name not in account.rules.plans:
            known = ", ".join(account.rules.plans)
            raise RulesError(f"{account.provider}: plan {name!r} is not in {account.rules.source} ({known})")
        plan = account.rules.plans[name]
        plans[plan.unit or account.rules.unit] = plan
    return replace(account, plans=plans, plan_start=start)


def accounts_in_force(session: Session, settings: Settings) -> dict[str, Account]:
    """Every provider's account as the settings and rule files describe it, with the plans recorded
    by `manage.py plan --set` taking precedence, read on the caller's own session.

    Commands use this instead of the app's accounts: they need no web app, and reading on their own
    session never waits for a second connection behind their own transaction (SQLite's one writer).
    """
    configured = build_accounts(settings, load_rules(settings.quota_rules_dir))
    return {provider: in_force(session, account) for provider, account in configured.items()}


def in_force(session: Session, account: Account) -> Account:
    """The account with the plan recorded in the database, if one was set there."""
    state = session.get(ServiceState, PLAN_KEY.format(provider=account.provider))
    if state is None:
        return account
    start = state.value.get("start")
    return with_plan(account, state.value["plans"], date.fromisoformat(start) if start else None)
