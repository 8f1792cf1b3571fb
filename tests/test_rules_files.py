"""Loading the rule files: the shipped TOML files and their values, and every kind of bad file.

A file that does not validate must raise `RulesError("<file>:<line>: ...")` naming the offending line.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from decimal import Decimal

import pytest

from config.settings import PROJECT_ROOT
from lifecycle.accounting.rules import FreeTier, ProviderRules, RulesError, load_rules

SHIPPED = PROJECT_ROOT / "config" / "quota_rules"


@pytest.fixture(scope="module")
def rules() -> dict[str, ProviderRules]:
    return load_rules()


def test_shipped_files_load_with_their_defaults(rules):
    assert set(rules) == {"17track", "cargoai"}
    seventeen, cargoai = rules["17track"], rules["cargoai"]
    assert (seventeen.unit, seventeen.currency, seventeen.free_monthly_units) == ("quota", "CNY", 100)
    assert seventeen.default_rule_set == "17track-official"
    assert seventeen.rule_sets["17track-per-cycle"].extends == "17track-official"
    assert seventeen.plans["free"].included_units == 0
    # The reported 2026 change is unverified: shipped as a commented example, not in force.
    assert seventeen.free_units_alongside_plan and seventeen.free_tier_changes == ()
    assert seventeen.free_tier(date(2026, 6, 1)) == FreeTier(None, 100, 0)
    assert (cargoai.unit, cargoai.currency, cargoai.free_monthly_units) == ("subscription", "USD", 0)
    assert cargoai.email_free_monthly is None and cargoai.emails_per_unit is None
    assert load_rules(SHIPPED) == rules


def test_unknown_prices_are_none(rules):
    cargoai = rules["cargoai"].plans
    assert (cargoai["push-pro"].price, cargoai["push-pro"].overage_unit_price) == (
        Decimal("49"),
        Decimal("1"),
    )
    assert (cargoai["pull-pro"].included_units, cargoai["pull-pro"].unit) == (10, "call")
    assert cargoai["pull-pro"].price is None and cargoai["pull-pro"].overage_unit_price is None
    for ultra in ("push-ultra", "pull-ultra"):
        assert (cargoai[ultra].price, cargoai[ultra].overage_unit_price, cargoai[ultra].included_units) == (
            None,
            None,
            None,
        )


def _walk(value):
    if dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            yield from _walk(getattr(value, item.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def test_no_float_anywhere_in_loaded_rules(rules):
    leaves = list(_walk(rules))
    assert not [leaf for leaf in leaves if isinstance(leaf, float)]
    assert any(isinstance(leaf, Decimal) for leaf in leaves)


VALID = """\
provider = "cargoai"
unit = "subscription"
currency = "USD"
free_monthly_units = 0
default_rule_set = "base"

[plans.pro]
period = "month"
included_units = 2
price = "49"
overage_unit_price = "1"

[rule_sets.base]
description = "test"

[[rule_sets.base.rules]]
name = "subscribe"
event = "subscribe"
units = 1

