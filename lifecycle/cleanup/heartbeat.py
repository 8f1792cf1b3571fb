"""Worker and beat heartbeats: "no worker has run for N minutes" is a fact, not a guess.

Beat publishes the heartbeat task every HEARTBEAT_INTERVAL_SECONDS; publishing it records beat's
own heartbeat (in the beat process), and whichever worker runs it records the worker's. A worker
row that ages means no worker takes tasks; a beat row that ages means nothing schedules them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery.signals import beat_embedded_init, beat_init, before_task_publish
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lifecycle.cleanup.models import Heartbeat
from lifecycle.cleanup.schedule import HEARTBEAT_TASK
from lifecycle.db import utcnow
from lifecycle.sqlutil import insert_ignoring_conflicts

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

WORKER, BEAT = "worker", "beat"


def record(session_factory: Callable[[], Session], kind: str, name: str) -> None:
    """Insert or refresh this process's heartbeat row."""
    now, host, pid = utcnow(), socket.gethostname(), os.getpid()
    row = {"kind": kind, "name": name[:255], "host": host[:255], "pid": pid, "beat_at": now}
    with session_factory() as session, session.begin():
        if not insert_ignoring_conflicts(session, Heartbeat, [row], ["kind", "name"]):
            session.execute(
                update(Heartbeat)
                .where(Heartbeat.kind == kind, Heartbeat.name == row["name"])
                .values(host=row["host"], pid=pid, beat_at=now)
            )


# Beat counts as silent after this many heartbeat intervals without one (as `manage.py status`).
BEAT_MISSED_HEARTBEATS = 3


def ages(session: Session, now: datetime, settings: Settings) -> dict[str, Any]:
    """Seconds since the newest worker and beat heartbeats, and a sentence each when workers are
    silent past WORKER_STALE_AFTER_SECONDS or beat misses BEAT_MISSED_HEARTBEATS heartbeats (then
    nothing schedules the jobs or the sweeper). What /healthz, `status` and `cleanup --list` show."""
    stale_after = settings.worker_stale_after_seconds
    newest = select(Heartbeat.kind, func.max(Heartbeat.beat_at)).group_by(Heartbeat.kind)
    latest = dict(session.execute(newest).all())
    recent = now - timedelta(seconds=stale_after)
    alive = session.scalar(select(func.count()).where(Heartbeat.kind == WORKER, Heartbeat.beat_at >= recent))
    worker_age = _age(latest.get(WORKER), now)
    beat_age = _age(latest.get(BEAT), now)
    problem = None
    if worker_age is None:
        problem = "no worker has run yet"
    elif worker_age > stale_after:
        problem = f"no worker has run for {int(worker_age // 60)} minutes"
    beat_stale_after = BEAT_MISSED_HEARTBEATS * settings.heartbeat_interval_seconds
    return {
        "worker_heartbeat_age_seconds": worker_age,
        "beat_heartbeat_age_seconds": beat_age,
        "workers": {"alive": alive or 0, "problem": problem},
        "beat": {"problem": _beat_problem(beat_age, beat_stale_after)},
    }


def _beat_problem(age: float | None, stale_after: float) -> str | None:
    if age is None:
        return "beat has not run yet: no scheduled job or sweep is sent"
    if age <= stale_after:
        return None
    silent = f"{int(age // 60)} minutes" if age >= 120 else f"{int(age)} seconds"
    return f"beat has sent nothing for {silent}: scheduled jobs and sweeps are not running"


def _age(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


_in_beat = False


def connect_beat_signals(session_factory: Callable[[], Session], on_beat_start: Callable[[], None]) -> None:
    """In the beat process, record beat's heartbeat whenever it publishes the heartbeat task."""

    def started(**_kwargs: object) -> None:
        global _in_beat
        _in_beat = True
        on_beat_start()

    def published(sender: str | None = None, **_kwargs: object) -> None:
        if not _in_beat or sender != HEARTBEAT_TASK:
            return
        try:
            record(session_factory, BEAT, f"beat@{socket.gethostname()}")
        except Exception as exc:  # the scheduler must keep scheduling with the database down
            log.warning("beat heartbeat not recorded: %s", exc)

    beat_init.connect(started, weak=False, dispatch_uid="lifecycle-beat-init")
    beat_embedded_init.connect(started, weak=False, dispatch_uid="lifecycle-beat-embedded-init")
    before_task_publish.connect(published, weak=False, dispatch_uid="lifecycle-beat-heartbeat")
