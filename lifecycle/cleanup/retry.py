"""Retry policy for failures: failed inbox rows and exhausted operations get a few more tries.

A failure may be a bug since fixed, a database hiccup or a provider outage longer than the sender's
own backoff. Each failed row is put back RETRY_FAILED_LIMIT times at most, waiting
RETRY_BACKOFF_MINUTES, then twice that, and so on; after the last try it stays `failed` with its
error, listed by `manage.py inbox` / `operations` and the admin pages, never dropped.
An operation the provider answered with a rejection is not retried: the answer would be the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from lifecycle.cleanup.models import InboxRetry
from lifecycle.cleanup.runs import JobContext, batches
from lifecycle.inbox.models import FAILED, PENDING, InboxEvent
from lifecycle.operations import models as operations


def backoff(context: JobContext, tries_so_far: int) -> timedelta:
    return timedelta(minutes=context.settings.retry_backoff_minutes * 2**tries_so_far)


def retry_failures(context: JobContext) -> None:
    """Put failed inbox rows and exhausted operations back in line, within the limit."""
    _retry_inbox(context)
    _retry_operations(context)


def _retry_inbox(context: JobContext) -> None:
    limit = context.settings.retry_failed_limit
    stmt = select(InboxEvent).where(InboxEvent.status == FAILED)
    for session, rows in batches(context, stmt, InboxEvent.id):
        ids = [row.id for row in rows]
        tries = {
            r.inbox_id: r for r in session.scalars(select(InboxRetry).where(InboxRetry.inbox_id.in_(ids)))
        }
        for row in rows:
            retry = tries.get(row.id)
            done = retry.attempts if retry else 0
            if done >= limit:
                context.add("inbox_given_up")
                continue
            if not _due(context, row.processed_at, done):
                context.add("inbox_waiting")
                continue
            context.tally("inbox_requeued")
            if context.dry_run:
                continue
            row.status, row.outcome, row.error = PENDING, None, None
            if retry is None:
                session.add(InboxRetry(inbox_id=row.id, attempts=1, last_retried_at=context.now))
            else:
                retry.attempts, retry.last_retried_at = done + 1, context.now


def _retry_operations(context: JobContext) -> None:
    """Operations failed by running out of attempts (not by a provider's rejection) try once more."""
    config = context.settings
    op = operations.Operation
    stmt = select(op).where(
        op.status == operations.FAILED,
        op.attempts >= config.operation_max_attempts,
        op.result_code.is_(None),  # a provider's answer (a rejection) carries its code
    )
    for _session, rows in batches(context, stmt, op.id):
        for operation in rows:
            # Each retry is one more attempt, so attempts past the sender's limit count the retries.
            done = operation.attempts - config.operation_max_attempts
            if done >= config.retry_failed_limit:
                context.add("operations_given_up")
                continue
            if not _due(context, operation.completed_at, done):
                context.add("operations_waiting")
                continue
            context.tally("operations_requeued")
            if not context.dry_run:
                operation.status, operation.next_attempt_at = operations.PENDING, context.now
                operation.completed_at = None


def _due(context: JobContext, failed_at: datetime | None, tries_so_far: int) -> bool:
    return failed_at is None or failed_at + backoff(context, tries_so_far) <= context.now
