"""Lifecycle commands from the admin: the CLI's own service functions, one shipment per transaction.

A refusal (the CLI's local checks, or a provider the command does not exist for) is a row result
with its reason, never an error page; the other rows still run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lifecycle.accounting.ledger import Account
from lifecycle.providers.seventeentrack import commands
from lifecycle.providers.seventeentrack.preview import price, reregistration_event
from lifecycle.shipments.models import Shipment

BULK_ACTIONS = ("stop", "retrack", "delete")
MAX_BULK_ROWS = 500

Command = Callable[[Session, Shipment, dict[str, Any]], Any]
_COMMANDS: dict[str, Command] = {
    "stop": lambda s, sh, a: commands.stop(s, sh.number, sh.carrier or None),
    "retrack": lambda s, sh, a: commands.retrack(s, sh.number, sh.carrier or None),
    "sync": lambda s, sh, a: commands.sync(s, sh.number, sh.carrier or None),
    "delete": lambda s, sh, a: commands.delete(s, sh.number, sh.carrier or None),
    "change-carrier": lambda s, sh, a: commands.change_carrier(
        s, sh.number, _carrier(a.get("new_carrier")), sh.carrier or None
    ),
    "set-language": lambda s, sh, a: commands.change_info(
        s, sh.number, lang=(a.get("lang") or "").strip() or None, carrier=sh.carrier or None
    ),
}


@dataclass(frozen=True)
class RowResult:
    shipment_id: int
    number: str
    ok: bool
    message: str
    provider: str = ""


def _carrier(value: Any) -> int:
    try:
        carrier = int(str(value).strip())
    except ValueError:
        raise commands.CommandRefused(f"{value!r} is not a carrier code (a number, e.g. 3011)") from None
    if carrier <= 0:
        raise commands.CommandRefused("a carrier code is a positive number")
    return carrier


def run(session_factory: Callable[[], Session], action: str, shipment_id: int, **args: Any) -> RowResult:
    """Run one command on one shipment in its own transaction; a refusal is a result, not an error."""
    if action not in _COMMANDS:
        return RowResult(shipment_id, "?", False, f"unknown action {action!r}")
    with session_factory() as session:
        try:
            with session.begin():
                shipment = session.get(Shipment, shipment_id)
                if shipment is None:
                    return RowResult(shipment_id, "?", False, "no such shipment")
                number, provider = shipment.number, shipment.provider
                if shipment.provider != "17track":
                    raise commands.CommandRefused(f"{shipment.provider} numbers have no {action} command")
                outcome = _COMMANDS[action](session, shipment, args)
        except commands.CommandRefused as exc:
            return RowResult(shipment_id, number, False, str(exc), provider)
    return RowResult(shipment_id, number, True, outcome.message, provider)


def run_bulk(session_factory: Callable[[], Session], action: str, ids: Sequence[int]) -> list[RowResult]:
    if action not in BULK_ACTIONS:
        return [RowResult(0, "", False, f"{action!r} is not a bulk action")]
    return [run(session_factory, action, shipment_id) for shipment_id in ids[:MAX_BULK_ROWS]]


def reregistration_cost(session: Session, accounts: dict[str, Account], ids: Sequence[int]) -> dict[str, Any]:
    """What registering the selected numbers again after a delete would cost, per currency."""
    shipments = [s for s in (session.get(Shipment, i) for i in ids[:MAX_BULK_ROWS]) if s is not None]
    units, unknown, rows = 0, False, []
    for shipment in shipments:
        account = accounts.get(shipment.provider)
        cost = price(session, account, reregistration_event(shipment)) if account else None
        rows.append((shipment, cost))
        units += cost.units if cost else 0
        unknown = unknown or cost is None or cost.amount is None
    unit = next((a.rules.unit for a in accounts.values()), "quota")
    return {"rows": rows, "units": units, "unit": unit, "price_unknown": unknown}
