"""Group commit for the async webhook intake (lifecycle/web/asgi.py).

The same group commit as lifecycle/inbox/writer.py, led from the event loop: each request queues
its body with a future and awaits it; one task at a time (the leader) hands everything waiting to
the process's one database thread, which inserts it in one statement (writer._commit: the same
SQL, the same kept connection and retry), and resolves the futures with the ids. A request is
answered 200 only once its own row is committed (invariant 1).

Why a thread at all: the database drivers are blocking, and one thread hop per batch (not per
request) is cheap, whereas a thread per request is what made the threaded intake pay for its
waits and wake-ups in GIL hand-offs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from lifecycle.inbox.writer import _commit, _HeldConnection

log = logging.getLogger(__name__)


class _Queued:
    __slots__ = ("provider", "body", "future")

    def __init__(self, provider: str, body: bytes, future: asyncio.Future[int]) -> None:
        self.provider, self.body, self.future = provider, body, future


class AsyncInboxWriter:
    """One per process and event loop: build it in the process that serves (after the fork)."""

    # An idle connection goes back to the pool after this long: kept across the short gaps
    # between batches (no checkout and pre-ping per batch), not held by a quiet service.
    KEEP_IDLE_SECONDS = 1.0

    def __init__(
        self,
        session_factory: Callable[[], Session],
        on_committed: Callable[[], None] = lambda: None,
        max_batch: int = 500,
        timeout: float = 15.0,
    ) -> None:
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._timeout = timeout
        self._waiting: list[_Queued] = []
        self._leader: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._held = _HeldConnection(session_factory)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")

    async def write(self, provider: str, body: bytes) -> int:
        """Store one body durably and return its inbox id; raises if it could not be committed
        (TimeoutError after `timeout`: the row may still be stored, and the retry is a duplicate
        the inbox tolerates, as with any provider retry)."""
        loop = asyncio.get_running_loop()
        queued = _Queued(provider, body, loop.create_future())
        self._waiting.append(queued)
        if self._leader is None:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            self._leader = loop.create_task(self._lead())
        # Giving up cancels this request's own future only: the batch runs in the leader's task, which
        # skips a future that is already done.
        async with asyncio.timeout(self._timeout):
            return await queued.future

    async def _lead(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: len(batch)]
                await self._commit(loop, batch)
        finally:
            # No await between the last look at _waiting and this: a request queued from here on
            # starts a new leader.
            self._leader = None
            self._idle = loop.call_later(self.KEEP_IDLE_SECONDS, self._release_idle)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Queued]) -> None:
        try:
            ids = await loop.run_in_executor(self._thread, _commit, self._held, batch)
        except Exception as exc:  # the requests answer 503 and the provider retries
            log.exception("inbox write failed for %d webhook(s)", len(batch))
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(exc)
            return
        for queued, row_id in zip(batch, ids, strict=True):
            if not queued.future.done():
                queued.future.set_result(row_id)
        try:
            self._on_committed()
        except Exception:  # a failed signal loses nothing: the sweeper finds pending rows
            log.exception("could not signal the workers")

    def _release_idle(self) -> None:
        self._idle = None
        if self._leader is None:
            # On the database thread, after any commit queued before it: never under a batch.
            self._thread.submit(self._held.release)

    async def close(self) -> None:
        """At shutdown, after the last request: wait for a batch in flight, give the connection back."""
        if self._leader is not None:
            await asyncio.gather(self._leader, return_exceptions=True)
        if self._idle is not None:
            self._idle.cancel()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._held.release)
        self._thread.shutdown(wait=True)
