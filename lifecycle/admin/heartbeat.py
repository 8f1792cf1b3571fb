"""Whether workers and beat are alive, and what the scheduled jobs last did (lifecycle.cleanup rows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.cleanup.models import Heartbeat, JobAlert, JobRun

SHOWN = 20


def heartbeats(session: Session, silent_after: timedelta, now: datetime) -> list[dict[str, Any]]:
    """Each worker and beat process's last beat, the most recent first; silent past `silent_after`."""
    stmt = select(Heartbeat).order_by(Heartbeat.beat_at.desc()).limit(SHOWN)
    return [
        {
            "kind": hb.kind,
            "name": hb.name,
            "host": hb.host,
            "pid": hb.pid,
            "last_beat_at": hb.beat_at,
            "alive": now - hb.beat_at <= silent_after,
        }  # fmt: skip
        for hb in session.scalars(stmt)
    ]


def latest_job_runs(session: Session) -> list[JobRun]:
    """The last run of every job (the (job, id) index makes this one short scan per job)."""
    last_ids = select(func.max(JobRun.id)).group_by(JobRun.job)
    return list(session.scalars(select(JobRun).where(JobRun.id.in_(last_ids)).order_by(JobRun.job)))


def open_job_alerts(session: Session) -> list[JobAlert]:
    stmt = select(JobAlert).where(JobAlert.resolved_at.is_(None)).order_by(JobAlert.id.desc()).limit(SHOWN)
    return list(session.scalars(stmt))
