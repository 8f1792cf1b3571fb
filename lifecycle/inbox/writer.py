"""Group commit for webhook bodies.

Each request queues its body; one request at a time (the leader) inserts everything that is
waiting in one INSERT, committed, then wakes the others. A request is still
acknowledged only after its own row is durable (invariant 1), but concurrent requests share the
cost of the commit, which is what bounds a one-commit-per-request receiver.

Committing is the one serial step of the web process and shares the GIL with every request
thread, so it is kept lean: one connection is held for it (no pool checkout and pre-ping per
batch), and on PostgreSQL a batch is one statement in autocommit mode, a single round trip.
"""

from __future__ import annotations

import logging
import os
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
    """One body waiting for its commit. A bare lock, not a Future: one futex wake per request.

    The lock is released once when the body is committed (or failed), and once more if the request
    is asked to commit for the others (promoted) before that.
    """

    __slots__ = ("provider", "body", "_done", "_state", "_id", "_error", "settled", "promoted", "abandoned")

    def __init__(self, provider: str, body: bytes) -> None:
        self.provider = provider
        self.body = body
        self._done = threading.Lock()
        self._done.acquire()  # released by whoever commits it, once the outcome is known
        self._state = threading.Lock()
        self._id: int | None = None
        self._error: BaseException | None = None
        self.settled = self.promoted = self.abandoned = False

    def settle(self, row_id: int | None = None, error: BaseException | None = None) -> None:
        self._id, self._error, self.settled = row_id, error, True
        self._done.release()

    def promote(self) -> bool:
        """Ask this waiting request to commit for the others; False if it gave up waiting."""
        with self._state:
            if self.abandoned:
                return False
            self.promoted = True
        self._done.release()
        return True

    def wait_turn(self, timeout: float) -> None:
        """Until committed, or promoted to commit; TimeoutError (and never promoted) after `timeout`."""
        if self._done.acquire(timeout=timeout):
            return
        with self._state:
            if not self.promoted:
                self.abandoned = True
                raise TimeoutError(f"no commit within {timeout:g}s")
        self._done.acquire()  # promoted just as the time ran out: lead after all

    def result(self) -> int:
        if self._error is not None:
            raise self._error
        assert self._id is not None
        return self._id


class InboxWriter:
    """Group commit with no writer thread: the first request to find nobody committing commits
    everything waiting (its own body included), batch after batch; requests arriving meanwhile
    wait for it. After MAX_ROUNDS batches a leader whose own body is stored hands the job to the
    next waiting request, so no request is kept committing for others indefinitely. A request
    thread committing for the others saves the hand-off to (and the wake-up of) a writer thread."""

    MAX_ROUNDS = 2

    def __init__(
        self,
        session_factory: Callable[[], Session],
        on_committed: Callable[[], None] = lambda: None,
        max_batch: int = 500,
    ) -> None:
        self.session_factory = session_factory
        self.on_committed = on_committed
        self._max_batch = max_batch
        self._owner_pid: int | None = None
        self._reset()

    def _reset(self) -> None:
        # Locks and a leader do not survive fork (gunicorn workers): each process starts afresh.
        self._lock = threading.Lock()
        self._waiting: list[_Pending] = []
        self._leading = False
        self._held = _HeldConnection(self.session_factory)
        self._owner_pid = os.getpid()

    def write(self, provider: str, body: bytes, timeout: float = 15.0) -> int:
        """Store one body durably and return its inbox id; raises if it could not be committed."""
        if self._owner_pid != os.getpid():
            self._reset()
        pending = _Pending(provider, body)
        with self._lock:
            self._waiting.append(pending)
            leads, self._leading = not self._leading, True
        if not leads:
            pending.wait_turn(timeout)
            if not pending.promoted:
                return pending.result()
        self._lead(pending)
        return pending.result()

    def _lead(self, own: _Pending) -> None:
        rounds = 0
        while True:
            with self._lock:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: len(batch)]
                if not batch:
                    # Nobody waits: the connection goes back to the pool rather than stay held idle
                    # (while webhooks keep coming, one leadership runs on and keeps it).
                    self._held.release()
                    self._leading = False
                    return
            self._commit(batch)
            rounds += 1
            if own.settled and rounds >= self.MAX_ROUNDS:
                with self._lock:
                    if not self._waiting:
                        self._held.release()
                        self._leading = False
                        return
                    if any(waiting.promote() for waiting in self._waiting):
                        return  # the promoted request leads now (self._leading stays set)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids = _commit(self._held, batch)
        except Exception as exc:  # the requests answer 503 and the provider retries
            log.exception("inbox write failed for %d webhook(s)", len(batch))
            for pending in batch:
                pending.settle(error=exc)
            return
        for pending, row_id in zip(batch, ids, strict=True):
            pending.settle(row_id)
        self._notify()

    def _notify(self) -> None:
        try:
            self.on_committed()
        except Exception:  # a failed signal loses nothing: the sweeper finds pending rows
            log.exception("could not signal the workers")


class _HeldConnection:
    """A writer thread's connection, kept across batches: no pool checkout and pre-ping each."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
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

    def _engine(self) -> Engine:
        with self._session_factory() as session:
            return session.get_bind()  # type: ignore[return-value]

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
