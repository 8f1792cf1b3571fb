"""The shared limiter: however many threads or processes ask, at most 3 calls start in any second."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from lifecycle.ratelimit import FileLimiter, RedisLimiter
from lifecycle.runtime import WINDOW_SECONDS
from tests.conftest import REDIS_URL


def _most_in_any_window(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps if start <= t < start + window) for start in stamps)


def _take(limiter, key: str, n: int, out: list[float]) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        limiter.acquire(key)
        out.append(time.time())


@pytest.fixture(params=["file", "redis"])
def make_limiter(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "redis":
        request.getfixturevalue("postgres_url")  # skips (or fails in CI) like the other integration tests
        return lambda: RedisLimiter(REDIS_URL, limit=3, window_seconds=WINDOW_SECONDS)
    return lambda: FileLimiter(tmp_path, limit=3, window_seconds=WINDOW_SECONDS)


def test_threads_sharing_one_key_never_exceed_the_limit(make_limiter):
    stamps: list[float] = []
    key = f"test-{time.time_ns()}"
    threads = [threading.Thread(target=_take, args=(make_limiter(), key, 3, stamps)) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(stamps) == 12
    assert _most_in_any_window(stamps) <= 3
    # 12 calls at 3 per window need 3 windows, and the limiter should not wait much longer.
    assert 3 * WINDOW_SECONDS - 0.1 < time.monotonic() - started < 6


def _process_take(kind: str, directory: str, key: str, queue) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    limiter = (
        RedisLimiter(REDIS_URL, 3, WINDOW_SECONDS)
        if kind == "redis"
        else FileLimiter(Path(directory), 3, WINDOW_SECONDS)
    )
    stamps: list[float] = []
    _take(limiter, key, 3, stamps)
    queue.put(stamps)


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_processes_share_the_window(kind, tmp_path, request):
    if kind == "redis":
        request.getfixturevalue("postgres_url")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    key = f"proc-{time.time_ns()}"
    processes = [
        context.Process(target=_process_take, args=(kind, str(tmp_path), key, queue)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    stamps = [t for _ in processes for t in queue.get(timeout=60)]
    for process in processes:
        process.join(10)
    assert len(stamps) == 9
    assert _most_in_any_window(stamps) <= 3


def test_different_accounts_have_separate_windows(tmp_path):
    limiter = FileLimiter(tmp_path, limit=3, window_seconds=1.0)
    started = time.monotonic()
    for key in ("account-a", "account-b"):
        for _ in range(3):
            limiter.acquire(key)
    assert time.monotonic() - started < 0.5
