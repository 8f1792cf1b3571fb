"""A limiter shared by every worker process (invariant 5), that holds as measured by the provider.

Celery's `rate_limit` is per worker, so the provider's 3 requests/s is enforced here instead:
through Redis in production (Lua scripts timed by the Redis server's clock, so machines with skewed
clocks agree) and through a file lock in embedded mode, where all processes share one disk.

Counting when calls are *allowed* is not enough: a call allowed at t may leave at t + 40 ms after a
scheduling delay while the next one leaves on time, and the provider sees four in one second. So a
call holds its slot until its answer is back, and the slot stays counted for a whole window after
that. A call's arrival at the provider lies between its start and its end, so of any four calls the
last one started at least a window after another one ended: no window at the receiver holds more
than `limit` arrivals, whatever the delays.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import redis

log = logging.getLogger(__name__)

# Slots are scored by when they stop counting against later calls minus one window: a finished
# call by its end, a call in flight by the latest it could end (so a crashed caller's slot frees).
# Every script first drops the slots that no longer count (ARGV[2]: the window, in microseconds).
_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local taken = redis.call('ZCARD', KEYS[1])
local function wait()
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
"""
_TAKE = (
    _PRUNE
    + """
local longest = tonumber(ARGV[4])
if taken < limit then
  redis.call('ZADD', KEYS[1], now + longest, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil((window + longest) / 1000) + 1000)
  return 0
end
return wait()
"""
)
# {free slots, microseconds until one is free (0 if one is)}; takes nothing.
_PEEK = (
    _PRUNE
    + """
if taken < limit then
  return {limit - taken, 0}
end
return {0, wait()}
"""
)
_FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
"""
# While the oldest slot is a call in flight, its end may come at any moment: look again soon.
_POLL_SECONDS = 0.02


class Limiter(Protocol):
    def slot(self, key: str, longest_call: float) -> AbstractContextManager[float]:
        """Hold a slot for one call (block until one is free); yields the seconds spent waiting."""

    def free(self, key: str) -> tuple[int, float]:
        """Takes nothing: how many calls `slot` would let go at once now, and the seconds until it
        would let one go (0.0 when one is free). A caller with other work does it meanwhile rather
        than sleep in `slot` (a call in flight counts until the latest it could end)."""


def _sleep_for(wait: float, window: float) -> float:
    return _POLL_SECONDS if wait > window else wait


class RedisLimiter:
    def __init__(self, url: str, limit: int, window_seconds: float) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self._redis.register_script(_TAKE)
        self._peek = self._redis.register_script(_PEEK)
        self._finish = self._redis.register_script(_FINISH)
        self._limit = limit
        self._window = window_seconds

    @contextmanager
    def slot(self, key: str, longest_call: float) -> Iterator[float]:
        name, token = f"ratelimit:{key}", uuid.uuid4().hex
        args = [self._limit, int(self._window * 1e6), token, int(longest_call * 1e6)]
        waited = 0.0
        while (wait_us := int(self._take(keys=[name], args=args))) != 0:
            pause = _sleep_for(wait_us / 1e6, self._window)
            time.sleep(pause)
            waited += pause
        try:
            yield waited
        finally:
            try:
                self._finish(keys=[name], args=[token])
            except redis.RedisError as exc:
                # The slot then counts until `longest_call` has passed: slower, never over the limit.
                log.warning("could not record the end of a call (%s)", exc)

    def free(self, key: str) -> tuple[int, float]:
        slots, wait_us = self._peek(keys=[f"ratelimit:{key}"], args=[self._limit, int(self._window * 1e6)])
        return int(slots), int(wait_us) / 1e6


class FileLimiter:
    """The same slots kept in a JSON file under an exclusive flock (one machine only)."""

    def __init__(self, directory: Path, limit: int, window_seconds: float) -> None:
        self._directory = directory
        self._limit = limit
        self._window = window_seconds
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def slot(self, key: str, longest_call: float) -> Iterator[float]:
        path = self._path(key)
        token = uuid.uuid4().hex
        waited = 0.0
        while (wait := self._update(path, token, time.time() + longest_call, take=True)) != 0:
            pause = _sleep_for(wait, self._window)
            time.sleep(pause)
            waited += pause
        try:
            yield waited
        finally:
            self._update(path, token, time.time(), take=False)

    def free(self, key: str) -> tuple[int, float]:
        path = self._path(key)
        if not path.exists():
            return self._limit, 0.0
        with open(path) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            now = time.time()
            ends = [end for end in _slots(handle.read()).values() if end > now - self._window]
        if len(ends) < self._limit:
            return self._limit - len(ends), 0.0
        return 0, max(0.001, min(ends) + self._window - now)

    def _path(self, key: str) -> Path:
        return self._directory / f"ratelimit-{key.replace(':', '_')}.json"

    def _update(self, path: Path, token: str, until: float, take: bool) -> float:
        """Take a slot (0.0, or the seconds to wait) or record a call's end."""
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            now = time.time()
            slots = {t: end for t, end in _slots(text).items() if end > now - self._window}
            if take and len(slots) >= self._limit:
                return max(0.001, min(slots.values()) + self._window - now)
            if take or token in slots:
                slots[token] = until
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(slots))
            handle.flush()
            os.fsync(handle.fileno())
            return 0.0


def _slots(text: str) -> dict[str, float]:
    data = json.loads(text) if text else {}
    # A file from before slots were held (a list of start times) still counts its recent calls.
    return {f"start-{i}": t for i, t in enumerate(data)} if isinstance(data, list) else data


def make_limiter(redis_url: str, directory: Path, limit: int, window_seconds: float) -> Limiter:
    if redis_url:
        return RedisLimiter(redis_url, limit, window_seconds)
    return FileLimiter(directory, limit, window_seconds)
