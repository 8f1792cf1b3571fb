"""Claiming and processing inbox rows in batches (invariants 2, 4 and 7)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.inbox.models import FAILED, PENDING, PROCESSED, InboxEvent
from lifecycle.providers import cargoai
from lifecycle.providers import seventeentrack as st
from lifecycle.shipments.apply import BatchEffects, apply_pushes
from lifecycle.shipments.apply_cargoai import apply_callbacks
from lifecycle.sqlutil import is_retryable

log = logging.getLogger(__name__)


@dataclass
class DrainReport:
    batches: int = 0
    processed: int = 0
    failed: int = 0
    operations_created: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcomes: dict[int, str], operations: int) -> None:
        self.batches += 1
        self.operations_created += operations
        for outcome in outcomes.values():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if outcome == "failed":
                self.failed += 1
            else:
                self.processed += 1


# Charges billable events inside the batch's transaction (the per-cycle rule set needs it).
Charger = Callable[[Session, list[BillableEvent]], object]


def drain(
    session_factory: Callable[[], Session],
    batch_size: int,
    max_batches: int = 10_000,
    charger: Charger | None = None,
    on_operations: Callable[[], object] = lambda: None,
) -> DrainReport:
    """Process pending inbox rows batch after batch until none is left (or max_batches).

    `on_operations` is called after each committed batch that queued provider operations, so
    stoptracks go out while a long stream of pushes is still being drained.
    """
    report = DrainReport()
    for _ in range(max_batches):
        outcomes, operations = _process_batch_with_retry(session_factory, batch_size, charger)
        if not outcomes:
            break
        report.add(outcomes, operations)
        if operations:
            on_operations()
    return report


def _process_batch_with_retry(
    session_factory: Callable[[], Session], batch_size: int, charger: Charger | None
) -> tuple[dict[int, str], int]:
    for attempt in range(5):
        try:
            with session_factory() as session, session.begin():
                return process_batch(session, batch_size, charger)
        except Exception as exc:
            if not is_retryable(exc) or attempt == 4:
                raise
            # Another worker holds locks we need (deadlock victim): the whole batch rolls back.
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def process_batch(
    session: Session, batch_size: int, charger: Charger | None = None
) -> tuple[dict[int, str], int]:
    """Claim up to `batch_size` pending rows, apply them and mark each; in the caller's transaction."""
    stmt = (
        select(InboxEvent)
        .where(InboxEvent.status == PENDING)
        .order_by(InboxEvent.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(stmt))
    if not rows:
        return {}, 0
    errors: dict[int, str] = {}
    by_provider: dict[str, list[tuple[int, Any]]] = {st.PROVIDER: [], cargoai.PROVIDER: []}
    for row in rows:
        try:
            by_provider[row.provider].append((row.id, _PARSERS[row.provider](row.body)))
        except KeyError:
            errors[row.id] = f"no processor for provider {row.provider!r}"
        except (st.PushError, cargoai.CallbackError) as exc:
            errors[row.id] = str(exc)
    received = {row.id: row.received_at for row in rows}
    appliers: dict[str, Applier] = {
        st.PROVIDER: lambda s, items: _apply_and_charge(s, items, charger, received),
        cargoai.PROVIDER: apply_callbacks,
    }
    outcomes: dict[int, str] = {row_id: "failed" for row_id in errors}
    operations = 0
    for provider, items in by_provider.items():
        if items:
            applied, created, delivered = _apply_isolating_poison(session, items, errors, appliers[provider])
            outcomes |= applied
            operations += created
            count_delivered(session, provider, delivered)
    _mark(session, rows, outcomes, errors)
    return outcomes, operations


_PARSERS: dict[str, Callable[[bytes], Any]] = {
    st.PROVIDER: st.parse_push,
    cargoai.PROVIDER: cargoai.parse_callback,
}
Applier = Callable[[Session, list[tuple[int, Any]]], BatchEffects]


def _apply_isolating_poison(
    session: Session, items: list[tuple[int, Any]], errors: dict[int, str], apply: Applier
) -> tuple[dict[int, str], int, int]:
    """Apply the batch in one go; if the database refuses it, retry row by row to find the culprit."""
    try:
        with session.begin_nested():
            effects = apply(session, items)
        return effects.outcomes, len(effects.operations), _deliveries(effects)
    except Exception as exc:
        if is_retryable(exc):
            raise
        log.warning("batch of %d failed (%s); applying row by row", len(items), exc)
    outcomes: dict[int, str] = {}
    created = delivered = 0
    for row_id, item in items:
        try:
            with session.begin_nested():
                effects = apply(session, [(row_id, item)])
            outcomes |= effects.outcomes
            created += len(effects.operations)
            delivered += _deliveries(effects)
        except Exception as exc:
            if is_retryable(exc):
                raise
            outcomes[row_id] = "failed"
            errors[row_id] = f"{exc.__class__.__name__}: {exc}"
    return outcomes, created, delivered


def _deliveries(effects: BatchEffects) -> int:
    return sum(t["kind"] == "transition" and t["to_status"] == "delivered" for t in effects.transitions)


def count_delivered(session: Session, provider: str, delivered: int) -> None:
    """Keep the number of deliveries as a running total, so reports never count shipments."""
    if delivered:
        from lifecycle.accounting.ledger import add_to_total

        add_to_total(session, provider, "shipments", "all", "delivered", delivered)


def _apply_and_charge(
    session: Session,
    pushes: list[tuple[int, st.Push]],
    charger: Charger | None,
    received: dict[int, datetime],
) -> BatchEffects:
    effects = apply_pushes(session, pushes, collect_cycles=charger is not None, received=received)
    if charger is not None and effects.billable:
        charger(session, effects.billable)
    return effects


def _mark(session: Session, rows: list[InboxEvent], outcomes: dict[int, str], errors: dict[int, str]) -> None:
    now = utcnow()
    for row in rows:
        outcome = outcomes.get(row.id, "failed")
        row.status = FAILED if outcome == "failed" else PROCESSED
        row.outcome = outcome
        row.error = errors.get(row.id)
        row.processed_at = now


def pending_older_than(session: Session, seconds: float) -> int:
    cutoff = utcnow() - timedelta(seconds=seconds)
    stmt = select(func.count()).where(InboxEvent.status == PENDING, InboxEvent.received_at < cutoff)
    return session.scalar(stmt) or 0


def requeue_failed(session: Session, ids: list[int] | None = None) -> int:
    """Put failed rows back to pending (after a fix), all of them or the given ids."""
    stmt = update(InboxEvent).where(InboxEvent.status == FAILED)
    if ids:
        stmt = stmt.where(InboxEvent.id.in_(ids))
    return session.execute(stmt.values(status=PENDING, error=None, outcome=None)).rowcount or 0
