"""Retry policy: failed inbox rows and exhausted operations retried with backoff, then left failed."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from lifecycle.cleanup.models import InboxRetry
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from tests.cleanup_helpers import NOW, run

LIMITS = {"retry_failed_limit": 2, "retry_backoff_minutes": 30, "operation_max_attempts": 5}


def add_failed_row() -> int:
    with db.new_session() as session, session.begin():
        row = InboxEvent(provider="17track", body=b"{}", status="failed", outcome="failed",
                         error="KeyError: 'data'", received_at=NOW, processed_at=NOW)  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def fail_again(row_id: int, when) -> None:  # type: ignore[no-untyped-def]
    with db.new_session() as session, session.begin():
        row = session.get_one(InboxEvent, row_id)
        row.status, row.error, row.processed_at = "failed", "KeyError: 'data'", when


def inbox_row(row_id: int) -> tuple[str, int]:
    with db.new_session() as session:
        retry = session.get(InboxRetry, row_id)
        return session.get_one(InboxEvent, row_id).status, (retry.attempts if retry else 0)


def test_a_failed_inbox_row_is_retried_with_backoff_then_stays_failed(app):
    with app.app_context():
        row_id = add_failed_row()
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        assert run(app, "retry-failed", **LIMITS)["inbox_waiting"] == 1
    assert inbox_row(row_id) == ("failed", 0)
    with time_machine.travel(NOW + timedelta(minutes=31), tick=False):
        assert run(app, "retry-failed", **LIMITS)["inbox_requeued"] == 1
    assert inbox_row(row_id) == ("pending", 1)
    fail_again(row_id, NOW + timedelta(minutes=32))
    with time_machine.travel(NOW + timedelta(minutes=32 + 45), tick=False):
        assert run(app, "retry-failed", **LIMITS)["inbox_waiting"] == 1  # second wait is 60 min
    with time_machine.travel(NOW + timedelta(minutes=32 + 61), tick=False):
        assert run(app, "retry-failed", **LIMITS)["inbox_requeued"] == 1
    fail_again(row_id, NOW + timedelta(hours=2))
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        counts = run(app, "retry-failed", **LIMITS)
    assert counts["inbox_given_up"] == 1 and "inbox_requeued" not in counts
    assert inbox_row(row_id) == ("failed", 2)


def test_a_dry_run_requeues_nothing(app):
    with app.app_context():
        row_id = add_failed_row()
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert run(app, "retry-failed", dry_run=True, **LIMITS)["would_inbox_requeued"] == 1
    assert inbox_row(row_id) == ("failed", 0)


def add_operation(key: str, attempts: int, code: int | None) -> int:
    with db.new_session() as session, session.begin():
        op = Operation(provider="17track", kind="stoptrack", number=key, carrier=3011, idempotency_key=key,
                       status="failed", attempts=attempts, result_code=code, result_message="timeout",
                       completed_at=NOW)  # fmt: skip
        session.add(op)
        session.flush()
        return op.id


def test_exhausted_operations_get_more_tries_but_provider_rejections_do_not(app):
    with app.app_context():
        exhausted = add_operation("exhausted", attempts=5, code=None)
        rejected = add_operation("rejected", attempts=1, code=-18019909)
        retried_enough = add_operation("retried-enough", attempts=7, code=None)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        counts = run(app, "retry-failed", **LIMITS)
    assert counts["operations_requeued"] == 1 and counts["operations_given_up"] == 1
    with db.new_session() as session:
        statuses = dict(session.execute(select(Operation.id, Operation.status)).all())
    assert statuses == {exhausted: "pending", rejected: "failed", retried_enough: "failed"}
