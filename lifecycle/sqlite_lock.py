"""One writer at a time on the embedded SQLite database, handed over by the kernel, not by polling.

SQLite lets one connection write at a time. A connection that finds the write lock taken retries
in its busy handler, sleeping 1, 2, 5 … up to 100 ms between tries, so with two web processes and a
worker each committing a few hundred times a second, a waiter regularly slept tens of milliseconds
after the lock had been free for one: the embedded default's webhook p99 was over a second. Here
every writing connection first takes an exclusive `flock` on a file beside the database (one open
file each, so threads of a process exclude each other too), held from BEGIN IMMEDIATE to COMMIT or
ROLLBACK: a waiter sleeps in the kernel and wakes the moment the lock is released. SQLite's own lock
and busy timeout stay underneath, for any writer that does not come through here.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from typing import Any

_thread = threading.local()  # `holding`: 1 while this thread holds the lock through a connection


class LockingConnection(sqlite3.Connection):
    """A sqlite3 connection holding the shared writer lock file for the length of a write
    transaction: `lock_for_writing()` before BEGIN IMMEDIATE, released by COMMIT, ROLLBACK or close."""

    lock_path: str | None = None  # set per database by `connection_factory`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_fd: int | None = None
        self._locked = False

    def lock_for_writing(self) -> None:
        if self.lock_path is None or self._locked:
            return
        if getattr(_thread, "holding", 0):
            # This thread already writes through another connection: waiting here would never end,
            # so this one is left to SQLite's busy timeout (an error after 30 s), as it always was.
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks in the kernel, the GIL released
        self._locked = True
        _thread.holding = 1

    def _unlock(self) -> None:
        if self._locked and self._lock_fd is not None:
            self._locked = False
            _thread.holding = 0
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._unlock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._unlock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._unlock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def connection_factory(database_path: str) -> type[LockingConnection]:
    """A LockingConnection class bound to `database_path`'s lock file (`<path>-writer.lock`)."""
    lock_path = os.path.abspath(database_path) + "-writer.lock"
    return type("LockingConnection", (LockingConnection,), {"lock_path": lock_path})


def lock_for_writing(dbapi_connection: Any) -> None:
    """Take the writer lock before a write transaction begins (a no-op for any other connection)."""
    if isinstance(dbapi_connection, LockingConnection):
        dbapi_connection.lock_for_writing()
