"""Group commit for webhook bodies.

Each request hands its body to one writer thread per process and waits. The writer inserts
everything that is waiting in one INSERT, committed, then wakes the requests. A request is still
acknowledged only after its own row is durable (invariant 1), but concurrent requests share the
cost of the commit, which is what bounds a one-commit-per-request receiver.

The writer is the one serial step of the web process and shares the GIL with every request
thread, so it is kept lean: it holds one connection while webhooks keep coming (no pool checkout
and pre-ping per batch), and on PostgreSQL a batch is one statement in autocommit mode, a single
round trip to the server.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.inbox.models import PENDING, InboxEvent

log = logging.getLogger(__name__)

# One statement whatever the batch size, so that psycopg and the server prepare it once; `%b`
# sends the bodies as binary, not escaped. Rows take their ids in ORDER BY order (the sequence is
# read as the sorted rows are produced: what SQLAlchemy's sort_by_parameter_order relies on for
# PostgreSQL), so sorting the returned ids matches them to the input; RETURNING's order itself is
# not guaranteed.
_PG_INSERT = (
    "INSERT INTO inbox (provider, body, received_at, status)"
    " SELECT provider, body, %s, %s"
    " FROM unnest(%b::varchar[], %b::bytea[]) WITH ORDINALITY AS batch(provider, body, position)"
    " ORDER BY position"
    " RETURNING id"
)


class _Pending:
    """One body waiting for its commit. A bare lock, not a Future: one futex wake per request."""

    __slots__ = ("provider", "body", "_done", "_id", "_error")

    def __init__(self, provider: str, body: bytes) -> None:
        self.provider = provider
        self.body = body
        self._done = threading.Lock()
        self._done.acquire()  # released by the writer once the outcome is known
        self._id: int | None = None
        self._error: BaseException | None = None

    def settle(self, row_id: int | None = None, error: BaseException | None = None) -> None:
        self._id, self._error = row_id, error
        self._done.release()

    def wait(self, timeout: float) -> int:
        if not self._done.acquire(timeout=timeout):
            raise TimeoutError(f"no commit within {timeout:g}s")
        if self._error is not None:
            raise self._error
        assert self._id is not None
        return self._id


class InboxWriter:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        on_committed: Callable[[], None] = lambda: None,
        max_batch: int = 500,
        idle_seconds: float = 1.0,
    ) -> None:
        self._session_factory = session_factory
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._owner_pid: int | None = None

    def write(self, provider: str, body: bytes, timeout: float = 15.0) -> int:
        """Store one body durably and return its inbox id; raises if it could not be committed."""
        self._ensure_thread()
        pending = _Pending(provider, body)
        self._queue.put(pending)
        return pending.wait(timeout)

    def _ensure_thread(self) -> None:
        # Threads do not survive fork (gunicorn workers), so each process starts its own.
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, name="inbox-writer", daemon=True).start()
                self._owner_pid = os.getpid()

    def _engine(self) -> Engine:
        with self._session_factory() as session:
            return session.get_bind()  # type: ignore[return-value]

    def _run(self) -> None:
        held = _HeldConnection(self._engine)
        while True:
            batch = self._take_batch(held)
            try:
                ids = _commit(held, batch)
            except Exception as exc:  # the requests answer 503 and the provider retries
                log.exception("inbox write failed for %d webhook(s)", len(batch))
                for pending in batch:
                    pending.settle(error=exc)
                continue
            for pending, row_id in zip(batch, ids, strict=True):
                pending.settle(row_id)
            self._notify()

    def _take_batch(self, held: _HeldConnection) -> list[_Pending]:
        try:
            batch = [self._queue.get(timeout=self._idle_seconds)]
        except queue.Empty:
            # Quiet for a while: give the connection back rather than hold it idle for good.
            held.release()
            batch = [self._queue.get()]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _notify(self) -> None:
        try:
            self._on_committed()
        except Exception:  # a failed signal loses nothing: the sweeper finds pending rows
            log.exception("could not signal the workers")


class _HeldConnection:
    """A writer thread's connection, kept across batches: no pool checkout and pre-ping each."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def get(self) -> Connection:
        if self._connection is None:
            connection = self._engine().connect()
            if _single_statement(connection):
                # Reset by the pool when the connection goes back: other users keep transactions.
                connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection = connection
        return self._connection

    def release(self, broken: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if broken:
                connection.invalidate()  # not back into the pool: it may be dead
            connection.close()
        except Exception:
            log.debug("closing an inbox writer's connection failed", exc_info=True)


def _commit(held: _HeldConnection, batch: list[_Pending]) -> list[int]:
    reused = held.held
    try:
        return _insert(held.get(), batch)
    except Exception:
        held.release(broken=True)
        if not reused:
            raise
    # The kept connection may have died since the last batch (server restart, idle kill): what the
    # pool's pre-ping catches at checkout. So once more on a fresh one. At worst the first attempt
    # did commit and a row is stored twice, which the inbox tolerates anyway (providers retry too).
    log.warning("inbox write failed on a kept connection; retrying on a fresh one", exc_info=True)
    try:
        return _insert(held.get(), batch)
    except Exception:
        held.release(broken=True)
        raise


def _single_statement(connection: Connection) -> bool:
    """PostgreSQL through psycopg 3 (what _PG_INSERT is written for); SQLite takes the portable way."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _insert(connection: Connection, batch: list[_Pending]) -> list[int]:
    if _single_statement(connection):
        return _insert_postgresql(connection, batch)
    return _insert_portable(connection, batch)


def _insert_postgresql(connection: Connection, batch: list[_Pending]) -> list[int]:
    # In autocommit mode the statement is its own transaction, and the driver returns only once
    # the server is ready for the next query, that is after the COMMIT (flushed: synchronous_commit
    # stays on). One round trip instead of BEGIN, INSERT and COMMIT.
    now = utcnow().replace(tzinfo=None)  # the column holds naive UTC (lifecycle.db.UTCDateTime)
    params = (now, PENDING, [p.provider for p in batch], [p.body for p in batch])
    # Straight to psycopg: SQLAlchemy's per-statement bookkeeping would cost more than the SQL.
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(_PG_INSERT, params)
        return sorted(row_id for (row_id,) in cursor.fetchall())


def _insert_portable(connection: Connection, batch: list[_Pending]) -> list[int]:
    now = utcnow()
    rows = [{"provider": p.provider, "body": p.body, "received_at": now} for p in batch]
    stmt = insert(InboxEvent).returning(InboxEvent.id, sort_by_parameter_order=True)
    with connection.begin():
        return list(connection.execute(stmt, rows).scalars())
