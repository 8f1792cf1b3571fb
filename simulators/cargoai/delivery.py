"""CargoAi callbacks: authenticated POSTs with injected delays and duplicates, and advancing the clock.

One background thread delivers callbacks in due-time order. It never holds the state lock during
HTTP: it takes it only to check that the subscription still wants the callback and to record the
attempt. CargoAi documents no retry policy (awb.md §5.3), so a failed callback is logged, not retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from simulators.cargoai.state import CargoAiOptions, CargoAiState, Outgoing
from simulators.shared.common import DeliveryQueue, Scheduled, try_send


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
class Delivery(Scheduled):
    outgoing: Outgoing = field(compare=False)


class Pusher(DeliveryQueue[Delivery]):
    """CargoAi's callbacks: authenticated, delayed, duplicated, never retried."""

    _options: CargoAiOptions

    def __init__(self, state: CargoAiState) -> None:
        super().__init__(state.options, "simcargoai-pusher")
        self._state = state

    @property
    def _request_timeout(self) -> float:
        return self._options.callback_timeout

    def _plan(self, item: Outgoing) -> None:
        self._enqueue(Delivery(time.time() + self._delay(), next(self._seq), item))

    def _deliver(self, delivery: Delivery) -> None:
        item = delivery.outgoing
        with self._state.lock:
            if not self._state.deliverable(item):
                return  # unsubscribed or expired since: CargoAi would not send it any more
        headers = callback_headers(self._options, self._state.api_key, item.body)
        timeout = self._options.callback_timeout
        status, error = try_send(
            lambda: self._session.post(item.url, data=item.body, headers=headers, timeout=timeout)
        )
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
