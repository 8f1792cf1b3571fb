"""The cost accountant's rules engine: every seed bullet, the plans' money, and property tests.

Expected units are written out from the seeds (quota-deduction page, FinOps note, CargoAi pricing
article), not from the TOML files, so a wrong rule file fails here. Loading the files themselves,
good and bad, is tested in test_rules_files.py.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.accounting.rules import (
    EVENT_KINDS,
    BillableEvent,
    Charge,
    ProviderRules,
    load_rules,
)

WHEN = datetime(2025, 3, 1, 12, tzinfo=UTC)


@functools.cache
def shipped_rules() -> dict[str, ProviderRules]:
    return load_rules()


@pytest.fixture
def rules() -> dict[str, ProviderRules]:
    return shipped_rules()


def event(provider: str, kind: str, key: str, quantity: int = 1, **attrs: object) -> BillableEvent:
    return BillableEvent(provider, kind, key, WHEN, quantity=quantity, attrs=attrs)


def t17(kind: str, key: str, **attrs: object) -> BillableEvent:
    return event("17track", kind, f"17track:{kind}:{key}", **attrs)


def charge_all(
    rules: dict[str, ProviderRules], rule_set: str | None, events: list[BillableEvent]
) -> list[Charge]:
    charges: list[Charge] = []
    for item in events:
        charges += rules[item.provider].rule_set(rule_set).charges(item)
    return charges


def units_per_rule(charges: list[Charge]) -> dict[str, int]:
    """Units per rule; a rule that only gave 0-unit charges still appears (free events are recorded)."""
    totals: dict[str, int] = {}
    for charge in charges:
        totals[charge.rule] = totals.get(charge.rule, 0) + charge.units
    return totals


# (seed bullet, rule set (None = default), events, expected units per rule)
SEVENTEENTRACK_SEED = [
    (
        "1 quota per successful registration of a (number, carrier)",
        None,
        [t17("register", "A:3011:1")],
        {"17track.register": 1},
    ),
    (
        "same number with carriers B and C deducts 2",
        None,
        [t17("register", "A:B:1"), t17("register", "A:C:1")],
        {"17track.register": 2},
    ),
    (
        "lang at registration: registration + translation = 2",
        None,
        [t17("register", "A:3011:1", lang="en")],
        {"17track.register": 1, "17track.translation": 1},
    ),
    (
        "setting lang later on a number registered without one: +1",
        None,
        [t17("register", "A:3011:1", lang=None), t17("lang_set", "A:3011:1", lang="fr")],
        {"17track.register": 1, "17track.lang_set": 1},
    ),
    (
        "changing an existing lang to another: no additional quota",
        None,
        [t17("register", "A:3011:1", lang="en"), t17("lang_change", "A:3011:1:1", lang="de")],
        {"17track.register": 1, "17track.translation": 1, "17track.lang_change": 0},
    ),
    (
        "continuous tracking and repeated calls are free (no ledger entries)",
        None,
        [t17("register", "A:3011:1")] + [t17("update_cycle", f"A:3011:{n}", tracking=True) for n in range(4)],
        {"17track.register": 1},
    ),
    (
        "restart tracking once for a stopped shipment: free",
        None,
        [t17("register", "A:3011:1"), t17("retrack", "A:3011:1")],
        {"17track.register": 1, "17track.retrack": 0},
    ),
    (
        "up to 5 carrier changes: free",
        None,
        [t17("register", "A:3011:1")]
        + [t17("carrier_change", f"A:1:{n}", change_number=n) for n in range(1, 6)],
        {"17track.register": 1, "17track.carrier_change": 0},
    ),
    (
        "deleted then re-registered: deducted again",
        None,
        [t17("register", "A:3011:1"), t17("delete", "A:3011:1"), t17("register", "A:3011:2")],
        {"17track.register": 2, "17track.delete": 0},
    ),
    (
        "only successful registrations are charged",
        None,
        [t17("register_rejected", "A:3011:1")],
        {"17track.register_rejected": 0},
    ),
    (
        "FinOps: +1 per update cycle while tracked, 0 once delivered or stopped",
        "17track-per-cycle",
        [t17("register", "A:3011:1")]
        + [t17("update_cycle", f"A:3011:{n}", tracking=True) for n in range(3)]
        + [t17("update_cycle", "A:3011:3", tracking=False)],
        {"17track.register": 1, "17track.update_cycle": 3, "17track.update_cycle_untracked": 0},
    ),
    (
        "FinOps set keeps every official rule",
        "17track-per-cycle",
        [t17("register", "A:3011:1", lang="en"), t17("retrack", "A:3011:1")],
        {"17track.register": 1, "17track.translation": 1, "17track.retrack": 0},
    ),
]


@pytest.mark.parametrize(("bullet", "rule_set", "events", "expected"), SEVENTEENTRACK_SEED)
def test_17track_quota_seed(rules, bullet, rule_set, events, expected):
    charges = charge_all(rules, rule_set, events)
    assert units_per_rule(charges) == expected, bullet
    assert len({charge.key for charge in charges}) == len(charges), "ledger keys must be unique"
    assert all(charge.unit == "quota" for charge in charges)


def test_register_with_lang_gives_two_keyed_charges(rules):
    registration = t17("register", "RR1:3011:1", lang="en")
    charges = rules["17track"].rule_set().charges(registration)
    assert [(c.rule, c.units, c.key) for c in charges] == [
        ("17track.register", 1, registration.key),
        ("17track.translation", 1, registration.key + ":lang"),
    ]
    assert charges == rules["17track"].rule_set().charges(registration), "same event, same keys"


def test_sixth_carrier_change_is_refused(rules):
    for rule_set in ("17track-official", "17track-per-cycle"):
        with pytest.raises(ValueError, match="change_number=6"):
            rules["17track"].rule_set(rule_set).charges(t17("carrier_change", "A:6", change_number=6))
    with pytest.raises(ValueError, match="change_number=None"):
        rules["17track"].rule_set().charges(t17("carrier_change", "A:x"))


def test_email_is_not_charged_per_event(rules):
    assert rules["17track"].rule_set().charges(event("17track", "email", "e:1", quantity=500)) == []
    assert (rules["17track"].email_free_monthly, rules["17track"].emails_per_unit) == (300, 2)


# (emails already sent this month, emails sent now, quota units): 300 free, then 2 emails = 1 unit.
EMAIL_SEED = [(0, 300, 0), (300, 1, 1), (301, 1, 0), (300, 2, 1), (0, 302, 1), (0, 305, 3), (299, 3, 1)]


@pytest.mark.parametrize(("sent_before", "sent_now", "units"), EMAIL_SEED)
def test_email_notification_quota(rules, sent_before, sent_now, units):
    assert rules["17track"].email_units(sent_before, sent_now) == units


# (events, expected units per rule): push billed per subscription created, pull per call.
CARGOAI_SEED = [
    (
        "push: a repeat subscription of the same AWB is charged again",
        [
            event("cargoai", "subscribe", "cargoai:subscribe:020-12345675:1"),
            event("cargoai", "unsubscribe", "cargoai:unsubscribe:020-12345675:1"),
            event("cargoai", "subscribe", "cargoai:subscribe:020-12345675:2"),
            event("cargoai", "subscribe", "cargoai:subscribe:176-00000012:1"),
        ],
        {"cargoai.subscribe": 3, "cargoai.unsubscribe": 0},
    ),
    (
        "pull: billed per call",
        [event("cargoai", "pull_call", "cargoai:pull:1"), event("cargoai", "pull_call", "cargoai:pull:2", 4)],
        {"cargoai.pull_call": 5},
    ),
]


@pytest.mark.parametrize(("case", "events", "expected"), CARGOAI_SEED)
def test_cargoai_pricing_seed(rules, case, events, expected):
    charges = charge_all(rules, None, events)
    assert units_per_rule(charges) == expected, case
    assert {c.unit for c in charges} == {"call" if "pull" in case else "subscription"}


# (provider, plan, units used in one period, expected cost): None where a needed price is unknown.
PLAN_COSTS = [
    ("cargoai", "push-pro", 0, Decimal("49")),
    ("cargoai", "push-pro", 2, Decimal("49")),
    ("cargoai", "push-pro", 3, Decimal("50")),  # the article's worked example: 3 AWBs in a month
    ("cargoai", "pull-pro", 10, None),
    ("cargoai", "push-ultra", 1, None),
    ("17track", "basic", 10_000, Decimal("299")),
    ("17track", "basic", 10_001, None),  # no source gives an overage price
]


@pytest.mark.parametrize(("provider", "plan", "units", "cost"), PLAN_COSTS)
def test_plan_costs(rules, provider, plan, units, cost):
    assert rules[provider].plans[plan].cost_for(units) == cost


# (plan, included quota, annual CNY, the FinOps note's cost per unit, which it truncates)
SEVENTEENTRACK_PLANS = [
    ("basic", 10_000, "299", "0.0299"),
    ("advanced", 50_000, "1299", "0.0259"),
    ("pro", 500_000, "7299", "0.0145"),
    ("flagship", 1_000_000, "9999", "0.0099"),
]


@pytest.mark.parametrize(("name", "included", "price", "note_unit_cost"), SEVENTEENTRACK_PLANS)
def test_17track_plans(rules, name, included, price, note_unit_cost):
    plan = rules["17track"].plans[name]
    assert (plan.period, plan.included_units, plan.price, plan.currency) == (
        "year",
        included,
        Decimal(price),
        "CNY",
    )
    assert plan.unit_price == Decimal(price) / included
    assert plan.unit_price.quantize(Decimal("0.0001"), rounding=ROUND_DOWN) == Decimal(note_unit_cost)
    assert plan.overage_unit_price is None


def test_events_a_rule_set_cannot_price_raise(rules):
    official = rules["17track"].rule_set()
    with pytest.raises(ValueError, match="cannot price"):
        official.charges(event("cargoai", "subscribe", "k"))
    with pytest.raises(ValueError, match="cannot price"):
        official.charges(event("17track", "teleport", "k"))
    with pytest.raises(ValueError, match="quantity"):
        official.charges(event("17track", "register", "k", quantity=0))


# --- property: charged units equal a count made straight from the seeds -------------------------


def seed_units(item: BillableEvent, per_cycle: bool) -> int:
    """Units per the seeds, written independently of the TOML files."""
    if item.kind == "register":
        return 1 + (1 if item.attrs.get("lang") else 0)
    if item.kind == "lang_set":
        return 1
    if item.kind == "update_cycle":
        return 1 if per_cycle and item.attrs.get("tracking") else 0
    if item.kind in ("subscribe", "pull_call"):
        return item.quantity
    return 0  # rejected registration, lang change, retrack, ≤5 carrier changes, delete, unsubscribe, email


ATTRS = {
    "register": st.fixed_dictionaries({"lang": st.sampled_from([None, "", "en", "zh-hans"])}),
    "lang_set": st.fixed_dictionaries({"lang": st.just("fr")}),
    "lang_change": st.fixed_dictionaries({"lang": st.just("de")}),
    "carrier_change": st.fixed_dictionaries({"change_number": st.integers(1, 5)}),
    "update_cycle": st.fixed_dictionaries({"tracking": st.booleans()}),
}
EVENT_SPECS = st.sampled_from([(provider, kind) for provider, kinds in EVENT_KINDS.items() for kind in kinds])


@st.composite
def event_sequences(draw) -> list[BillableEvent]:
    events = []
    for index, (provider, kind) in enumerate(draw(st.lists(EVENT_SPECS, max_size=40))):
        attrs = draw(ATTRS.get(kind, st.just({})))
        quantity = draw(st.integers(1, 5)) if kind in ("pull_call", "email") else 1
        events.append(
            BillableEvent(provider, kind, f"{provider}:{kind}:{index}", WHEN, quantity=quantity, attrs=attrs)
        )
    return events


@pytest.mark.parametrize("rule_set", ["17track-official", "17track-per-cycle"])
@given(events=event_sequences())
def test_charged_units_match_the_seeds(rule_set, events):
    rules = shipped_rules()
    charges = []
    for item in events:
        chosen = rules[item.provider].rule_set(rule_set if item.provider == "17track" else None)
        charges += chosen.charges(item)
    per_cycle = rule_set == "17track-per-cycle"
    assert sum(c.units for c in charges) == sum(seed_units(item, per_cycle) for item in events)
    assert len({c.key for c in charges}) == len(charges)
    assert all(isinstance(c.units, int) and c.units >= 0 for c in charges)


@given(batches=st.lists(st.integers(0, 400), max_size=8))
def test_email_units_do_not_depend_on_batching(batches):
    rules = shipped_rules()["17track"]
    sent, charged = 0, 0
    for batch in batches:
        charged += rules.email_units(sent, batch)
        sent += batch
    assert charged == math.ceil(max(0, sent - 300) / 2)
