"""17TRACK's own periodic work, run by the Celery tasks in workers/tasks.py (inside an app context)."""

from __future__ import annotations

from typing import Any

from lifecycle import runtime
from lifecycle.extensions import db
from lifecycle.providers.seventeentrack.reconcile import queue_stale_syncs


def sync_silent() -> dict[str, Any]:
    """Backfill shipments whose pushes stopped arriving (a free gettrackinfo each)."""
    with db.new_session() as session, session.begin():
        queued = queue_stale_syncs(session, runtime.settings().sync_silent_hours)
    if queued:
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return {"queued": queued}
