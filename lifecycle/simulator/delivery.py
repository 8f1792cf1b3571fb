"""Signed webhook deliveries with 17TRACK's imperfections: delays, duplicates, reordering, retries.

One background thread delivers pushes in due-time order. It never holds `SimState.lock` while
doing HTTP: it takes the lock only to check that a push is still wanted and to record the attempt.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import requests

from lifecycle.providers import seventeentrack as st
from lifecycle.simulator import codes, registry, trackinfo
from lifecycle.simulator.progression import Outgoing, outgoing
from lifecycle.simulator.state import SimState

REORDER_GAP_SECONDS = 0.05  # how long after the newer push an overtaken one arrives


def post_signed(
    url: str, api_key: str, body: bytes, timeout: float, session: requests.Session | None = None
) -> requests.Response:
    """POST the raw body with the `sign` header: hex SHA-256 of body + "/" + key (reference §3.4)."""
    headers = {"sign": st.sign(body, api_key), "Content-Type": "application/json"}
    return (session or requests).post(url, data=body, headers=headers, timeout=timeout)


def try_post(
    url: str, api_key: str, body: bytes, timeout: float, session: requests.Session | None = None
) -> tuple[int | None, str | None]:
    """(HTTP status or None, error text or None) of one delivery attempt."""
    try:
        return post_signed(url, api_key, body, timeout, session).status_code, None
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {exc}"


def push_record(change: Outgoing, status: int | None, error: str | None, **extra: Any) -> dict[str, Any]:
    """One line of the push log (`SimulatorServer.pushes()`, GET /_sim/pushes)."""
    return {
        "at": time.time(),
        "number": change.number,
        "carrier": change.carrier,
        "event": change.event,
        "sub_status": change.sub_status,
        "event_time": change.event_time,
        "status": status,
        "error": error,
        **extra,
    }


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    change: Outgoing = field(compare=False)
    attempt: int = field(default=1, compare=False)
    duplicate: bool = field(default=False, compare=False)
    reordered: bool = field(default=False, compare=False)


class Pusher:
    def __init__(self, state: SimState) -> None:
        self._state = state
        self._options = state.options
        self._rng = random.Random(state.options.seed)
        self._queue: list[Delivery] = []
        # Pushes held back until the parcel's next push has been queued: that one overtakes them.
        self._held: dict[tuple[str, int], Delivery] = {}
        self._in_flight = 0
        self._stopping = False
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._session = requests.Session()  # used by the delivery thread only
        self._thread = threading.Thread(target=self._run, name="sim17track-pusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=self._options.push_timeout + 5)
        self._session.close()

    def submit(self, changes: list[Outgoing]) -> None:
        with self._cond:
            for change in changes:
                self._plan(change)
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight (held-back pushes wait for their successor)."""
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

    def _plan(self, change: Outgoing) -> None:
        delivery = Delivery(time.time() + self._delay(), next(self._seq), change)
        overtaken = self._held.pop(change.key, None)
        if overtaken is None and change.more_coming and self._rng.random() < self._options.reorder_rate:
            self._held[change.key] = delivery
            return
        self._enqueue(delivery)
        if overtaken is not None:
            self._enqueue(replace(overtaken, due=delivery.due + REORDER_GAP_SECONDS, reordered=True))

    def _enqueue(self, delivery: Delivery) -> None:
        heapq.heappush(self._queue, delivery)
        if self._rng.random() < self._options.duplicate_rate:
            again = delivery.due + REORDER_GAP_SECONDS + self._delay()
            heapq.heappush(self._queue, replace(delivery, due=again, seq=next(self._seq), duplicate=True))

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
        change = delivery.change
        with self._state.lock:
            wanted = self._state.deliverable(change.key, change.epoch)
            url, api_key = self._state.webhook_url, self._state.api_key
        if not wanted or url is None:
            return  # stopped, deleted or re-keyed since: 17TRACK would not push it any more
        status, error = try_post(url, api_key, change.body, self._options.push_timeout, self._session)
        record = push_record(
            change,
            status,
            error,
            attempt=delivery.attempt,
            duplicate=delivery.duplicate,
            reordered=delivery.reordered,
            source="progression",
        )
        with self._state.lock:
            self._state.record_push(record)
        retries = self._options.retry_seconds
        if status != 200 and delivery.attempt <= len(retries):
            later = time.time() + retries[delivery.attempt - 1]
            with self._cond:
                heapq.heappush(self._queue, replace(delivery, due=later, attempt=delivery.attempt + 1))
                self._cond.notify_all()


def replay(state: SimState, items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The `push` endpoint: send each named parcel's current data now, synchronously.

    Returns the envelope; the lock is taken only to read the parcels, never during the HTTP calls.
    """
    changes: list[Outgoing] = []
    rejected: list[dict[str, Any]] = []
    with state.lock:
        url, api_key = state.webhook_url, state.api_key
        if url is None:
            return codes.request_error(codes.WEBHOOK_NOT_SET)
        for item in items:
            try:
                found = registry.find_all(state, item)
            except codes.ItemError as error:
                rejected.append(codes.rejected(item, error))
                continue
            changes += [outgoing(parcel, trackinfo.updated_payload(parcel, now)) for parcel in found]
    accepted = []
    for change in changes:
        status, error = try_post(url, api_key, change.body, state.options.push_timeout)
        with state.lock:
            state.record_push(push_record(change, status, error, attempt=1, source="api"))
        if status == 200:
            accepted.append({"number": change.number, "carrier": change.carrier})
        else:
            failure = codes.ItemError(codes.PUSH_FAILED)
            rejected.append(codes.rejected({"number": change.number}, failure))
    return {"code": 0, "data": {"accepted": accepted, "rejected": rejected}}
