"""Send claimed stoptrack operations to 17TRACK and apply the per-item answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations import service
from lifecycle.operations.models import Operation
from lifecycle.providers import seventeentrack as st
from lifecycle.providers.client17 import ProviderError, SeventeenTrackClient
from lifecycle.shipments.models import Shipment

# Rejections that still leave the number not tracked at the provider, which is what we wanted.
_STOPPED_ANYWAY = {
    st.ERR_ALREADY_STOPPED: "already stopped",
    st.ERR_NOT_REGISTERED: "not registered at 17TRACK",
}


@dataclass
class FlushReport:
    calls: int = 0
    stopped: int = 0
    failed: int = 0
    retried: int = 0


def flush_stoptrack(
    session_factory: Callable[[], Session],
    client: SeventeenTrackClient,
    batch_size: int = 40,
    max_attempts: int = 20,
) -> FlushReport:
    """Send every due stoptrack, `batch_size` numbers per call, until none is left."""
    report = FlushReport()
    while True:
        with session_factory() as session, session.begin():
            operations = service.claim_ready(session, "17track", service.STOPTRACK, batch_size)
            claimed = [op.id for op in operations]
        if not claimed:
            return report
        report.calls += 1
        _send(session_factory, client, claimed, max_attempts, report)


def _send(
    session_factory: Callable[[], Session],
    client: SeventeenTrackClient,
    operation_ids: list[int],
    max_attempts: int,
    report: FlushReport,
) -> None:
    with session_factory() as session, session.begin():
        operations = [session.get_one(Operation, op_id) for op_id in operation_ids]
        body = [_item(op) for op in operations]
    try:
        data = client.call("stoptrack", body)
    except ProviderError as exc:
        with session_factory() as session, session.begin():
            operations = [session.get_one(Operation, op_id) for op_id in operation_ids]
            service.retry_later(operations, str(exc), max_attempts, floor=1.0 if exc.transient else 60.0)
            report.retried += len(operations)
        return
    with session_factory() as session, session.begin():
        operations = [session.get_one(Operation, op_id) for op_id in operation_ids]
        _apply_answer(session, operations, data, max_attempts, report)


def _item(operation: Operation) -> dict[str, object]:
    # Carrier 0 means "auto-detected and not known yet": let 17TRACK match on the number.
    if operation.carrier:
        return {"number": operation.number, "carrier": operation.carrier}
    return {"number": operation.number}


def _apply_answer(
    session: Session, operations: list[Operation], data: dict, max_attempts: int, report: FlushReport
) -> None:
    by_number = {op.number: op for op in operations}
    answered: set[str] = set()
    for item in data.get("accepted") or []:
        operation = by_number.get(str(item.get("number")))
        if operation is not None:
            answered.add(operation.number)
            _mark_stopped(session, operation, 0, "accepted")
            report.stopped += 1
    for item in data.get("rejected") or []:
        operation = by_number.get(str(item.get("number")))
        if operation is None:
            continue
        answered.add(operation.number)
        error = item.get("error") or {}
        code, message = error.get("code"), error.get("message")
        if code in _STOPPED_ANYWAY:
            _mark_stopped(session, operation, code, f"{_STOPPED_ANYWAY[code]}: {message}")
            report.stopped += 1
        else:
            _mark_rejected(session, operation, code, message)
            report.failed += 1
    unanswered = [op for op in operations if op.number not in answered]
    service.retry_later(unanswered, "no per-item answer from 17TRACK", max_attempts, floor=1.0)
    report.retried += len(unanswered)


def _mark_stopped(session: Session, operation: Operation, code: int, message: str) -> None:
    service.settle(operation, code, message, ok=True)
    shipment = session.get(Shipment, operation.shipment_id) if operation.shipment_id else None
    if shipment is not None and shipment.tracking in ("stopping", "tracking", "pending"):
        shipment.tracking = "stopped"
        shipment.stopped_at = utcnow()


def _mark_rejected(session: Session, operation: Operation, code: int | None, message: str | None) -> None:
    service.settle(operation, code, message, ok=False)
    shipment = session.get(Shipment, operation.shipment_id) if operation.shipment_id else None
    if shipment is not None:
        if shipment.tracking == "stopping":
            shipment.tracking = "tracking"
        shipment.last_error = f"stoptrack rejected: {code} {message}"