[[rule_sets.base.rules]]
name = "pull"
event = "pull_call"
units = 1
"""
APPENDED_SET = '\n[rule_sets.extra]\nextends = "{parent}"\n'
_ROOT_END = 'default_rule_set = "base"\n'

# Each row: case, text replaced (first match), replacement, a substring of the line the error must
# name (which match: 0 first, -1 last), a fragment of the message. One row per kind of bad file.
# fmt: off
BAD_FILES = [
    ("toml syntax", 'price = "49"', 'price = "49', 'price = "49', 0, "(at line"),
    ("unknown event kind", '"pull_call"', '"pull_cal"', "pull_cal", 0, "rule 'pull' has unknown event kind"),
    ("negative units", "units = 1", "units = -1", "units = -1", 0, "rule 'subscribe' has negative units"),
    ("unknown extends", "units = 1\n", "units = 1\n" + APPENDED_SET.format(parent="nope"), "nope", 0,
     "rule set 'extra' extends unknown rule set 'nope'"),
    ("extends itself", "[rule_sets.base]\n", '[rule_sets.base]\nextends = "base"\n', 'extends = "base"', 0,
     "rule set 'base' extends 'base', which leads back to it: a cycle"),
    ("extends cycle", "[rule_sets.base]\n",
     APPENDED_SET.format(parent="base") + '[rule_sets.base]\nextends = "extra"\n', 'extends = "extra"', 0,
     "a cycle"),
    ("non-numeric price", 'price = "49"', 'price = "forty-nine"', "forty-nine", 0,
     "plan 'pro' has non-numeric price 'forty-nine'"),
    ("float price", 'price = "49"', "price = 49.0", "price = 49.0", 0, "plan 'pro' has a float price"),
    ("integer price", 'price = "49"', "price = 49", "price = 49", 0, "quoted decimal string"),
    ("negative price", 'price = "49"', 'price = "-1"', 'price = "-1"', 0, "not negative"),
    ("NaN price", '"1"\n', '"NaN"\n', "NaN", 0, "must be finite"),
    ("duplicate rule names", 'name = "pull"', 'name = "subscribe"', 'name = "subscribe"', -1,
     "rule 'subscribe' duplicates the name"),
    ("missing root key", 'currency = "USD"\n', "", 'provider = "cargoai"', 0,
     "rule file is missing required key 'currency'"),
    ("missing plan key", 'overage_unit_price = "1"\n', "", "[plans.pro]", 0,
     "plan 'pro' is missing required key 'overage_unit_price'"),
    ("missing rule key", 'event = "subscribe"\n', "", "[[rule_sets.base.rules]]", 0,
     "rule 'subscribe' is missing required key 'event'"),
    ("unknown key", "units = 1", "unit_s = 1", "unit_s", 0, "unknown key 'unit_s'"),
    ("unknown default set", 'default_rule_set = "base"', 'default_rule_set = "bsae"', "bsae", 0,
     "default_rule_set 'bsae'"),
    ("unknown provider", '"cargoai"', '"cargo"', 'provider = "cargo"', 0, "unknown provider 'cargo'"),
    ("bad period", 'period = "month"', 'period = "week"', "week", 0, "has period 'week'"),
    ("when on a missing attr", 'name = "pull"\n', 'name = "pull"\nwhen = { lang = true }\n', "when =", 0,
     "tests when.lang"),
    ("same ledger key", 'name = "pull"\nevent = "pull_call"', 'name = "pull"\nevent = "subscribe"',
     'event = "subscribe"', -1, "same ledger keys as rule 'subscribe'"),
    ("unknown unit", "units = 1\n", 'units = 1\nunit = "calls"\n', 'unit = "calls"', 0, "has unit 'calls'"),
    ("free tier change without a date", _ROOT_END, _ROOT_END + "[[free_tier_changes]]\nmonthly_units = 0\n",
     "[[free_tier_changes]]", 0, "free tier change #1 is missing required key 'effective_from'"),
    ("free tier date with a time", _ROOT_END,
     _ROOT_END + "[[free_tier_changes]]\neffective_from = 2026-01-07T00:00:00\nmonthly_units = 0\n",
     "effective_from", 0, "free tier change #1 has effective_from"),
    ("free tier changes out of order", _ROOT_END, _ROOT_END
     + "[[free_tier_changes]]\neffective_from = 2026-02-01\nmonthly_units = 0\n"
     + "[[free_tier_changes]]\neffective_from = 2026-01-07\nmonthly_units = 0\n",
     "effective_from = 2026-01-07", 0, "free tier change #2 must come after the change before it"),
    ("free tier unknown key", _ROOT_END,
     _ROOT_END + "[[free_tier_changes]]\neffective_from = 2026-01-07\nmonthy_units = 0\n",
     "monthy_units", 0, "unknown key 'monthy_units'"),
    ("free tier negative grant", _ROOT_END, _ROOT_END
     + "[[free_tier_changes]]\neffective_from = 2026-01-07\nmonthly_units = 0\none_time_units = -200\n",
     "one_time_units", 0, "has negative one_time_units"),
    ("alongside not a bool", _ROOT_END, _ROOT_END + 'free_units_alongside_plan = "yes"\n',
     "free_units_alongside_plan", 0, "free_units_alongside_plan = 'yes': expected true or false"),
]

# The same on the shipped 17TRACK file, for checks that need its event attrs.
SEVENTEENTRACK_TEXT = (SHIPPED / "17track.toml").read_text()
BAD_17TRACK_FILES = [
    ("when not a bool", "when = { lang = true }", 'when = { lang = "yes" }', 'lang = "yes"', 0,
     "rule '17track.translation' has when.lang = 'yes': expected a bool"),
    ("refuse_above not a count", "change_number = 5", "change_number = -5", "= -5", 0, "expected a count"),
    ("translation without its own key", 'key_suffix = ":lang"\n', "", 'event = "register"', -1,
     "rule '17track.translation' would write the same ledger keys as rule '17track.register'"),
    ("email priced by a rule", 'event = "delete"', 'event = "email"', 'event = "email"', 0,
     "rule '17track.delete' prices 'email'"),
    ("inherited duplicate", 'name = "17track.update_cycle"\n', 'name = "17track.register"\n',
     'name = "17track.register"', -1, "duplicates the name of an earlier rule in rule set '17track-per"),
]
# fmt: on


@pytest.mark.parametrize(
    ("base", "name", "case", "old", "new", "marker", "which", "fragment"),
    [(VALID, "cargoai.toml", *row) for row in BAD_FILES]
    + [(SEVENTEENTRACK_TEXT, "17track.toml", *row) for row in BAD_17TRACK_FILES],
)
def test_bad_rule_file_names_file_and_line(tmp_path, base, name, case, old, new, marker, which, fragment):
    text = base.replace(old, new, 1)
    assert text != base, case
    path = tmp_path / name
    path.write_text(text)
    line = [number for number, row in enumerate(text.splitlines(), start=1) if marker in row][which]
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    assert str(caught.value).startswith(f"{path}:{line}: "), (case, str(caught.value))
    assert fragment in str(caught.value), (case, str(caught.value))


def test_valid_template_loads(tmp_path):
    (tmp_path / "cargoai.toml").write_text(VALID)
    assert load_rules(tmp_path)["cargoai"].rule_set().name == "base"


def test_free_tier_changes_take_effect_on_their_dates(tmp_path):
    changes = (
        "free_units_alongside_plan = false\n"
        "[[free_tier_changes]]\neffective_from = 2026-01-07\nmonthly_units = 0\none_time_units = 200\n"
        "[[free_tier_changes]]\neffective_from = 2027-01-01\nmonthly_units = 50\n"
    )
    (tmp_path / "cargoai.toml").write_text(VALID.replace(_ROOT_END, _ROOT_END + changes))
    rules = load_rules(tmp_path)["cargoai"]
    assert rules.free_units_alongside_plan is False
    assert rules.free_tier(date(2026, 1, 6)) == FreeTier(None, 0, 0)  # free_monthly_units before the first
    assert rules.free_tier(date(2026, 1, 7)) == FreeTier(date(2026, 1, 7), 0, 200)
    assert rules.free_tier(date(2027, 3, 1)) == FreeTier(date(2027, 1, 1), 50, 0)


def test_files_inside_the_project_are_named_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr("lifecycle.accounting.rules_toml.PROJECT_ROOT", tmp_path)
    folder = tmp_path / "config" / "quota_rules"
    folder.mkdir(parents=True)
    (folder / "cargoai.toml").write_text(VALID.replace("units = 1", "units = -1", 1))
    with pytest.raises(
        RulesError, match=r"^config/quota_rules/cargoai\.toml:\d+: rule 'subscribe' has negative"
    ):
        load_rules(folder)


def test_directory_problems(tmp_path):
    with pytest.raises(RulesError, match="no \\*.toml rule files"):
        load_rules(tmp_path)
    shutil.copy(SHIPPED / "cargoai.toml", tmp_path / "a.toml")
    shutil.copy(SHIPPED / "cargoai.toml", tmp_path / "b.toml")
    with pytest.raises(RulesError, match=r"b\.toml:1: provider 'cargoai' is already defined in .*a\.toml"):
        load_rules(tmp_path)
