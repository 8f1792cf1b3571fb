"""Non-blocking singleton locks: at most one holder across every worker process.

Provider calls are limited globally (3 requests/s), so a second process sending operations at the
same time adds no speed; it only takes a worker slot the inbox needs. Redis in production, a file
lock in embedded mode (freed by the kernel when its process dies).

The Redis lock is a short lease that a live holder keeps renewing from a background thread, so a
holder killed with SIGKILL frees it within `LEASE_SECONDS`, not after the longest run it might have
made (invariant 9). A holder that runs past `max_hold_seconds` stops renewing: a hung process cannot
keep the lock for ever.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.lock import Lock

log = logging.getLogger(__name__)

# How long a dead holder can block the others; renewed every third of it.
LEASE_SECONDS = 5.0


class Held:
    """Truthy while this process holds the lock; `lost` says the lease could not be kept (a renewal
    failed, or the holder ran past its maximum): the holder stops at its next safe point, since
    another process may hold the lock by then. A file lock is never lost."""

    def __init__(self, acquired: bool) -> None:
        self.acquired = acquired
        self.lost = False

    def __bool__(self) -> bool:
        return self.acquired


class _Renewer(threading.Thread):
    def __init__(self, lock: Lock, held: Held, lease: float, max_hold: float) -> None:
        super().__init__(name=f"renew-{lock.name}", daemon=True)
        self._lock, self._held, self._lease = lock, held, lease
        self._until = time.monotonic() + max_hold
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._lease / 3):
            if time.monotonic() > self._until:
                log.warning("lock %s held longer than allowed; no longer renewed", self._lock.name)
                self._held.lost = True  # the lease runs out now: the holder must stop too
                return
            try:
                self._lock.reacquire()
            except (redis.exceptions.LockError, redis.exceptions.RedisError) as exc:
                log.warning("lock %s lost: %s", self._lock.name, exc)
                self._held.lost = True
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self._lease)


@contextmanager
def singleton(
    name: str, redis_url: str, directory: Path, max_hold_seconds: float, lease_seconds: float = LEASE_SECONDS
) -> Iterator[Held]:
    """Yields a truthy `Held` if this process holds the lock for the block, a falsy one otherwise."""
    if redis_url:
        with _redis_singleton(name, redis_url, max_hold_seconds, lease_seconds) as held:
            yield held
        return
    with _file_singleton(name, directory) as held:
        yield held


@contextmanager
def _redis_singleton(name: str, redis_url: str, max_hold: float, lease: float) -> Iterator[Held]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    # Not thread-local: the renewing thread must see the token this thread acquired with.
    lock = client.lock(f"lock:{name}", timeout=lease, blocking=False, thread_local=False)
    held = Held(lock.acquire())
    if not held:
        yield held
        return
    renewer = _Renewer(lock, held, lease, max_hold)
    renewer.start()
    try:
        yield held
    finally:
        renewer.stop()
        try:
            lock.release()
        except redis.exceptions.LockError:
            # The lease ran out first; another process may hold it now, which is fine.
            log.warning("lock %s expired before release (lease %ss)", name, lease)


@contextmanager
def _file_singleton(name: str, directory: Path) -> Iterator[Held]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield Held(False)
            return
        try:
            yield Held(True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
