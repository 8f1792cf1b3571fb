"""One shipment's story for its page: timeline, raw provider events, ledger, operations, previews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import LedgerEntry
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.providers import numbers
from lifecycle.providers.seventeentrack.preview import Preview, previews
from lifecycle.shipments.models import Shipment, Transition

RAW_EVENTS_SHOWN = 50
RAW_BODY_CHARS = 20_000


@dataclass
class Story:
    shipment: Shipment
    others: list[Shipment]
    transitions: list[Transition]
    raw_events: list[dict[str, Any]]
    ledger: list[LedgerEntry]
    operations: list[Operation]
    previews: dict[str, Preview]
    # Inbox row id → when that row was received: the timeline's "Received" column.
    received: dict[int, datetime]


def find(session: Session, provider: str, number: str, carrier: int | None = None) -> list[Shipment]:
    """Every shipment with this number (one per carrier), the live ones first."""
    number = numbers.normalise(provider, number)
    stmt = select(Shipment).where(Shipment.provider == provider, Shipment.number == number)
    if carrier:
        stmt = stmt.where(Shipment.carrier == carrier)
    rows = list(session.scalars(stmt.order_by(Shipment.id.desc())))
    return sorted(rows, key=lambda s: s.tracking == "deleted")


def story(session: Session, account: Account | None, provider: str, number: str,
          carrier: int | None = None) -> Story | None:  # fmt: skip
    found = find(session, provider, number, carrier)
    if not found:
        return None
    shipment = found[0]
    transitions = list(
        session.scalars(
            select(Transition).where(Transition.shipment_id == shipment.id).order_by(Transition.id)
        )
    )
    ledger = session.scalars(
        select(LedgerEntry).where(LedgerEntry.shipment_id == shipment.id).order_by(LedgerEntry.id)
    )
    operations = session.scalars(
        select(Operation).where(Operation.shipment_id == shipment.id).order_by(Operation.id)
    )
    shown = provider == "17track" and account is not None
    return Story(
        shipment, found[1:], transitions, raw_events(session, transitions), list(ledger), list(operations),
        previews(session, account, shipment) if shown else {},  # type: ignore[arg-type]
        received_times(session, transitions),
    )  # fmt: skip


def received_times(session: Session, transitions: list[Transition]) -> dict[int, datetime]:
    """When each inbox row behind the timeline arrived (its transitions may be applied much later)."""
    ids = sorted({t.inbox_id for t in transitions if t.inbox_id})
    if not ids:
        return {}
    stmt = select(InboxEvent.id, InboxEvent.received_at).where(InboxEvent.id.in_(ids))
    return dict(session.execute(stmt).tuples().all())


def raw_events(session: Session, transitions: list[Transition]) -> list[dict[str, Any]]:
    """The provider bodies behind the timeline, newest first, pretty-printed (escaped by the template)."""
    ids = sorted({t.inbox_id for t in transitions if t.inbox_id}, reverse=True)[:RAW_EVENTS_SHOWN]
    if not ids:
        return []
    rows = session.scalars(select(InboxEvent).where(InboxEvent.id.in_(ids)).order_by(InboxEvent.id.desc()))
    return [
        {
            "id": row.id,
            "source": row.source,
            "received_at": row.received_at,
            "status": row.status,
            "outcome": row.outcome,
            "body": readable_body(row.body),
        }  # fmt: skip
        for row in rows
    ]


def readable_body(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    return text if len(text) <= RAW_BODY_CHARS else text[:RAW_BODY_CHARS] + "\n… (cut)"
