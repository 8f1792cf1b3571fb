"""Send due outbox operations to 17TRACK in batches and apply the per-item answers.

Claim (commit) → call → settle (commit): no database lock is held during the HTTP call, and an
operation whose worker dies in between is given back by the sweeper after its lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.accounting import service as accountant
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.periods import next_month_start
from lifecycle.accounting.rules import BillableEvent
from lifecycle.db import utcnow
from lifecycle.operations import pause, service
from lifecycle.operations.models import PENDING, Operation
from lifecycle.providers.base import ProviderError, SendReport, calls_now
from lifecycle.providers.seventeentrack import billing as events17
from lifecycle.providers.seventeentrack.client import SeventeenTrackClient
from lifecycle.providers.seventeentrack.kinds import DONE, ERR_DAILY_LIMIT, HOLD, KINDS, QUOTA_ERRORS, Kind
from lifecycle.shipments.models import Shipment

PROVIDER = "17track"


@dataclass
class Sender:
    session_factory: Callable[[], Session]
    client: SeventeenTrackClient
    batch_size: int = 40
    max_attempts: int = 20
    # The accountant: charges each billable answer and holds registrations at 100% of the plan.
    account: Account | None = None
    thresholds: tuple[int, ...] = ()
    allow_overage: bool = False
    report: SendReport = field(default_factory=SendReport)

    def flush(
        self, max_seconds: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> SendReport:
        """Send due operations, one call per kind per round, until none is left, time is up or
        `should_stop()` (the send lock was lost: another sender may be running now).

        `report.more` says whether work was left when it stopped (the caller signals again).
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        with self.session_factory() as session, session.begin():
            service.reclaim_abandoned(session, PROVIDER, self.client.timeout)
        while self._send_one_round(should_stop):
            if deadline is not None and time.monotonic() > deadline:
                self.report.more = True
                break
        return self.report

    def _send_one_round(self, should_stop: Callable[[], bool] | None) -> bool:
        """Calls of each kind; False when nothing was sent, or when told to stop (with `more`)."""
        sent = False
        for kind in KINDS.values():
            if should_stop is not None and should_stop():
                self.report.more = True
                return False
            allowed = calls_now(self.client, self.report)
            if not allowed:
                return False  # run again when the limiter frees a slot (report.retry_after)
            sent = self._send_batches(kind, allowed) or sent
        return sent

    def _send_batches(self, kind: Kind, allowed: int) -> bool:
        """Up to `allowed` calls (the limiter's free slots), in flight together: the task waits for the
        slowest answer, not for their sum. Claims and settlements stay on this thread, one
        transaction each, and each answer is settled as soon as it is back (a worker that dies
        while one call hangs has recorded the others: they are never sent twice)."""
        batches: list[tuple[list[int], list[dict[str, Any]]]] = []
        while len(batches) < allowed:
            batch = self._claim_batch(kind)
            if batch is None:
                break
            batches.append(batch)
        if not batches:
            return False
        if len(batches) == 1:
            claimed, items = batches[0]
            self._settle(kind, claimed, self._call(kind, items))
            return True
        unexpected: BaseException | None = None
        with ThreadPoolExecutor(max_workers=len(batches), thread_name_prefix="17track-call") as pool:
            calls = {pool.submit(self._call, kind, items): claimed for claimed, items in batches}
            for done in as_completed(calls):
                try:
                    self._settle(kind, calls[done], done.result())
                except Exception as exc:  # settle the other answers first
                    unexpected = unexpected or exc
        if unexpected is not None:
            raise unexpected
        return True

    def _claim_batch(self, kind: Kind) -> tuple[list[int], list[dict[str, Any]]] | None:
        """The ids and request items of one call's operations, claimed; None when none is due."""
        with self.session_factory() as session, session.begin():
            held = pause.current(session, PROVIDER, kind.name)
            if held:
                self.report.paused[kind.name] = held
                return None
            claimed = self._claim(session, kind)
            if not claimed:
                return None
            return [op.id for op in claimed], [kind.item(op) for op in claimed]

    def _call(self, kind: Kind, items: list[dict[str, Any]]) -> dict[str, Any] | ProviderError:
        try:
            return self.client.call(kind.endpoint, items)
        except ProviderError as exc:
            return exc

    def _settle(self, kind: Kind, claimed: list[int], answer: dict[str, Any] | ProviderError) -> None:
        self.report.calls += 1
        if isinstance(answer, ProviderError):
            self._request_failed(kind, claimed, answer)
            return
        with self.session_factory() as session, session.begin():
            self._apply(session, kind, self._load(session, claimed), answer)

    def _claim(self, session: Session, kind: Kind) -> list[Operation]:
        if kind.name != "register" or self.account is None:
            return service.claim_ready(session, PROVIDER, kind.name, self.batch_size)
        allowance = accountant.registration_allowance(session, self.account, self.allow_overage)
        if allowance == 0:
            self._hold_for_budget(session)
            return []
        limit = self.batch_size if allowance is None else min(self.batch_size, allowance)
        claimed = service.claim_ready(session, PROVIDER, kind.name, limit)
        if allowance is None:
            return claimed
        # A number with a translation language costs 2: send only what the plan still covers.
        kept, spent = [], 0
        for op in claimed:
            spent += accountant.register_units(op.payload)
            if spent <= allowance:
                kept.append(op)
            else:
                service.release(op)
        return kept

    def _hold_for_budget(self, session: Session) -> None:
        assert self.account is not None
        until = next_month_start(utcnow(), self.account.tz)
        reason = "plan quota used up (budget guard); allow overage with `manage.py quota --allow-overage`"
        pause.pause(session, PROVIDER, "register", 0, reason, until)
        self.report.paused["register"] = {"reason": reason, "until": until.isoformat()}

    def _load(self, session: Session, ids: list[int]) -> list[Operation]:
        """The operations, in claim order."""
        found = {op.id: op for op in session.scalars(select(Operation).where(Operation.id.in_(ids)))}
        return [found[op_id] for op_id in ids]

    def _request_failed(self, kind: Kind, ids: list[int], exc: ProviderError) -> None:
        with self.session_factory() as session, session.begin():
            operations = self._load(session, ids)
            if exc.answer_lost:
                # Remembered across later tries: if 17TRACK then says "already registered", it was
                # this call that registered the number, and it is charged (accounting/events17.py).
                for op in operations:
                    if op.kind == "register":
                        op.payload = {**op.payload, "answer_lost": True}
            if exc.code in QUOTA_ERRORS:
                self._hold(session, kind, operations, exc.code, str(exc))
                return
            floor = 1.0 if exc.transient else 60.0
            service.retry_later(operations, str(exc), self.max_attempts, floor)
            self.report.retried += len(operations)

    def _apply(self, session: Session, kind: Kind, operations: list[Operation], data: dict[str, Any]) -> None:
        by_number = {op.number: op for op in operations}
        # One SELECT for the call's shipments, not one per number.
        ids = {op.shipment_id for op in operations if op.shipment_id}
        shipments = (
            {s.id: s for s in session.scalars(select(Shipment).where(Shipment.id.in_(ids)))} if ids else {}
        )
        billable: list[BillableEvent] = []
        for item in data.get("accepted") or []:
            op = by_number.pop(str(item.get("number")), None)
            if op is not None:
                shipment = shipments.get(op.shipment_id)  # type: ignore[arg-type]
                billable += events17.for_answer(op, shipment, item)
                kind.accept(session, op, shipment, item)
                service.settle(op, 0, "accepted", ok=True)
                self.report.done += 1
                self.report.pulled += kind.feeds_inbox
        held: list[tuple[Operation, int, str]] = []
        for item in data.get("rejected") or []:
            op = by_number.pop(str(item.get("number")), None)
            if op is None:
                continue
            error = item.get("error") or {}
            code, message = error.get("code"), str(error.get("message") or "")
            shipment = shipments.get(op.shipment_id)  # type: ignore[arg-type]
            billable += events17.for_answer(op, shipment, item, code)
            verdict = kind.reject(session, op, shipment, code, message)
            if verdict == HOLD:
                held.append((op, code, message))
                continue
            service.settle(op, code, message, ok=verdict == DONE)
            self.report.done += verdict == DONE
            self.report.failed += verdict != DONE
        for op, code, message in held:
            self._hold(session, kind, [op], code, message)
        if self.account is not None and billable:
            accountant.charge(session, self.account, billable, self.thresholds)
        unanswered = list(by_number.values())
        service.retry_later(unanswered, "no per-item answer from 17TRACK", self.max_attempts, floor=1.0)
        self.report.retried += len(unanswered)

    def _hold(
        self, session: Session, kind: Kind, operations: list[Operation], code: int, message: str
    ) -> None:
        until = pause.next_utc_midnight() if code == ERR_DAILY_LIMIT else None
        pause.pause(session, PROVIDER, kind.name, code, message, until)
        for op in operations:
            # Not the operation's fault: it waits, queued, without spending an attempt.
            op.status = PENDING
            op.attempts = max(0, op.attempts - 1)
            op.result_code, op.result_message = code, message
        self.report.held += len(operations)
