"""Group commit for webhook bodies.

Each request hands its body to one writer thread per process and waits. The writer inserts
everything that is waiting in one multi-row INSERT and one COMMIT, then wakes the requests. A
request is still acknowledged only after its own row is durable (invariant 1), but concurrent
requests share the cost of the commit, which is what bounds a one-commit-per-request receiver.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.inbox.models import InboxEvent

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    provider: str
    body: bytes
    done: Future[int] = field(default_factory=Future)


class InboxWriter:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        on_committed: Callable[[], None] = lambda: None,
        max_batch: int = 500,
    ) -> None:
        self._session_factory = session_factory
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._lock = threading.Lock()
        self._owner_pid: int | None = None

    def write(self, provider: str, body: bytes, timeout: float = 15.0) -> int:
        """Store one body durably and return its inbox id; raises if it could not be committed."""
        self._ensure_thread()
        pending = _Pending(provider, body)
        self._queue.put(pending)
        return pending.done.result(timeout=timeout)

    def _ensure_thread(self) -> None:
        # Threads do not survive fork (gunicorn workers), so each process starts its own.
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid != os.getpid():
                self._queue = queue.Queue()
                threading.Thread(target=self._run, name="inbox-writer", daemon=True).start()
                self._owner_pid = os.getpid()

    def _take_batch(self) -> list[_Pending]:
        batch = [self._queue.get()]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                ids = self._commit(batch)
            except Exception as exc:  # the requests answer 503 and the provider retries
                log.exception("inbox write failed for %d webhook(s)", len(batch))
                for pending in batch:
                    pending.done.set_exception(exc)
                continue
            for pending, row_id in zip(batch, ids, strict=True):
                pending.done.set_result(row_id)
            self._notify()

    def _commit(self, batch: list[_Pending]) -> list[int]:
        now = utcnow()
        rows = [{"provider": p.provider, "body": p.body, "received_at": now} for p in batch]
        with self._session_factory() as session:
            stmt = insert(InboxEvent).returning(InboxEvent.id, sort_by_parameter_order=True)
            ids = list(session.scalars(stmt, rows))
            session.commit()
        return ids

    def _notify(self) -> None:
        try:
            self._on_committed()
        except Exception:  # a failed signal loses nothing: the sweeper finds pending rows
            log.exception("could not signal the workers")
