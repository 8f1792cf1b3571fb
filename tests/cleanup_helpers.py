"""Helpers for the scheduled-job tests: shipments in a given state, and running one job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from lifecycle.cleanup.models import JobAlert, JobRun
from lifecycle.cleanup.registry import FUNCTIONS
from lifecycle.cleanup.runs import JobContext, run_job
from lifecycle.extensions import db
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def add_shipment(number: str, **fields: Any) -> int:
    values: dict[str, Any] = {
        "provider": "17track", "number": number, "carrier": 3011, "status": "in_transit",
        "tracking": "tracking", "registered_at": datetime(2026, 10, 1, tzinfo=UTC), **fields,
    }  # fmt: skip
    with db.new_session() as session, session.begin():
        shipment = Shipment(**values)
        session.add(shipment)
        session.flush()
        return shipment.id


def run(app: Any, name: str, *, dry_run: bool = False, collaborators: dict | None = None,
        clock: Any = None, progress: Any = None, **settings: Any):  # type: ignore[no-untyped-def]  # fmt: skip
    """Run one job as beat would, with settings overridden for this run (and its own clock)."""
    config = app.config["SETTINGS"].model_copy(update=settings)
    context = JobContext(db.new_session, config, dry_run=dry_run, collaborators=collaborators or {},
                         progress=progress)  # fmt: skip
    if clock is not None:
        context.clock, context.started = clock, clock()
    with app.app_context():
        return run_job(name, FUNCTIONS[name], context)


def shipment(number: str) -> Shipment:
    with db.new_session() as session:
        return session.scalars(select(Shipment).where(Shipment.number == number)).one()


def operations(kind: str | None = None) -> list[Operation]:
    with db.new_session() as session:
        stmt = select(Operation).order_by(Operation.id)
        return list(session.scalars(stmt.where(Operation.kind == kind) if kind else stmt))


def runs(job: str) -> list[JobRun]:
    with db.new_session() as session:
        return list(session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def alerts(job: str | None = None) -> list[JobAlert]:
    with db.new_session() as session:
        stmt = select(JobAlert).order_by(JobAlert.id)
        return list(session.scalars(stmt.where(JobAlert.job == job) if job else stmt))


@contextmanager
def shipment_reads() -> Iterator[list[str]]:
    """The SELECTs on `shipments` run meanwhile (lower-cased, one line each): how a job reads them."""
    statements: list[str] = []

    def seen(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        flat = " ".join(statement.split()).lower()
        if flat.startswith("select") and "from shipments" in flat:
            statements.append(flat)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
