"""Drift: our count of 17TRACK quota against the provider's own (`getquota`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.accounting import ledger
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import UsageTotal
from lifecycle.accounting.rules import BillableEvent
from lifecycle.operations.models import ServiceState
from lifecycle.providers.seventeentrack.client import SeventeenTrackClient
from lifecycle.shipments.models import Shipment


def our_count(session: Session, account: Account, now: datetime) -> int:
    """Quota units we charged since the plan period began (every bucket, free months included)."""
    first_month = account.plan_period(now)[:7]
    stmt = select(func.coalesce(func.sum(UsageTotal.units), 0)).where(
        UsageTotal.provider == account.provider,
        UsageTotal.scope == "month",
        UsageTotal.key == account.rules.unit,
        UsageTotal.period >= first_month,
    )
    return int(session.scalar(stmt) or 0)


def refresh(
    session: Session, account: Account, client: SeventeenTrackClient, now: datetime
) -> dict[str, Any]:
    """Ask getquota, compare, explain what can be explained, and keep the snapshot for reports."""
    theirs = client.call("getquota", [])
    ours = our_count(session, account, now)
    used = int(theirs.get("quota_used") or 0)
    adopted = session.scalar(
        select(func.count()).where(Shipment.provider == account.provider, Shipment.origin == "adopted")
    )
    explanations = []
    if used > ours and adopted:
        explanations.append(f"{adopted} number(s) were registered outside this service (adopted from pushes)")
    if theirs.get("free_email_quotaused"):
        explanations.append(
            f"{theirs['free_email_quotaused']} email notification(s) sent by 17TRACK this month"
        )
    if used < ours:
        total = theirs.get("quota_total")
        explanations.append(
            f"17TRACK counts fewer: its period may differ (quota_total {total}), "
            "or it did not count answers charged here"
        )
    previous = session.get(ServiceState, f"getquota:{account.provider}")
    _record_new_emails(session, account, previous.value if previous else None, theirs, now)
    snapshot = {
        "checked_at": now.isoformat(),
        "ours": ours,
        "theirs": used,
        "difference": used - ours,
        "provider_total": theirs.get("quota_total"),
        "provider_remaining": theirs.get("quota_remain"),
        "provider_today_used": theirs.get("today_used"),
        "explanations": explanations,
        "emails_counted": theirs.get("emails_counted"),
    }
    key = f"getquota:{account.provider}"
    state = session.get(ServiceState, key)
    if state is None:
        session.add(ServiceState(key=key, value=snapshot))
    else:
        state.value = snapshot
    return snapshot


def _record_new_emails(
    session: Session, account: Account, previous: dict[str, Any] | None, theirs: dict[str, Any], now: datetime
) -> None:
    """Charge the emails 17TRACK reports as sent since the last check (same month only).

    getquota counts notification emails against the 300 free a month; the increase since the last
    snapshot is the emails sent in between, which the ledger prices (2 emails = 1 unit past 300).
    """
    sent = int(theirs.get("free_email_quotaused") or 0)
    before = 0
    if previous and str(previous.get("checked_at", ""))[:7] == now.isoformat()[:7]:
        before = int(previous.get("emails_counted") or 0)
    theirs["emails_counted"] = sent
    if sent > before:
        event = BillableEvent(account.provider, "email", f"17track:email:getquota:{now.isoformat()}", now,
                              quantity=sent - before)  # fmt: skip
        ledger.charge(session, account, [event])
