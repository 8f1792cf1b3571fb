"""Quota and pricing rules as data: `config/quota_rules/*.toml`, read by one small rules engine.

This module prices single events only; the ledger picks the bucket (monthly free, plan, overage)
because that needs stored state. One TOML file per provider:

    provider, unit, currency, free_monthly_units, default_rule_set   (all required)
    free_units_alongside_plan = true|false                           (optional, default true)
    [[free_tier_changes]] effective_from = <date>, monthly_units, one_time_units?   (optional)
    [email] free_monthly, emails_per_unit                            (optional)
    [plans.<name>] period = "year"|"month", included_units, price, overage_unit_price, unit?
    [rule_sets.<name>] description?, extends?                        (extends: inherit, then add)
    [[rule_sets.<name>.rules]] name, event, units, unit?, key_suffix?, when?, refuse_above?, note?

Money is a quoted decimal string (`price = "299"`) or "unknown" (-> None): floats are refused so
no binary rounding reaches the ledger. `when = { lang = true }` matches on the truthiness of an
event attr; `refuse_above = { change_number = 5 }` raises for events the provider would refuse.
A file that does not validate raises `RulesError("<file>:<line>: ...")` at start. Parsing and
validation live in `rules_loader`; this module holds the dataclasses, the engine and the entry points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.settings import PROJECT_ROOT

RULES_DIR = PROJECT_ROOT / "config" / "quota_rules"
UNKNOWN = "unknown"
PERIODS = ("year", "month")
# Event kinds the domain emits, with the attrs that `when` / `refuse_above` may test.
EVENT_KINDS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "17track": {
        "register": ("lang",),
        "register_rejected": (),
        "lang_set": ("lang",),
        "lang_change": ("lang",),
        "retrack": (),
        "carrier_change": ("change_number",),
        "delete": (),
        "update_cycle": ("tracking",),
        "email": (),
    },
    "cargoai": {"subscribe": (), "unsubscribe": (), "pull_call": ()},
}
# Priced per calendar month (free allowance, then per N), which needs state: see email_units().
UNRULED_KINDS = frozenset({"email"})


class RulesError(ValueError):
    """A rule file is invalid; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Plan:
    name: str
    period: str
    included_units: int | None  # None: no source says how many units are included
    price: Decimal | None  # None: unknown, never guessed
    currency: str
    overage_unit_price: Decimal | None
    unit: str = ""

    @property
    def unit_price(self) -> Decimal | None:
        """Exact price per included unit (e.g. ¥299 / 10,000); None if unknown or nothing is included."""
        if self.price is None or not self.included_units:
            return None
        return self.price / self.included_units

    def cost_for(self, units: int) -> Decimal | None:
        """Cost of `units` used in one plan period; None when a price it needs is unknown."""
        if self.price is None or self.included_units is None:
            return None
        extra = max(0, units - self.included_units)
        if not extra:
            return self.price
        return None if self.overage_unit_price is None else self.price + extra * self.overage_unit_price


@dataclass(frozen=True)
class BillableEvent:
    provider: str
    kind: str
    # Unique per business event (e.g. "17track:register:<number>:<carrier>:<generation>").
    key: str
    occurred_at: datetime
    shipment_id: int | None = None
    quantity: int = 1
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Charge:
    rule: str
    units: int
    key: str  # the ledger's idempotency key: event.key + the rule's key_suffix
    event_kind: str
    note: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Rule:
    """`units` per event of kind `event` (times its quantity) when every `when` attr matches."""

    name: str
    event: str
    units: int
    unit: str
    key_suffix: str = ""
    when: Mapping[str, bool] = field(default_factory=dict)
    refuse_above: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    def matches(self, event: BillableEvent) -> bool:
        return event.kind == self.event and all(
            bool(event.attrs.get(attr)) is wanted for attr, wanted in self.when.items()
        )

    def charge(self, event: BillableEvent) -> Charge:
        for attr, limit in self.refuse_above.items():
            value = event.attrs.get(attr)
            if type(value) is not int or value > limit:
                raise ValueError(
                    f"{event.kind} {event.key!r}: {attr}={value!r} is past the provider's limit of {limit};"
                    " it must be refused before it reaches the provider or the ledger"
                )
        units = self.units * event.quantity
        return Charge(self.name, units, event.key + self.key_suffix, event.kind, self.note, self.unit)

    def collides_with(self, other: Rule) -> bool:
        """True when both rules could charge one event under the same ledger key."""
        if (self.event, self.key_suffix) != (other.event, other.key_suffix):
            return False
        return all(other.when.get(attr, wanted) == wanted for attr, wanted in self.when.items())


