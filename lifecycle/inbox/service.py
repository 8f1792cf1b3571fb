"""Claiming and processing inbox rows in batches (invariants 2, 4 and 7)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from lifecycle import metrics
from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.inbox.models import FAILED, PENDING, PROCESSED, InboxEvent
from lifecycle.providers import registry
from lifecycle.providers.base import BodyError, ParsedBody, Provider
from lifecycle.providers.validation import readable, readable_message
from lifecycle.shipments.apply import BatchEffects, apply_bodies
from lifecycle.sqlutil import FreshStatistics, driver_cursor, is_psycopg, is_retryable

log = logging.getLogger(__name__)

# One statement whatever the batch size, so psycopg prepares it once (not one UPDATE per row).
_PG_MARK = (
    "UPDATE inbox SET status = marked.status, outcome = marked.outcome, error = marked.error,"
    " processed_at = %s"
    " FROM unnest(%b::bigint[], %b::varchar[], %b::varchar[], %b::text[])"
    " AS marked(id, status, outcome, error)"
    " WHERE inbox.id = marked.id"
)
# The tables a drain grows: a backlog drained into a young database outgrows their statistics.
_STATISTICS = FreshStatistics(("inbox", "shipments", "transitions", "operations", "outbound_events"))
# The claimed rows as plain columns: nothing of them is changed through the ORM.
_CLAIMED = (InboxEvent.id, InboxEvent.provider, InboxEvent.body, InboxEvent.received_at)


@dataclass
class DrainReport:
    batches: int = 0
    processed: int = 0
    failed: int = 0
    operations_created: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    more: bool = False  # stopped by its time budget with rows perhaps left

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
    on_batch: Callable[[int], object] = lambda rows: None,
    max_seconds: float | None = None,
) -> DrainReport:
    """Process pending inbox rows batch after batch until none is left (or max_batches, or once a
    batch ends after `max_seconds`: then `more` is set, for the caller to go on in a new task).

    `on_operations` is called after each committed batch that queued provider operations, so
    stoptracks go out while a long stream of pushes is still being drained.
    """
    report = DrainReport()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    for _ in range(max_batches):
        started = time.perf_counter()
        outcomes, operations = _process_batch_with_retry(session_factory, batch_size, charger)
        if not outcomes:
            break
        _STATISTICS.refresh(session_factory)
        metrics.DRAIN_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.count_outcomes(outcomes)
        report.add(outcomes, operations)
        on_batch(len(outcomes))
        if operations:
            on_operations()
        if deadline is not None and time.monotonic() >= deadline:
            report.more = True  # at least one batch per call: every slice makes progress
            break
    return report


def _process_batch_with_retry(
    session_factory: Callable[[], Session], batch_size: int, charger: Charger | None
) -> tuple[dict[int, str], int]:
    for attempt in range(5):
        try:
            with session_factory() as session, session.begin():
                return process_batch(session, batch_size, charger)
        except Exception as exc:
            if is_retryable(exc):
                if attempt == 4:
                    raise
                # Another worker holds locks we need (deadlock victim): the whole batch rolls back.
                time.sleep(0.05 * (attempt + 1))
                continue
            if not_the_rows_fault(exc):
                raise
            # Something no savepoint contained (a failing commit, say): find the row that causes it.
            log.warning("inbox batch failed (%s); processing its rows one by one", readable(exc))
            return _process_rows_alone(session_factory, batch_size, charger)
    raise AssertionError("unreachable")


def _process_rows_alone(
    session_factory: Callable[[], Session], batch_size: int, charger: Charger | None
) -> tuple[dict[int, str], int]:
    """Each pending row in a transaction of its own; a row that still fails is marked failed alone."""
    with session_factory() as session:
        ids = list(session.scalars(_pending().with_only_columns(InboxEvent.id).limit(batch_size)))
    outcomes: dict[int, str] = {}
    operations = 0
    for row_id in ids:
        try:
            with session_factory() as session, session.begin():
                done, created = process_batch(session, 1, charger, only_id=row_id)
        except Exception as exc:
            if not_the_rows_fault(exc):
                raise
            done, created = _mark_failed_alone(session_factory, row_id, exc), 0
        outcomes |= done
        operations += created
    return outcomes, operations


def _mark_failed_alone(session_factory: Callable[[], Session], row_id: int, exc: Exception) -> dict[int, str]:
    log.warning("inbox row %d failed on its own: %s", row_id, readable(exc))
    with session_factory() as session, session.begin():
        marked = session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == row_id, InboxEvent.status == PENDING)
            .values(status=FAILED, outcome="failed", error=readable(exc), processed_at=utcnow())
        ).rowcount
    return {row_id: "failed"} if marked else {}


def not_the_rows_fault(exc: BaseException) -> bool:
    """A deadlock, a database down or unreachable, a schema behind the code: retry later, mark nothing."""
    infrastructure = isinstance(exc, (OperationalError, InterfaceError))
    return infrastructure or is_retryable(exc) or bool(getattr(exc, "connection_invalidated", False))


def _pending() -> Select[tuple[InboxEvent]]:
    return select(InboxEvent).where(InboxEvent.status == PENDING).order_by(InboxEvent.id)


def process_batch(
    session: Session, batch_size: int, charger: Charger | None = None, only_id: int | None = None
) -> tuple[dict[int, str], int]:
    """Claim up to `batch_size` pending rows, apply them and mark each; in the caller's transaction."""
    stmt = _pending().with_only_columns(*_CLAIMED).limit(batch_size).with_for_update(skip_locked=True)
    if only_id is not None:
        stmt = stmt.where(InboxEvent.id == only_id)
    rows = list(session.execute(stmt))
    if not rows:
        return {}, 0
    errors: dict[int, str] = {}
    by_provider = _parse(rows, errors)
    received = {row.id: row.received_at for row in rows}
    outcomes: dict[int, str] = {row_id: "failed" for row_id in errors}
    operations = 0
    for name, bodies in by_provider.items():
        adapter = registry.get(name)

        def apply(session: Session, items: list[tuple[int, ParsedBody]]) -> BatchEffects:
            return _apply_and_charge(session, adapter, items, charger, received)  # noqa: B023

        applied, created, delivered = _apply_isolating_poison(session, bodies, errors, apply)
        outcomes |= applied
        operations += created
        count_delivered(session, name, delivered)
    _mark(session, rows, outcomes, errors)
    return outcomes, operations


