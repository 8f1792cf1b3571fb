"""Signed webhook deliveries with 17TRACK's imperfections: delays, duplicates, reordering, retries.

One background thread delivers pushes in due-time order. It never holds `SimState.lock` while
doing HTTP: it takes the lock only to check that a push is still wanted and to record the attempt.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import requests

from simulators.seventeentrack import codes, registry, trackinfo
from simulators.seventeentrack.progression import Outgoing, outgoing
from simulators.seventeentrack.state import SimOptions, SimState
from simulators.shared.common import DeliveryQueue, Scheduled, try_send

REORDER_GAP_SECONDS = 0.05  # how long after the newer push an overtaken one arrives


def sign(body: bytes, api_key: str) -> str:
    """The `sign` header (reference §3.4): lowercase hex SHA-256 of body + "/" + key; not HMAC."""
    return hashlib.sha256(body + b"/" + api_key.encode()).hexdigest()


def post_signed(
    url: str, api_key: str, body: bytes, timeout: float, session: requests.Session | None = None
) -> requests.Response:
    """POST the raw body with its `sign` header, as 17TRACK does."""
    headers = {"sign": sign(body, api_key), "Content-Type": "application/json"}
    return (session or requests).post(url, data=body, headers=headers, timeout=timeout)


def try_post(
    url: str, api_key: str, body: bytes, timeout: float, session: requests.Session | None = None
) -> tuple[int | None, str | None]:
    """(HTTP status or None, error text or None) of one delivery attempt."""
    return try_send(lambda: post_signed(url, api_key, body, timeout, session))


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
class Delivery(Scheduled):
    change: Outgoing = field(compare=False)
    attempt: int = field(default=1, compare=False)
    reordered: bool = field(default=False, compare=False)


class Pusher(DeliveryQueue[Delivery]):
    """17TRACK's pushes: signed, delayed, duplicated, overtaken by the parcel's next one, retried.

    `wait_idle` does not wait for a held-back push: it waits for its successor, which overtakes it.
    """

    _options: SimOptions

    def __init__(self, state: SimState) -> None:
        super().__init__(state.options, "sim17track-pusher")
        self._state = state
        # Pushes held back until the parcel's next push has been queued: that one overtakes them.
        self._held: dict[tuple[str, int], Delivery] = {}

    @property
    def _request_timeout(self) -> float:
        return self._options.push_timeout

    def _plan(self, change: Outgoing) -> None:
        delivery = Delivery(time.time() + self._delay(), next(self._seq), change)
        overtaken = self._held.pop(change.key, None)
        if overtaken is None and change.more_coming and self._rng.random() < self._options.reorder_rate:
            self._held[change.key] = delivery
            return
        self._enqueue(delivery)
        if overtaken is not None:
            self._enqueue(replace(overtaken, due=delivery.due + REORDER_GAP_SECONDS, reordered=True))

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
            self._requeue(replace(delivery, due=later, attempt=delivery.attempt + 1))


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
