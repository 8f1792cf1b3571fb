"""Retention: old processed inbox bodies emptied in batches, nothing else; replay says what it can rebuild."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from lifecycle.cleanup.models import Heartbeat, JobRun
from lifecycle.cleanup.retention import replay_window
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.shipments.models import Transition
from tests.cleanup_helpers import NOW, run, runs
from tests.helpers import delivered, in_transit, post_push

BODY = b'{"event": "TRACKING_UPDATED", "data": {"number": "RR1"}}'


def add_inbox(received_days_ago: float, status: str = "processed") -> int:
    with db.new_session() as session, session.begin():
        row = InboxEvent(provider="17track", body=BODY, status=status,
                         received_at=NOW - timedelta(days=received_days_ago))  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def bodies() -> dict[int, bytes]:
    with db.new_session() as session:
        return dict(session.execute(select(InboxEvent.id, InboxEvent.body).order_by(InboxEvent.id)).all())


def test_old_processed_bodies_are_emptied_in_batches_and_nothing_else(app):
    with app.app_context():
        old = [add_inbox(100 + i) for i in range(7)]
        failed = add_inbox(99, status="failed")
        pending = add_inbox(98, status="pending")
        recent = [add_inbox(10), add_inbox(5)]
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "retention", cleanup_batch_size=3)
    kept = bodies()
    assert counts["inbox_bodies_purged"] == 7 and counts["inbox_bytes_freed"] == 7 * len(BODY)
    assert all(kept[i] == b"" for i in old)
    assert kept[failed] == BODY and kept[pending] == BODY and all(kept[i] == BODY for i in recent)
    # The scan went past the kept rows, but the next run looks at them again from the first one.
    assert counts["scanned_through_id"] == pending and counts["revisit_from_id"] == failed
    with time_machine.travel(NOW + timedelta(days=82), tick=False):
        later = run(app, "retention", cleanup_batch_size=3)
    assert later["inbox_bodies_purged"] == 1 and bodies()[recent[0]] == b""
    assert bodies()[recent[1]] == BODY and later["scanned_through_id"] == recent[0]
    assert later["revisit_from_id"] == failed and bodies()[failed] == BODY


def set_status(row_id: int, status: str) -> None:
    with db.new_session() as session, session.begin():
        session.get_one(InboxEvent, row_id).status = status


def test_a_kept_row_processed_later_is_purged_and_replay_never_counts_a_kept_body_as_gone(app):
    """A failed row the retry job processes after retention passed it is emptied by a later run."""
    with app.app_context():
        old = [add_inbox(100 + i) for i in range(3)]
        failed = add_inbox(99, status="failed")
        pending = add_inbox(99, status="pending")
        after_them = add_inbox(98)
        add_inbox(5)
    with time_machine.travel(NOW, tick=False):
        first = run(app, "retention", cleanup_batch_size=2)
    assert first["inbox_bodies_purged"] == 4 and bodies()[failed] == BODY
    with db.new_session() as session:
        window = replay_window(session)
    # Everything after the newest purged row still has its body: the kept rows are replayable.
    assert window["purged_through_id"] == after_them > pending > failed > old[-1]
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        nothing = run(app, "retention", cleanup_batch_size=2)
    assert nothing["inbox_bodies_purged"] == 0 and nothing["revisit_from_id"] == failed
    set_status(failed, "processed")  # retried by the retry job, applied by a worker
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        second = run(app, "retention", cleanup_batch_size=2)
    assert second["inbox_bodies_purged"] == 1 and bodies()[failed] == b""
    assert second["revisit_from_id"] == pending and bodies()[pending] == BODY
    set_status(pending, "processed")
    with time_machine.travel(NOW + timedelta(hours=3), tick=False):
        third = run(app, "retention", cleanup_batch_size=2)
    assert third["inbox_bodies_purged"] == 1 and third["revisit_from_id"] is None
    assert [i for i, body in bodies().items() if body] == [after_them + 1]
    with db.new_session() as session:
        assert replay_window(session)["purged_through_id"] == after_them


def test_a_dry_run_counts_what_it_would_purge_and_keeps_every_body(app):
    with app.app_context():
        add_inbox(100)
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "retention", dry_run=True)
    assert counts["would_inbox_bodies_purged"] == 1 and set(bodies().values()) == {BODY}
    with db.new_session() as session:
        assert replay_window(session)["complete"] is True


def test_purged_bodies_keep_shipments_and_transitions_and_replay_says_from_when(app, client):
    with time_machine.travel(NOW - timedelta(days=120), tick=False):
        post_push(client, in_transit("RR1"))
        post_push(client, delivered("RR1"))
        with app.app_context():
            inbox.drain(db.new_session, batch_size=10)
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        post_push(client, in_transit("RR2"))
        with app.app_context():
            inbox.drain(db.new_session, batch_size=10)

    def transitions() -> int:
        with db.new_session() as session:
            return session.scalar(select(func.count()).select_from(Transition)) or 0

    before = transitions()
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "retention")
    assert counts["inbox_bodies_purged"] == 2 and transitions() == before
    with db.new_session() as session:
        window = replay_window(session)
    assert window["complete"] is False and window["purged_through_id"] == 2
    assert "replay can rebuild only what arrived after" in window["message"]
    assert (NOW - timedelta(days=120)).strftime("%Y-%m-%d") in window["message"]


def test_job_history_is_trimmed_but_each_jobs_latest_run_is_kept(app):
    from lifecycle.cleanup.heartbeat import WORKER, record

    with time_machine.travel(NOW - timedelta(days=200), tick=False):
        run(app, "retention")
        run(app, "safety-net")
        run(app, "safety-net")
        record(db.new_session, WORKER, "celery@gone")
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "retention")
    assert counts["job_runs_deleted"] == 1 and counts["heartbeats_deleted"] == 1
    assert len(runs("safety-net")) == 1 and len(runs("retention")) == 2
    with db.new_session() as session:
        assert session.scalar(select(func.count()).select_from(Heartbeat)) == 0
        assert session.scalar(select(func.count()).select_from(JobRun)) == 3
