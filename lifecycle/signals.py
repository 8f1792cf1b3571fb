"""Debounced signals from the web process to the workers.

Sending one Celery message per webhook would cap intake at the broker's enqueue rate, and the
worker drains the inbox in batches anyway. So a burst of commits becomes at most one message per
interval, sent from a background thread: a slow or unreachable broker never delays a response,
and a lost signal loses nothing because the sweeper re-dispatches rows left pending.

The interval trades latency for web capacity: a Celery message costs about half a millisecond of
CPU in the web process (under the GIL its request threads share), and a drain applies every
pending row, so a quarter of a second between signals still keeps the workers busy under load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Nudger:
    def __init__(self, send: Callable[[], None], min_interval: float = 0.25) -> None:
        self._send = send
        self._min_interval = min_interval
        self._wanted = threading.Event()
        self._owner_pid: int | None = None
        self._lock = threading.Lock()
        self._last_failure_logged = 0.0

    def poke(self) -> None:
        self._ensure_thread()
        self._wanted.set()

    def _ensure_thread(self) -> None:
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid != os.getpid():
                self._wanted = threading.Event()
                threading.Thread(target=self._run, name="nudger", daemon=True).start()
                self._owner_pid = os.getpid()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self._send()
            except Exception as exc:
                self._log_failure(exc)
            time.sleep(self._min_interval)

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_failure_logged > 30:
            self._last_failure_logged = now
            log.warning("broker unreachable, the sweeper will pick up pending work: %s", exc)
