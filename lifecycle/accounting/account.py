"""What is in force for one provider (rules, rule set, plans, calendar) and the buckets it charges into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from lifecycle.accounting import periods
from lifecycle.accounting.rules import Plan, ProviderRules, RuleSet

UNLIMITED = 10**18


@dataclass(frozen=True)
class Bucket:
    name: str
    scope_period: str  # the period whose total limits this bucket
    limit: int
    unit_price: Decimal | None


@dataclass(frozen=True)
class Account:
    """What is in force for one provider: its rules, the rule set, its plans and its calendar.

    A provider may have one plan per unit (CargoAi: a push plan counted in subscriptions and a
    pull plan counted in calls); 17TRACK has one, counted in quota.
    """

    rules: ProviderRules
    rule_set: RuleSet
    plans: dict[str, Plan]
    plan_start: date | None
    tz: ZoneInfo

    @property
    def provider(self) -> str:
        return self.rules.provider

    def plan_for(self, unit: str) -> Plan | None:
        return self.plans.get(unit or self.rules.unit)

    def month(self, when: datetime) -> str:
        return periods.month_of(when, self.tz)

    def plan_period(self, when: datetime, unit: str = "") -> str:
        plan = self.plan_for(unit)
        length = plan.period if plan else "month"
        return periods.plan_period_start(when, self.tz, self.plan_start, length).isoformat()

    def buckets(self, when: datetime, unit: str = "") -> list[Bucket]:
        """The buckets a charge of this unit draws from, in order."""
        plan, period = self.plan_for(unit), self.plan_period(when, unit)
        free = self._free_buckets(when, unit)
        if plan is None:
            return [*free, Bucket("overage", period, UNLIMITED, None)]
        # A yearly plan's quota is prepaid (cost spread per unit); a monthly plan's units are in its fee.
        name, price = ("plan", plan.unit_price) if plan.period == "year" else ("included", Decimal(0))
        included = Bucket(name, period, plan.included_units or 0, price if plan.price is not None else None)
        return [*free, included, Bucket("overage", period, UNLIMITED, plan.overage_unit_price)]

    def _free_buckets(self, when: datetime, unit: str) -> list[Bucket]:
        """The free tier in force on that day: this month's refill, then a one-time grant's rest."""
        plan = self.plan_for(unit)
        paid = plan is not None and plan.price != 0
        if unit not in ("", self.rules.unit) or (paid and not self.rules.free_units_alongside_plan):
            return []
        tier = self.rules.free_tier(periods.local_date(when, self.tz))
        free = []
        if tier.monthly_units:
            free.append(Bucket("monthly_free", self.month(when), tier.monthly_units, Decimal(0)))
        if tier.one_time_units and tier.effective_from is not None:
            since = tier.effective_from.isoformat()
            free.append(Bucket("one_time_free", since, tier.one_time_units, Decimal(0)))
        return free
