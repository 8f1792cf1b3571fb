"""Pull mode for AWBs: poll `GET /track?awb=` on a schedule that never spends more than the budget.

The month's call budget is spread over the days left, so a busy first week cannot spend the
whole month; every call is charged (`pull_call`) and its answer goes through the inbox like a
callback, so pulled and pushed AWBs share one state machine.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.accounting import service as accountant
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import LedgerEntry
from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.inbox.models import InboxEvent
from lifecycle.providers.base import ProviderError
from lifecycle.providers.cargoai.client import CargoAiClient
from lifecycle.shipments.models import Shipment

PROVIDER = "cargoai"
UTC_ZONE = ZoneInfo("UTC")


def calls_allowed_now(session: Session, budget: int, now: datetime, tz: ZoneInfo = UTC_ZONE) -> int:
    """Today's share of what is left of the month's budget, minus what today already spent.

    Months and days are the billing ones, in the account's time zone (ACCOUNT_TIMEZONE), as the
    ledger counts them.
    """
    local = now.astimezone(tz)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    used_month = _calls_since(session, day_start.replace(day=1))
    used_today = _calls_since(session, day_start)
    days_in_month = calendar.monthrange(local.year, local.month)[1]
    days_left = days_in_month - local.day + 1
    left = max(0, budget - used_month)
    share_today = -(-(left + used_today) // days_left)  # ceiling: round up, never past the budget
    return max(0, min(left, share_today - used_today))


def _calls_since(session: Session, since: datetime) -> int:
    stmt = select(func.count()).where(
        LedgerEntry.provider == PROVIDER,
        LedgerEntry.event_kind == "pull_call",
        LedgerEntry.occurred_at >= since,
    )
    return session.scalar(stmt) or 0


def poll_due(
    session_factory: Callable[[], Session], client: CargoAiClient, account: Account | None, budget: int
) -> dict[str, int]:
    now = utcnow()
    with session_factory() as session:
        allowed = calls_allowed_now(session, budget, now, account.tz if account else UTC_ZONE)
        stmt = (
            select(Shipment.id, Shipment.number)
            .where(
                Shipment.provider == PROVIDER,
                Shipment.tracking_mode == "pull",
                Shipment.tracking == "tracking",
            )
            .order_by(Shipment.last_polled_at.is_not(None), Shipment.last_polled_at)
            .limit(allowed)
        )
        due = list(session.execute(stmt))
    polled = failed = 0
    for shipment_id, number in due:
        try:
            status, body = client.track(number)
        except ProviderError:
            failed += 1
            continue
        with session_factory() as session, session.begin():
            _record(session, account, shipment_id, number, status, body)
        polled += 1
    return {"allowed": allowed, "polled": polled, "failed": failed}


def _record(
    session: Session, account: Account | None, shipment_id: int, number: str, status: int, body: dict
) -> None:
    """Charge the call (answered calls are billed), store the answer in the inbox, note the poll."""
    now = utcnow()
    shipment = session.get_one(Shipment, shipment_id)
    shipment.last_polled_at = now
    if account is not None:
        event = BillableEvent(
            PROVIDER, "pull_call", f"cargoai:pull:{number}:{now.isoformat()}", now, shipment_id
        )
        accountant.charge(session, account, [event])
    if status == 200 and isinstance(body.get("events"), list):
        payload = {"awb": number, "events": body["events"]}
        session.add(InboxEvent(provider=PROVIDER, source="pull", body=json.dumps(payload).encode()))
    else:
        shipment.last_error = f"pull answered {status}: {str(body)[:200]}"
