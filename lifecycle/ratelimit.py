"""A sliding-window limiter shared by every worker process (invariant 5).

Celery's `rate_limit` is per worker, so the provider's 3 requests/s is enforced here instead:
through Redis in production (one Lua script, timed by the Redis server's clock so machines with
skewed clocks agree) and through a file lock in embedded mode, where all processes share one disk.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

import redis

_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class Limiter(Protocol):
    def acquire(self, key: str) -> float:
        """Block until a call may be made; returns the seconds spent waiting."""


class RedisLimiter:
    def __init__(self, url: str, limit: int, window_seconds: float) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(_SLIDING_WINDOW)
        self._limit = limit
        self._window_us = int(window_seconds * 1_000_000)

    def acquire(self, key: str) -> float:
        waited = 0.0
        while True:
            wait_us = int(
                self._script(keys=[f"ratelimit:{key}"], args=[self._limit, self._window_us, uuid.uuid4().hex])
            )
            if wait_us == 0:
                return waited
            time.sleep(wait_us / 1_000_000)
            waited += wait_us / 1_000_000


class FileLimiter:
    """The same window kept in a JSON file under an exclusive flock (one machine only)."""

    def __init__(self, directory: Path, limit: int, window_seconds: float) -> None:
        self._directory = directory
        self._limit = limit
        self._window = window_seconds
        directory.mkdir(parents=True, exist_ok=True)

    def acquire(self, key: str) -> float:
        waited = 0.0
        path = self._directory / f"ratelimit-{key.replace(':', '_')}.json"
        while True:
            wait = self._try_take(path)
            if wait == 0:
                return waited
            time.sleep(wait)
            waited += wait

    def _try_take(self, path: Path) -> float:
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            now = time.time()
            stamps = [t for t in (json.loads(text) if text else []) if t > now - self._window]
            if len(stamps) < self._limit:
                stamps.append(now)
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(stamps))
                handle.flush()
                os.fsync(handle.fileno())
                return 0.0
            return max(0.001, min(stamps) + self._window - now)


def make_limiter(redis_url: str, directory: Path, limit: int, window_seconds: float) -> Limiter:
    if redis_url:
        return RedisLimiter(redis_url, limit, window_seconds)
    return FileLimiter(directory, limit, window_seconds)