@dataclass(frozen=True)
class RuleSet:
    name: str
    provider: str
    description: str
    rules: tuple[Rule, ...]
    extends: str | None = None

    def charges(self, event: BillableEvent) -> list[Charge]:
        """The charges for one event, in rule order; deterministic keys make re-charging idempotent.

        Free events give 0-unit charges so reports can count them. Two kinds give none: `email`
        (priced per month by `ProviderRules.email_units`, which needs month-to-date counts) and,
        under 17track-official, `update_cycle` (continuous tracking is free, and one entry per
        push would only bloat the ledger). Raises ValueError for an event this set cannot price.
        """
        if event.provider != self.provider or event.kind not in EVENT_KINDS[self.provider]:
            raise ValueError(f"rule set {self.name!r} cannot price {event.provider}/{event.kind} events")
        if isinstance(event.quantity, bool) or not isinstance(event.quantity, int) or event.quantity < 1:
            raise ValueError(f"event {event.key!r}: quantity must be a positive int, not {event.quantity!r}")
        return [rule.charge(event) for rule in self.rules if rule.matches(event)]


@dataclass(frozen=True)
class FreeTier:
    """The provider's free allowance from `effective_from` on (None: since the beginning).

    `monthly_units` refill on the 1st of every month and do not accumulate; `one_time_units` are
    granted once on `effective_from` and last until spent. A future change of the free tier is a
    new `[[free_tier_changes]]` entry in the rule file, not code.
    """

    effective_from: date | None
    monthly_units: int
    one_time_units: int = 0


@dataclass(frozen=True)
class ProviderRules:
    provider: str
    unit: str
    currency: str
    free_monthly_units: int
    plans: dict[str, Plan]
    rule_sets: dict[str, RuleSet]
    default_rule_set: str
    email_free_monthly: int | None
    emails_per_unit: int | None
    source: str = ""
    # Later free tiers, oldest first; before the first, `free_monthly_units` a month is the tier.
    free_tier_changes: tuple[FreeTier, ...] = ()
    # Whether the free allowance is spent before a paid plan's quota (True) or only without one.
    free_units_alongside_plan: bool = True

    def rule_set(self, name: str | None = None) -> RuleSet:
        return self.rule_sets[name or self.default_rule_set]

    def free_tier(self, day: date) -> FreeTier:
        """The free tier in force on `day` (a date in the account's time zone)."""
        tier = FreeTier(None, self.free_monthly_units)
        for change in self.free_tier_changes:
            if change.effective_from is not None and change.effective_from <= day:
                tier = change
        return tier

    def email_units(self, sent_before: int, sent_now: int) -> int:
        """Units for `sent_now` emails when `sent_before` were already sent this calendar month.

        Past the free allowance every `emails_per_unit` emails cost 1 unit. An odd email is charged
        when sent (rounded up) so the estimate never lags the provider; its partner is then free.
        Computed from month-to-date totals, so batching the same emails never changes the sum.
        """
        if self.email_free_monthly is None or self.emails_per_unit is None:
            return 0
        return self._email_total(sent_before + sent_now) - self._email_total(sent_before)

    def _email_total(self, sent: int) -> int:
        return math.ceil(max(0, sent - (self.email_free_monthly or 0)) / (self.emails_per_unit or 1))


def load_rules(directory: Path | None = None) -> dict[str, ProviderRules]:
    """Load and validate every `*.toml` in `directory` (default config/quota_rules/), keyed by provider."""
    from lifecycle.accounting import rules_loader  # here, not at the top: rules_loader imports this module

    return rules_loader.load_directory(directory or RULES_DIR)


def load_rule_file(path: Path) -> ProviderRules:
    from lifecycle.accounting import rules_loader

    return rules_loader.load_file(path)
