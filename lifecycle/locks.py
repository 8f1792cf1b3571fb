"""Non-blocking singleton locks: at most one holder across every worker process.

Provider calls are limited globally (3 requests/s), so a second process sending operations at the
same time adds no speed; it only takes a worker slot the inbox needs. Redis in production (a lock
with a lease, so a crashed holder frees it), a file lock in embedded mode (freed by the kernel).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

log = logging.getLogger(__name__)


@contextmanager
def singleton(name: str, redis_url: str, directory: Path, lease_seconds: float) -> Iterator[bool]:
    """Yields True if this process holds the lock for the block, False if another one does."""
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        lock = client.lock(f"lock:{name}", timeout=lease_seconds, blocking=False)
        acquired = lock.acquire()
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    lock.release()
                except redis.exceptions.LockNotOwnedError:
                    # The lease ran out first; another process may hold it now, which is fine.
                    log.warning("lock %s expired before release (lease %ss)", name, lease_seconds)
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
