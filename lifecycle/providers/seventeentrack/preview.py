"""What a lifecycle command will cost, before it is sent: the accountant's answer for the admin page.

The preview builds the very billable event the provider's answer would produce (`events17`), prices
it with the rule set in force and allocates it to buckets from the current running totals, exactly
as the ledger will. Nothing is written: the totals are read, not locked, so a charge made by a worker
in the meantime can move a unit from the free bucket to the plan (never change the units).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from lifecycle.accounting import ledger
from lifecycle.accounting.ledger import Account, total_key
from lifecycle.accounting.models import UsageTotal
from lifecycle.accounting.rules import BillableEvent, Charge
from lifecycle.db import utcnow
from lifecycle.operations.models import Operation
from lifecycle.providers.seventeentrack import billing as events17
from lifecycle.providers.seventeentrack.commands import MAX_CARRIER_CHANGES
from lifecycle.shipments.models import Shipment

COMMANDS = ("stop", "retrack", "sync", "change-carrier", "set-language", "delete")
_KINDS = {"retrack": "retrack", "change-carrier": "changecarrier", "set-language": "changeinfo",
          "delete": "deletetrack"}  # fmt: skip


@dataclass(frozen=True)
class Cost:
    units: int
    amount: Decimal | None  # None: a bucket it falls in has no known price
    currency: str
    buckets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preview:
    command: str
    cost: Cost
    summary: str
    # Set when the rules in force refuse the event (e.g. a 6th carrier change).
    refused: str | None = None


def command_event(
    shipment: Shipment, command: str, new_carrier: int = 0, lang: str = ""
) -> BillableEvent | None:
    """The billable event the provider's acceptance of this command will produce, if any."""
    kind = _KINDS.get(command)
    if kind is None:
        return None
    payload = {"carrier_new": new_carrier} if command == "change-carrier" else {}
    if command == "set-language":
        payload = {"lang": lang or "en"}
    op = Operation(id=0, provider=shipment.provider, kind=kind, shipment_id=shipment.id,
                   number=shipment.number, carrier=shipment.carrier, payload=payload)  # fmt: skip
    events = events17.for_answer(op, shipment, {})
    return events[0] if events else None


def reregistration_event(shipment: Shipment) -> BillableEvent:
    """Registering this number again after a delete: a new generation, charged again."""
    key = f"17track:register:{shipment.number}:{shipment.carrier}:{shipment.registration_generation + 1}"
    return BillableEvent(
        shipment.provider, "register", key, utcnow(), shipment.id, attrs={"lang": shipment.lang}
    )


def price(session: Session, account: Account, event: BillableEvent | None) -> Cost:
    """Units and money of one event under the account's rules, allocated as the ledger would now."""
    if event is None:
        return Cost(0, Decimal(0), account.rules.currency)
    charges = account.rule_set.charges(event)
    used = _bucket_usage(session, account, event.occurred_at, charges)
    units, amount, buckets = 0, Decimal(0), []
    for item in charges:
        for entry in ledger._allocate(account, event, item, used):
            units += entry["units"]
            buckets.append(entry["bucket"])
            amount = None if amount is None or entry["amount"] is None else amount + entry["amount"]
    return Cost(units, amount, account.rules.currency, tuple(buckets))


def preview(session: Session, account: Account, shipment: Shipment, command: str, **args: object) -> Preview:
    """The cost of `command` on this shipment, with a one-line summary an operator can read."""
    try:
        cost = price(session, account, command_event(shipment, command, **args))  # type: ignore[arg-type]
    except ValueError as exc:
        return Preview(command, Cost(0, Decimal(0), account.rules.currency), f"{command}: refused", str(exc))
    if command == "delete":
        again = price(session, account, reregistration_event(shipment))
        again_words = f"registering this number again will cost {_units(again, account)}"
        summary = f"delete: {_words(cost, account)}; {again_words}"
        return Preview(command, cost, summary)
    return Preview(command, cost, _summary(command, cost, shipment, account))


def previews(session: Session, account: Account, shipment: Shipment) -> dict[str, Preview]:
    """Every lifecycle command's preview for one shipment (the change-carrier one for any new carrier)."""
    return {command: preview(session, account, shipment, command) for command in COMMANDS}


def _summary(command: str, cost: Cost, shipment: Shipment, account: Account) -> str:
    if command == "retrack":
        return (
            f"retrack: {_words(cost, account)}, {'1st of 1' if not shipment.retracked else 'none left of 1'}"
        )
    if command == "change-carrier":
        left = MAX_CARRIER_CHANGES - shipment.carrier_changes
        return f"change carrier: {_words(cost, account)}, {left} of {MAX_CARRIER_CHANGES} free changes left"
    if command == "set-language":
        verb = "change language" if shipment.lang else "set language"
        return f"{verb}: {_words(cost, account)}"
    if command == "stop" and _charges_cycles(account):
        return "stop: free, and ends the per-update-cycle charges of this rule set"
    return f"{command}: {_words(cost, account)}"


def _words(cost: Cost, account: Account) -> str:
    if not cost.units:
        return "free"
    money = "price unknown" if cost.amount is None else f"{_money(cost.amount)} {cost.currency}"
    return f"+{_units(cost, account)} ({', '.join(sorted(set(cost.buckets)))}: {money})"


def _units(cost: Cost, account: Account) -> str:
    return f"{cost.units} {account.rules.unit}"


def _money(amount: Decimal) -> str:
    cents = amount.quantize(Decimal("0.01"))
    # Whole cents read as money; a prepaid plan's per-unit price (¥299 / 10,000) is shown exactly.
    return format(cents if cents == amount else amount.normalize(), "f")


def _charges_cycles(account: Account) -> bool:
    probe = BillableEvent(account.provider, "update_cycle", "preview", utcnow(), attrs={"tracking": True})
    return any(c.units for c in account.rule_set.charges(probe))


def _bucket_usage(
    session: Session, account: Account, when: datetime, charges: list[Charge]
) -> dict[tuple[str, str], int]:
    used: dict[tuple[str, str], int] = {}
    for item in charges:
        unit = item.unit or account.rules.unit
        for bucket in account.buckets(when, unit):
            slot = (bucket.scope_period, total_key(bucket.name, unit))
            row = session.get(UsageTotal, (account.provider, "bucket", *slot))
            used[slot] = row.units if row else 0
    return used
