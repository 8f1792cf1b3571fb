"""CargoAi callbacks: authenticated POSTs with injected delays and duplicates, and the ticker.

One background thread delivers callbacks in due-time order. It never holds the state lock during
HTTP: it takes it only to check that the subscription still wants the callback and to record the
attempt. CargoAi documents no retry policy (awb.md §5.3), so a failed callback is logged, not retried.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import requests

from lifecycle.simulator.cargoai_state import CargoAiOptions, CargoAiState, Outgoing

DUPLICATE_GAP_SECONDS = 0.05  # a duplicate arrives this long after the original (plus its delay)


def sign_callback(body: bytes, api_key: str) -> str:
    """The `cargoai-api-key` header: Base64(HMAC-SHA256(key=the x-api-key, msg=raw body))."""
    return base64.b64encode(hmac.new(api_key.encode(), body, hashlib.sha256).digest()).decode()


def callback_headers(options: CargoAiOptions, api_key: str, body: bytes) -> dict[str, str]:
    """The headers of one callback, per the account's callback authentication (awb.md §1.4)."""
    headers = {"Content-Type": "application/json"}
    if options.callback_auth == "hmac":
        headers["cargoai-api-key"] = sign_callback(body, api_key)
    elif options.callback_auth == "bearer":
        headers["Authorization"] = f"Bearer {options.bearer_token}"
    elif options.callback_auth == "basic":
        pair = f"{options.basic_user}:{options.basic_password}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    return headers


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    outgoing: Outgoing = field(compare=False)
    duplicate: bool = field(default=False, compare=False)


class Pusher:
    def __init__(self, state: CargoAiState) -> None:
        self._state, self._options = state, state.options
        self._rng = random.Random(state.options.seed)
        self._queue: list[Delivery] = []
        self._in_flight = 0
        self._stopping = False
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._session = requests.Session()  # used by the delivery thread only
        self._thread = threading.Thread(target=self._run, name="simcargoai-pusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=self._options.callback_timeout + 5)
        self._session.close()

    def submit(self, outgoing: list[Outgoing]) -> None:
        with self._cond:
            for item in outgoing:
                due = time.time() + self._delay()
                heapq.heappush(self._queue, Delivery(due, next(self._seq), item))
                if self._rng.random() < self._options.duplicate_rate:
                    again = due + DUPLICATE_GAP_SECONDS + self._delay()
                    heapq.heappush(self._queue, Delivery(again, next(self._seq), item, duplicate=True))
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _delay(self) -> float:
        delay = self._options.delay_seconds
        return self._rng.uniform(*delay) if isinstance(delay, tuple | list) else float(delay)

    def _next_due(self) -> Delivery | None:
        """Block until a delivery is due (None: stopping); the caller then owns it."""
        with self._cond:
            while not self._stopping:
                wait = self._queue[0].due - time.time() if self._queue else None
                if wait is not None and wait <= 0:
                    self._in_flight += 1
                    return heapq.heappop(self._queue)
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._deliver(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        item = delivery.outgoing
        with self._state.lock:
            if not self._state.deliverable(item):
                return  # unsubscribed or expired since: CargoAi would not send it any more
        headers = callback_headers(self._options, self._state.api_key, item.body)
        status, error = None, None
        try:
            answer = self._session.post(
                item.url, data=item.body, headers=headers, timeout=self._options.callback_timeout
            )
            status = answer.status_code
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        record = {
            "at": time.time(),
            "awb": item.awb,
            "subscription": item.subscription,
            "url": item.url,
            "new_events": list(item.new_codes),
            "auth": self._options.callback_auth,
            "duplicate": delivery.duplicate,
            "status": status,
            "error": error,
        }
        with self._state.lock:
            self._state.callbacks.append(record)


def advance(state: CargoAiState, pusher: Pusher, steps: int = 1, awbs: set[str] | None = None) -> int:
    """Advance the simulated clock `steps` times; returns the callbacks queued (duplicates aside)."""
    queued = 0
    for _ in range(steps):
        with state.lock:
            outgoing = state.advance(awbs)
        pusher.submit(outgoing)  # outside the lock: the pusher thread takes it too
        queued += len(outgoing)
    return queued


class Ticker:
    """Advances every shipment each `interval` seconds of wall time."""

    def __init__(self, state: CargoAiState, pusher: Pusher, interval: float) -> None:
        self._state, self._pusher, self._interval = state, pusher, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simcargoai-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            advance(self._state, self._pusher)