def _parse(rows: list[Row[Any]], errors: dict[int, str]) -> dict[str, list[tuple[int, ParsedBody]]]:
    """Each row's body as canonical events, by provider; a row that cannot be parsed fails alone."""
    by_provider: dict[str, list[tuple[int, ParsedBody]]] = {}
    for row in rows:
        adapter = registry.find(row.provider)
        if adapter is None:
            errors[row.id] = f"no processor for provider {row.provider!r}"
            continue
        try:
            by_provider.setdefault(row.provider, []).append((row.id, adapter.parse(row.body)))
        except BodyError as exc:
            errors[row.id] = readable_message(exc)
        except Exception as exc:  # whatever else a body provokes, it fails alone (invariant 8)
            errors[row.id] = readable(exc)
    return by_provider


Applier = Callable[[Session, list[tuple[int, ParsedBody]]], BatchEffects]


def _apply_isolating_poison(
    session: Session, items: list[tuple[int, ParsedBody]], errors: dict[int, str], apply: Applier
) -> tuple[dict[int, str], int, int]:
    """Apply the batch in one go; if the database refuses it, retry row by row to find the culprit."""
    try:
        with session.begin_nested():
            effects = apply(session, items)
        return effects.outcomes, len(effects.operations), _deliveries(effects)
    except Exception as exc:
        if not_the_rows_fault(exc):
            raise
        log.warning("batch of %d failed (%s); applying row by row", len(items), readable(exc))
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
            if not_the_rows_fault(exc):
                raise
            outcomes[row_id] = "failed"
            errors[row_id] = readable(exc)
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
    adapter: Provider,
    bodies: list[tuple[int, ParsedBody]],
    charger: Charger | None,
    received: dict[int, datetime],
) -> BatchEffects:
    effects = apply_bodies(session, adapter, bodies, collect_cycles=charger is not None, received=received)
    if charger is not None and effects.billable:
        charger(session, effects.billable)
    return effects


def _mark(session: Session, rows: list[Row[Any]], outcomes: dict[int, str], errors: dict[int, str]) -> None:
    now = utcnow()
    ids = [row.id for row in rows]
    marked = [outcomes.get(row_id, "failed") for row_id in ids]
    statuses = [FAILED if outcome == "failed" else PROCESSED for outcome in marked]
    messages = [errors.get(row_id) for row_id in ids]
    if is_psycopg(session):
        naive_now = now.astimezone(UTC).replace(tzinfo=None)  # as UTCDateTime binds it
        with driver_cursor(session) as cursor:
            cursor.execute(_PG_MARK, (naive_now, ids, statuses, marked, messages))
        return
    params = [
        {"id": row_id, "status": status, "outcome": outcome, "error": error, "processed_at": now}
        for row_id, status, outcome, error in zip(ids, statuses, marked, messages, strict=True)
    ]
    session.execute(update(InboxEvent), params)  # the ORM's bulk UPDATE by primary key


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
