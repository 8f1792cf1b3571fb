"""One scheduling beat per deployment, even when a second one is started by mistake.

Celery beat has no notion of "the other beat": two of them send every periodic task twice, and a
job that finishes between the two sends runs twice. So beat schedules only while it holds the
leader lease — a Redis lock renewed as it ticks (or, embedded, a file lock held by the process).
A second beat stands by, sending nothing, and takes over within LEASE_SECONDS if the first dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from typing import Any

import redis
from celery.beat import PersistentScheduler

from config.settings import Settings, get_settings

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
# How often a standby beat asks again; the leader renews on its ticks, at most this far apart.
CHECK_SECONDS = 2.0


class Leadership:
    """Held by one process at a time: Redis lease with a renewable token, else an flock."""

    def __init__(self, redis_url: str, lock_file: str, lease: float = LEASE_SECONDS) -> None:
        self._lease, self._renewed, self._held = lease, 0.0, False
        self._lock_file, self._fd = lock_file, None
        self._lock = None
        if redis_url:
            client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._lock = client.lock("lock:beat-leader", timeout=lease, blocking=False, thread_local=False)

    def holding(self) -> bool:
        now = time.monotonic()
        if self._held and now - self._renewed < self._lease / 3:
            return True
        self._held = self._renew() if self._held else self._acquire()
        if self._held:
            self._renewed = now
        return self._held

    def _acquire(self) -> bool:
        if self._lock is None:
            return self._flock()
        try:
            return bool(self._lock.acquire())
        except redis.exceptions.RedisError as exc:
            log.warning("beat: leader lease unavailable: %s", exc.__class__.__name__)
            return False

    def _renew(self) -> bool:
        if self._lock is None:
            return True  # the flock is ours until the process ends
        try:
            self._lock.reacquire()
            return True
        except (redis.exceptions.LockError, redis.exceptions.RedisError) as exc:
            log.warning("beat: leader lease lost (%s); standing by", exc.__class__.__name__)
            return False

    def _flock(self) -> bool:
        os.makedirs(os.path.dirname(self._lock_file), exist_ok=True)
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True


class LeaderScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, ticking only while this beat is the leader."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = getattr(self.app, "lifecycle_settings", None) or get_settings()
        lock_file = str(settings.var_dir / "locks" / "beat-leader.lock")
        self._leadership = Leadership(settings.shared_limiter_url, lock_file)
        self._standing_by = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._leadership.holding():
            if not self._standing_by:
                log.warning("beat: another beat is scheduling; this one stands by")
                self._standing_by = True
            return CHECK_SECONDS
        if self._standing_by:
            log.info("beat: now the scheduling beat")
            self._standing_by = False
        return min(super().tick(*args, **kwargs), LEASE_SECONDS / 3)
