"""Parsing and validation of `config/quota_rules/*.toml` into the dataclasses of `rules`.

The file format is described in `rules`; call `rules.load_rules` / `rules.load_rule_file`, not this
module. Every problem raises `RulesError("<file>:<line>: ...")`; `rules_toml` finds the line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lifecycle.accounting.rules import (
    EVENT_KINDS,
    PERIODS,
    UNKNOWN,
    UNRULED_KINDS,
    FreeTier,
    Plan,
    ProviderRules,
    Rule,
    RulesError,
    RuleSet,
)
from lifecycle.accounting.rules_toml import (
    Locator,
    Where,
    check_keys,
    display_path,
    read_count,
    read_money,
    read_text,
    read_value,
)

# Every key a table may hold: anything else is a typo (`unit = 1` meant `units = 1`), so it fails.
_ROOT_KEYS = frozenset(
    "provider unit currency free_monthly_units default_rule_set email plans rule_sets "
    "free_units_alongside_plan free_tier_changes".split()
)
_FREE_TIER_KEYS = frozenset("effective_from monthly_units one_time_units".split())
_PLAN_KEYS = frozenset("period included_units price overage_unit_price unit".split())
_RULE_KEYS = frozenset("name event units unit key_suffix when refuse_above note".split())


def load_directory(directory: Path) -> dict[str, ProviderRules]:
    """Load and validate every `*.toml` in `directory`, keyed by provider."""
    providers: dict[str, ProviderRules] = {}
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise RulesError(f"{display_path(directory)}: no *.toml rule files")
    for path in paths:
        rules = load_file(path)
        if rules.provider in providers:
            raise RulesError(
                f"{rules.source}:1: provider {rules.provider!r} is already defined in "
                f"{providers[rules.provider].source}"
            )
        providers[rules.provider] = rules
    return providers


def load_file(path: Path) -> ProviderRules:
    text = path.read_text(encoding="utf-8")
    locator = Locator(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else max(1, len(text.splitlines()))
        raise RulesError(f"{locator.name}:{line}: {exc}") from exc
    return _parse_provider(data, locator)


def _parse_provider(data: dict[str, Any], locator: Locator) -> ProviderRules:
    root = Where(locator, "", "rule file")
    check_keys(data, _ROOT_KEYS, root)
    provider, unit, currency = (read_text(data, key, root) for key in ("provider", "unit", "currency"))
    if provider not in EVENT_KINDS:
        raise root.error(f"has unknown provider {provider!r} (known: {', '.join(EVENT_KINDS)})", "provider")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise root.error(f"has currency {currency!r}: expected an ISO 4217 code such as CNY", "currency")
    raw_plans = read_value(data, "plans", root, (dict,), "a table")
    plans = {
        name: _parse_plan(raw, Where(locator, f"plans.{name}", f"plan '{name}'"), unit, currency)
        for name, raw in raw_plans.items()
    }
    context = _Context(locator, provider, unit, frozenset({unit} | {plan.unit for plan in plans.values()}))
    rule_sets = _parse_rule_sets(read_value(data, "rule_sets", root, (dict,), "a table"), context)
    default = read_text(data, "default_rule_set", root)
    if default not in rule_sets:
        raise root.error(
            f"names default_rule_set {default!r}, which the file does not define", "default_rule_set"
        )
    email_free, emails_per_unit = _parse_email(data, Where(locator, "email", "table [email]"))
    return ProviderRules(
        provider=provider,
        unit=unit,
        currency=currency,
        free_monthly_units=read_count(data, "free_monthly_units", root),
        plans=plans,
        rule_sets=rule_sets,
        default_rule_set=default,
        email_free_monthly=email_free,
        emails_per_unit=emails_per_unit,
        source=locator.name,
        free_tier_changes=_parse_free_tiers(data, locator),
        free_units_alongside_plan=read_value(
            data, "free_units_alongside_plan", root, (bool,), "true or false", default=True
        ),
    )


def _parse_free_tiers(data: dict[str, Any], locator: Locator) -> tuple[FreeTier, ...]:
    """`[[free_tier_changes]]`: each a date the free tier changes on, oldest first."""
    root = Where(locator, "", "rule file")
    raw_tiers = read_value(data, "free_tier_changes", root, (list,), "an array of tables", default=[])
    tiers: list[FreeTier] = []
    for index, raw in enumerate(raw_tiers):
        where = Where(locator, "free_tier_changes", f"free tier change #{index + 1}", index)
        check_keys(raw, _FREE_TIER_KEYS, where)
        start = read_value(raw, "effective_from", where, (date,), "a date such as 2026-01-07")
        if isinstance(start, datetime):
            raise where.error(f"has effective_from {start!r}: expected a date, no time", "effective_from")
        if tiers and start <= tiers[-1].effective_from:  # type: ignore[operator]
            raise where.error("must come after the change before it (oldest first)", "effective_from")
        one_time = read_count(raw, "one_time_units", where) if "one_time_units" in raw else 0
        tiers.append(FreeTier(start, read_count(raw, "monthly_units", where), one_time))
    return tuple(tiers)


def _parse_email(data: dict[str, Any], where: Where) -> tuple[int | None, int | None]:
    if "email" not in data:
        return None, None
    check_keys(data["email"], frozenset({"free_monthly", "emails_per_unit"}), where)
    return read_count(data["email"], "free_monthly", where), read_count(
        data["email"], "emails_per_unit", where, 1
    )


def _parse_plan(raw: Any, where: Where, unit: str, currency: str) -> Plan:
    check_keys(raw, _PLAN_KEYS, where)
    period = read_text(raw, "period", where)
    if period not in PERIODS:
        raise where.error(f"has period {period!r}: expected one of {', '.join(PERIODS)}", "period")
    included = read_value(raw, "included_units", where, (int, str), f'a whole number or "{UNKNOWN}"')
    if included != UNKNOWN:
        included = read_count(raw, "included_units", where)
    return Plan(
        name=where.table.removeprefix("plans."),
        period=period,
        included_units=None if included == UNKNOWN else included,
        price=read_money(raw, "price", where),
        currency=currency,
        overage_unit_price=read_money(raw, "overage_unit_price", where),
        unit=read_text(raw, "unit", where, default=unit),
    )


@dataclass(frozen=True)
class _OwnRuleSet:
    """A rule set as written, before its `extends` chain is resolved."""

    where: Where
    description: str
    extends: str | None
    rules: list[tuple[Rule, Where]]


@dataclass(frozen=True)
class _Context:
    """What every rule in one file is checked against."""

    locator: Locator
    provider: str
    unit: str  # the provider's unit: a rule's default
    units: frozenset[str]  # the provider's and its plans' units: the only ones a rule may use


def _parse_rule_sets(raw_sets: dict[str, Any], context: _Context) -> dict[str, RuleSet]:
    own: dict[str, _OwnRuleSet] = {}
    for name, raw in raw_sets.items():
        where = Where(context.locator, f"rule_sets.{name}", f"rule set '{name}'")
        check_keys(raw, frozenset({"description", "extends", "rules"}), where)
        raw_rules = read_value(raw, "rules", where, (list,), "an array of tables", default=[])
        rules = [
            _parse_rule(
                raw_rule,
                Where(context.locator, f"{where.table}.rules", f"rule #{index + 1}", index),
                context,
            )
            for index, raw_rule in enumerate(raw_rules)
        ]
        extends = read_text(raw, "extends", where, default=None)
        if not rules and extends is None:
            raise where.error("has no rules")
        own[name] = _OwnRuleSet(where, read_text(raw, "description", where, default=""), extends, rules)
    return {name: _resolve(name, own, context.provider) for name in own}


def _parse_rule(raw: Any, where: Where, context: _Context) -> tuple[Rule, Where]:
    check_keys(raw, _RULE_KEYS, where)
    name = read_text(raw, "name", where)
    where = replace(where, label=f"rule {name!r}")
    event = read_text(raw, "event", where)
    kinds = EVENT_KINDS[context.provider]
    if event not in kinds:
        raise where.error(f"has unknown event kind {event!r} (known: {', '.join(kinds)})", "event")
    if event in UNRULED_KINDS:
        raise where.error(f"prices {event!r}, which the [email] table prices per month", "event")
    unit = read_text(raw, "unit", where, default=context.unit)
    if unit not in context.units:
        raise where.error(f"has unit {unit!r}, which neither the provider nor a plan uses", "unit")
    rule = Rule(
        name=name,
        event=event,
        units=read_count(raw, "units", where),
        unit=unit,
        key_suffix=read_text(raw, "key_suffix", where, default=""),
        when=_conditions(raw, "when", where, kinds[event], bool),
        refuse_above=_conditions(raw, "refuse_above", where, kinds[event], int),
        note=read_text(raw, "note", where, default=""),
    )
    return rule, where


def _conditions(
    raw: Mapping[str, Any], key: str, where: Where, attrs: tuple[str, ...], kind: type
) -> Mapping[str, Any]:
    table = read_value(raw, key, where, (dict,), "an inline table", default={})
    for attr, value in table.items():
        if attr not in attrs:
            carried = ", ".join(attrs) or "none"
            raise where.error(
                f"tests {key}.{attr}, an attr its events do not carry (they carry: {carried})", key
            )
        if type(value) is not kind or (kind is int and value < 0):
            raise where.error(
                f"has {key}.{attr} = {value!r}: expected a {'bool' if kind is bool else 'count'}", key
            )
    return MappingProxyType(dict(table))


def _resolve(name: str, own: dict[str, _OwnRuleSet], provider: str) -> RuleSet:
    """Flatten the `extends` chain (parent rules first) and check names and ledger keys are unique."""
    seen: list[Rule] = []
    for rule, where in _flatten(name, own, ()):
        for earlier in seen:
            if earlier.name == rule.name:
                raise where.error(f"duplicates the name of an earlier rule in rule set {name!r}", "name")
            if rule.collides_with(earlier):
                raise where.error(f"would write the same ledger keys as rule {earlier.name!r}", "event")
        seen.append(rule)
    current = own[name]
    return RuleSet(name, provider, current.description, tuple(seen), current.extends)


def _flatten(name: str, own: dict[str, _OwnRuleSet], chain: tuple[str, ...]) -> list[tuple[Rule, Where]]:
    current = own[name]
    if current.extends is None:
        return list(current.rules)
    if current.extends in (*chain, name):
        raise current.where.error(f"extends {current.extends!r}, which leads back to it: a cycle", "extends")
    if current.extends not in own:
        raise current.where.error(f"extends unknown rule set {current.extends!r}", "extends")
    return _flatten(current.extends, own, (*chain, name)) + current.rules
