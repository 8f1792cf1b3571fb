"""Running a job: one holder at a time, a run row, bounded batches, alerts raised once.

Every job is a function of a `JobContext`. It adds what it did to `context.counts` as it goes, so a
run that fails half-way still records what it had done before the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.cleanup.models import JobAlert, JobRun
from lifecycle.db import utcnow
from lifecycle.locks import Held, singleton
from lifecycle.metrics import JOB_RUNS
from lifecycle.sqlutil import insert_ignoring_conflicts

log = logging.getLogger(__name__)

# Numbers listed in a run's counts (dry runs and reports): enough to act on, bounded in size.
EXAMPLES = 50
LOCK_LOST = (
    "stopped between batches: the job's lock was lost (its lease could not be renewed); "
    "what was done is kept and the next run goes on"
)


@dataclass
class JobContext:
    session_factory: Callable[[], Session]
    settings: Settings
    dry_run: bool = False
    now: datetime = field(default_factory=utcnow)
    # Provider collaborators, built on first use (a job that needs none never builds them).
    collaborators: dict[str, Callable[[], Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    # The time budget's clock (a test passes one it moves itself).
    clock: Callable[[], float] = time.monotonic
    # Told (rows done, rows in this pass) after each batch, for `cleanup JOB`'s bar on a terminal;
    # None (beat, scripts) spares the count a total needs.
    progress: Callable[[int, int], None] | None = None
    # The job's lock, set by run_job: a lease that could not be renewed (`lost`) stops the run.
    lock: Held | None = None
    started: float = -1.0

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    def tally(self, key: str, amount: int = 1) -> None:
        """Count an action: as done, or as `would_<key>` in a dry run."""
        self.add(f"would_{key}" if self.dry_run else key, amount)

    def example(self, key: str, item: dict[str, Any]) -> None:
        """Keep a few of the rows a job acted on (or would act on) for the report."""
        items = self.counts.setdefault(key, [])
        if len(items) < EXAMPLES:
            items.append(item)

    def must_stop(self) -> bool:
        """Asked between batches. A run stops after CLEANUP_MAX_SECONDS, or as soon as its lock is
        lost (another process may hold it now), and says so; the next run continues."""
        if self.lock is not None and self.lock.lost:
            self.counts["lock_lost"] = self.counts["more"] = True
            return True
        if self.clock() - self.started < self.settings.cleanup_max_seconds:
            return False
        self.counts["more"] = True
        return True

    def get(self, name: str) -> Any:
        return self.collaborators[name]()


def run_job(name: str, function: Callable[[JobContext], None], context: JobContext) -> dict[str, Any]:
    """Run a job under its lock and record the run; another holder means this one is skipped."""
    config = context.settings
    lease = config.cleanup_max_seconds * 2 + 60
    with singleton(f"job-{name}", config.shared_limiter_url, config.var_dir / "locks", lease) as mine:
        if not mine:
            log.info("job %s skipped: another process is running it", name)
            JOB_RUNS.labels(job=name, result="skipped").inc()
            return {"skipped": "another process is running this job"}
        context.lock = mine
        run_id = _start(context, name)
        try:
            function(context)
        except Exception as exc:
            _finish(context, run_id, f"{exc.__class__.__name__}: {exc}"[:2000])
            JOB_RUNS.labels(job=name, result="error").inc()
            raise
        # Not a completed run: another process may have run the job meanwhile, so the next run
        # starts from the last complete one (every job is idempotent).
        _finish(context, run_id, LOCK_LOST if mine.lost else None)
        JOB_RUNS.labels(job=name, result="error" if mine.lost else "ok").inc()
    return context.counts


def _start(context: JobContext, name: str) -> int:
    with context.session_factory() as session, session.begin():
        run = JobRun(job=name, started_at=utcnow(), counts={}, dry_run=context.dry_run)
        session.add(run)
        session.flush()
        return run.id


def _finish(context: JobContext, run_id: int, error: str | None) -> None:
    with context.session_factory() as session, session.begin():
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(finished_at=utcnow(), counts=context.counts, error=error)
        )


def batches(
    context: JobContext, stmt: Select[Any], id_column: Any, *, lock: bool = True
) -> Iterator[tuple[Session, list[Any]]]:
    """Rows of `stmt` in id order, `CLEANUP_BATCH_SIZE` at a time, each batch its own transaction.

    Keyset pages (id > last seen), so rows a batch left unchanged (a dry run, a report) are not
    read again, and the cost of a page does not grow with the table. Rows are locked with
    SKIP LOCKED on PostgreSQL, so two machines running the same job at once never touch one row twice.
    """
    size = context.settings.cleanup_batch_size
    after = done = 0
    total: int | None = None
    while not context.must_stop():
        with context.session_factory() as session, session.begin():
            if context.progress is not None and total is None:
                total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            page = stmt.where(id_column > after).order_by(id_column).limit(size)
            if lock and not context.dry_run:
                page = page.with_for_update(skip_locked=True)
            rows = list(session.scalars(page))
            if not rows:
                return
            yield session, rows
            after = getattr(rows[-1], id_column.key)
        done += len(rows)
        if context.progress is not None:
            context.progress(done, max(done, total or 0))
        if len(rows) < size:
            return


def describe(shipment: Any) -> dict[str, Any]:
    """A shipment as listed in a run's report."""
    return {
        "provider": shipment.provider,
        "number": shipment.number,
        "carrier": shipment.carrier or None,
        "status": shipment.status,
        "tracking": shipment.tracking,
        "last_event_at": shipment.last_event_at.isoformat() if shipment.last_event_at else None,
    }


def raise_alert(session: Session, job: str, key: str, message: str, details: dict[str, Any]) -> bool:
    """Record an alert once per open condition; True if it is new (and logged now)."""
    row = {"job": job, "key": key, "message": message, "details": details, "raised_at": utcnow()}
    raised = insert_ignoring_conflicts(session, JobAlert, [row], ["key"]) == 1
    if raised:
        log.warning("alert (%s): %s", job, message)
    return raised


def resolve_alert(session: Session, key: str) -> bool:
    """Close an open alert; the key is freed, so the condition alerts again if it comes back."""
    alert = session.scalars(select(JobAlert).where(JobAlert.key == key)).first()
    if alert is None:
        return False
    alert.resolved_at = utcnow()
    alert.key = f"{key}#resolved-{alert.id}"
    return True


def open_alerts(session: Session, limit: int = 20) -> list[JobAlert]:
    stmt = select(JobAlert).where(JobAlert.resolved_at.is_(None)).order_by(JobAlert.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def last_runs(session: Session, names: list[str]) -> dict[str, JobRun]:
    """The latest run of each job (one indexed lookup per job)."""
    runs = {}
    for name in names:
        stmt = select(JobRun).where(JobRun.job == name).order_by(JobRun.id.desc()).limit(1)
        run = session.scalars(stmt).first()
        if run is not None:
            runs[name] = run
    return runs


def last_completed_run(session: Session, name: str) -> JobRun | None:
    """The latest real (not dry) run that finished without an error."""
    stmt = (
        select(JobRun)
        .where(
            JobRun.job == name,
            JobRun.dry_run.is_(False),
            JobRun.finished_at.is_not(None),
            JobRun.error.is_(None),
        )
        .order_by(JobRun.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()
