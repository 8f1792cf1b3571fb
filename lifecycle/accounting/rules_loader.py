"""Parsing and validation of `config/quota_rules/*.toml` into the dataclasses of `rules`.

The file format is described in `rules`; call `rules.load_rules` / `rules.load_rule_file`, not this
module. Every problem raises `RulesError("<file>:<line>: ...")`; `_Locator` finds the line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from config.settings import PROJECT_ROOT
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

# Every key a table may hold: anything else is a typo (`unit = 1` meant `units = 1`), so it fails.
_ROOT_KEYS = frozenset(
    "provider unit currency free_monthly_units default_rule_set email plans rule_sets "
    "free_units_alongside_plan free_tier_changes".split()
)
_FREE_TIER_KEYS = frozenset("effective_from monthly_units one_time_units".split())
_PLAN_KEYS = frozenset("period included_units price overage_unit_price unit".split())
_RULE_KEYS = frozenset("name event units unit key_suffix when refuse_above note".split())
_REQUIRED: Any = object()


def load_directory(directory: Path) -> dict[str, ProviderRules]:
    """Load and validate every `*.toml` in `directory`, keyed by provider."""
    providers: dict[str, ProviderRules] = {}
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise RulesError(f"{_display(directory)}: no *.toml rule files")
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
    locator = _Locator(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else max(1, len(text.splitlines()))
        raise RulesError(f"{locator.name}:{line}: {exc}") from exc
    return _parse_provider(data, locator)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _normalise(dotted: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in dotted.split("."))


class _Locator:
    """Line numbers of tables and keys, found by scanning the raw text (tomllib reports none)."""

    _HEADER = re.compile(r"^\[\[?(?P<name>[^\[\]]+)\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^(?P<key>[\w\-.\"' ]+?)\s*=")

    def __init__(self, path: Path, text: str) -> None:
        self.name = _display(path)
        self.tables: dict[str, list[int]] = {"": [1]}
        self.keys: dict[tuple[str, int, str], int] = {}
        table, occurrence, in_multiline_string = "", 0, False
        for number, line in enumerate(text.splitlines(), start=1):
            skip = in_multiline_string
            if (line.count('"""') + line.count("'''")) % 2:
                in_multiline_string = not in_multiline_string
            if skip:
                continue
            if header := self._HEADER.match(line.strip()):
                table = _normalise(header["name"])
                self.tables.setdefault(table, []).append(number)
                occurrence = len(self.tables[table]) - 1
            elif key := self._KEY.match(line.strip()):
                self.keys.setdefault((table, occurrence, _normalise(key["key"])), number)

    def line(self, table: str, occurrence: int = 0, key: str | None = None) -> int:
        if key is not None and (table, occurrence, key) in self.keys:
            return self.keys[(table, occurrence, key)]
        if table in self.tables:
            lines = self.tables[table]
            return lines[min(occurrence, len(lines) - 1)]
        # Not a [header]: an inline table (`key = {...}`) or one only implied by its children.
        parent, _, last = table.rpartition(".")
        return self.keys.get((parent, 0, last)) or self.line(parent)


@dataclass(frozen=True)
class _Where:
    """A table's place in its file, so an error can say `file:line: <label> <problem>`."""

    locator: _Locator
    table: str
    label: str
    occurrence: int = 0

    def error(self, problem: str, key: str | None = None) -> RulesError:
        line = self.locator.line(self.table, self.occurrence, key)
        return RulesError(f"{self.locator.name}:{line}: {self.label} {problem}")


def _value(
    raw: Mapping[str, Any],
    key: str,
    where: _Where,
    types: tuple[type, ...],
    what: str,
    default: Any = _REQUIRED,
) -> Any:
    if key not in raw:
        if default is _REQUIRED:
            raise where.error(f"is missing required key '{key}'")
        return default
    value = raw[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise where.error(f"has {key} = {value!r}: expected {what}", key)
    return value


def _count(raw: Mapping[str, Any], key: str, where: _Where, minimum: int = 0) -> int:
    value = _value(raw, key, where, (int,), "a whole number")
    if value < minimum:
        raise where.error(f"has negative {key}" if minimum == 0 else f"has {key} below {minimum}", key)
    return value


def _text(raw: Mapping[str, Any], key: str, where: _Where, default: Any = _REQUIRED) -> str:
    value = _value(raw, key, where, (str,), "a string", default)
    if default is _REQUIRED and not value.strip():
        raise where.error(f"has an empty {key}", key)
    return value


def _money(raw: Mapping[str, Any], key: str, where: _Where) -> Decimal | None:
    if isinstance(raw.get(key), float):
        raise where.error(f"has a float {key} ({raw[key]!r}): write money as a quoted string", key)
    value = _value(raw, key, where, (str,), f'a quoted decimal string or "{UNKNOWN}"')
    if value == UNKNOWN:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise where.error(f"has non-numeric {key} {value!r}", key) from None
    if not amount.is_finite() or amount < 0:
        raise where.error(f"has {key} {value!r}: money must be finite and not negative", key)
    return amount


def _check_keys(raw: Any, allowed: frozenset[str], where: _Where) -> None:
    if not isinstance(raw, dict):
        raise where.error(f"must be a table, not {raw!r}")
    for key in raw:
        if key not in allowed:
            raise where.error(f"has unknown key '{key}' (allowed: {', '.join(sorted(allowed))})", key)


def _parse_provider(data: dict[str, Any], locator: _Locator) -> ProviderRules:
    root = _Where(locator, "", "rule file")
    _check_keys(data, _ROOT_KEYS, root)
    provider, unit, currency = (_text(data, key, root) for key in ("provider", "unit", "currency"))
    if provider not in EVENT_KINDS:
        raise root.error(f"has unknown provider {provider!r} (known: {', '.join(EVENT_KINDS)})", "provider")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise root.error(f"has currency {currency!r}: expected an ISO 4217 code such as CNY", "currency")
    raw_plans = _value(data, "plans", root, (dict,), "a table")
    plans = {
        name: _parse_plan(raw, _Where(locator, f"plans.{name}", f"plan '{name}'"), unit, currency)
        for name, raw in raw_plans.items()
    }
    context = _Context(locator, provider, unit, frozenset({unit} | {plan.unit for plan in plans.values()}))
    rule_sets = _parse_rule_sets(_value(data, "rule_sets", root, (dict,), "a table"), context)
    default = _text(data, "default_rule_set", root)
    if default not in rule_sets:
        raise root.error(
            f"names default_rule_set {default!r}, which the file does not define", "default_rule_set"
        )
    email_free, emails_per_unit = _parse_email(data, _Where(locator, "email", "table [email]"))
    return ProviderRules(
        provider=provider,
        unit=unit,
        currency=currency,
        free_monthly_units=_count(data, "free_monthly_units", root),
        plans=plans,
        rule_sets=rule_sets,
        default_rule_set=default,
        email_free_monthly=email_free,
        emails_per_unit=emails_per_unit,
        source=locator.name,
        free_tier_changes=_parse_free_tiers(data, locator),
        free_units_alongside_plan=_value(
            data, "free_units_alongside_plan", root, (bool,), "true or false", default=True
        ),
    )


def _parse_free_tiers(data: dict[str, Any], locator: _Locator) -> tuple[FreeTier, ...]:
    """`[[free_tier_changes]]`: each a date the free tier changes on, oldest first."""
    root = _Where(locator, "", "rule file")
    raw_tiers = _value(data, "free_tier_changes", root, (list,), "an array of tables", default=[])
    tiers: list[FreeTier] = []
    for index, raw in enumerate(raw_tiers):
        where = _Where(locator, "free_tier_changes", f"free tier change #{index + 1}", index)
        _check_keys(raw, _FREE_TIER_KEYS, where)
        start = _value(raw, "effective_from", where, (date,), "a date such as 2026-01-07")
        if isinstance(start, datetime):
            raise where.error(f"has effective_from {start!r}: expected a date, no time", "effective_from")
        if tiers and start <= tiers[-1].effective_from:  # type: ignore[operator]
            raise where.error("must come after the change before it (oldest first)", "effective_from")
        one_time = _count(raw, "one_time_units", where) if "one_time_units" in raw else 0
        tiers.append(FreeTier(start, _count(raw, "monthly_units", where), one_time))
    return tuple(tiers)


def _parse_email(data: dict[str, Any], where: _Where) -> tuple[int | None, int | None]:
    if "email" not in data:
        return None, None
    _check_keys(data["email"], frozenset({"free_monthly", "emails_per_unit"}), where)
    return _count(data["email"], "free_monthly", where), _count(data["email"], "emails_per_unit", where, 1)


def _parse_plan(raw: Any, where: _Where, unit: str, currency: str) -> Plan:
    _check_keys(raw, _PLAN_KEYS, where)
    period = _text(raw, "period", where)
    if period not in PERIODS:
        raise where.error(f"has period {period!r}: expected one of {', '.join(PERIODS)}", "period")
    included = _value(raw, "included_units", where, (int, str), f'a whole number or "{UNKNOWN}"')
    if included != UNKNOWN:
        included = _count(raw, "included_units", where)
    return Plan(
        name=where.table.removeprefix("plans."),
        period=period,
        included_units=None if included == UNKNOWN else included,
        price=_money(raw, "price", where),
        currency=currency,
        overage_unit_price=_money(raw, "overage_unit_price", where),
        unit=_text(raw, "unit", where, default=unit),
    )


@dataclass(frozen=True)
class _OwnRuleSet:
    """A rule set as written, before its `extends` chain is resolved."""

    where: _Where
    description: str
    extends: str | None
    rules: list[tuple[Rule, _Where]]


@dataclass(frozen=True)
class _Context:
    """What every rule in one file is checked against."""

    locator: _Locator
    provider: str
    unit: str  # the provider's unit: a rule's default
    units: frozenset[str]  # the provider's and its plans' units: the only ones a rule may use


def _parse_rule_sets(raw_sets: dict[str, Any], context: _Context) -> dict[str, RuleSet]:
    own: dict[str, _OwnRuleSet] = {}
    for name, raw in raw_sets.items():
        where = _Where(context.locator, f"rule_sets.{name}", f"rule set '{name}'")
        _check_keys(raw, frozenset({"description", "extends", "rules"}), where)
        raw_rules = _value(raw, "rules", where, (list,), "an array of tables", default=[])
        rules = [
            _parse_rule(
                raw_rule,
                _Where(context.locator, f"{where.table}.rules", f"rule #{index + 1}", index),
                context,
            )
            for index, raw_rule in enumerate(raw_rules)
        ]
        extends = _text(raw, "extends", where, default=None)
        if not rules and extends is None:
            raise where.error("has no rules")
        own[name] = _OwnRuleSet(where, _text(raw, "description", where, default=""), extends, rules)
    return {name: _resolve(name, own, context.provider) for name in own}


def _parse_rule(raw: Any, where: _Where, context: _Context) -> tuple[Rule, _Where]:
    _check_keys(raw, _RULE_KEYS, where)
    name = _text(raw, "name", where)
    where = replace(where, label=f"rule {name!r}")
    event = _text(raw, "event", where)
    kinds = EVENT_KINDS[context.provider]
    if event not in kinds:
        raise where.error(f"has unknown event kind {event!r} (known: {', '.join(kinds)})", "event")
    if event in UNRULED_KINDS:
        raise where.error(f"prices {event!r}, which the [email] table prices per month", "event")
    unit = _text(raw, "unit", where, default=context.unit)
    if unit not in context.units:
        raise where.error(f"has unit {unit!r}, which neither the provider nor a plan uses", "unit")
    rule = Rule(
        name=name,
        event=event,
        units=_count(raw, "units", where),
        unit=unit,
        key_suffix=_text(raw, "key_suffix", where, default=""),
        when=_conditions(raw, "when", where, kinds[event], bool),
        refuse_above=_conditions(raw, "refuse_above", where, kinds[event], int),
        note=_text(raw, "note", where, default=""),
    )
    return rule, where


def _conditions(
    raw: Mapping[str, Any], key: str, where: _Where, attrs: tuple[str, ...], kind: type
) -> Mapping[str, Any]:
    table = _value(raw, key, where, (dict,), "an inline table", default={})
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


def _flatten(name: str, own: dict[str, _OwnRuleSet], chain: tuple[str, ...]) -> list[tuple[Rule, _Where]]:
    current = own[name]
    if current.extends is None:
        return list(current.rules)
    if current.extends in (*chain, name):
        raise current.where.error(f"extends {current.extends!r}, which leads back to it: a cycle", "extends")
    if current.extends not in own:
        raise current.where.error(f"extends unknown rule set {current.extends!r}", "extends")
    return _flatten(current.extends, own, (*chain, name)) + current.rules
