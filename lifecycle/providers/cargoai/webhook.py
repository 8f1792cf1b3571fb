"""CargoAi facts: callback authentication, callback parsing and event codes (reference/awb.md §1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lifecycle.providers.base import BodyError
from lifecycle.providers.cargoai import awb
from lifecycle.providers.cargoai.payloads import CallbackBody, Event
from lifecycle.providers.validation import load_model, parse_time

PROVIDER = "cargoai"

# CargoAi's own codes onto the shared vocabulary; anything else is kept verbatim in sub_status.
_STATUS = {
    "BKD": "info_received",
    "FWB": "info_received",
    "FOH": "info_received",
    "PRE": "info_received",
    "RCS": "in_transit",
    "MAN": "in_transit",
    "DEP": "in_transit",
    "ARR": "in_transit",
    "RCF": "in_transit",
    "CLD": "in_transit",
    "TFD": "in_transit",
    "RCT": "in_transit",
    "CLC": "in_transit",
    "NFD": "available_for_pickup",
    "AWD": "available_for_pickup",
    "DIS": "exception",
    "DLV": "delivered",
}
DELIVERED = "DLV"


class CallbackError(BodyError):
    """The body is not a CargoAi callback this service can apply."""


@dataclass(frozen=True)
class AwbEvent:
    code: str
    time: datetime | None
    location: str | None
    flight: str | None

    @property
    def dedupe_key(self) -> str:
        when = self.time.isoformat() if self.time else ""
        # The flight too: a rebooked shipment has two undated BKDs that differ only by flight.
        raw = f"{self.code}|{when}|{self.location or ''}|{self.flight or ''}"
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

    @property
    def status(self) -> str | None:
        return _STATUS.get(self.code)


@dataclass(frozen=True)
class Callback:
    awb: str
    events: tuple[AwbEvent, ...]


def hmac_signature(raw_body: bytes, api_key: str) -> str:
    """`cargoai-api-key` header: base64 HMAC-SHA256 of the raw body keyed with the API key."""
    return base64.b64encode(hmac.new(api_key.encode(), raw_body, hashlib.sha256).digest()).decode()


def authorised(mode: str, raw_body: bytes, headers: Any, secrets: dict[str, str]) -> bool:
    """Check the callback per CARGOAI_CALLBACK_AUTH; fail closed when a secret is missing."""
    if mode == "none":
        return True
    if mode == "hmac":
        key, given = secrets.get("api_key", ""), headers.get("cargoai-api-key") or ""
        # Compared as bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
        expected_hmac = hmac_signature(raw_body, key).encode()
        return bool(key and given) and hmac.compare_digest(expected_hmac, _header_bytes(given))
    expected = ""
    if mode == "bearer" and secrets.get("token"):
        expected = f"Bearer {secrets['token']}"
    elif mode == "basic" and secrets.get("user"):
        pair = f"{secrets['user']}:{secrets.get('password', '')}".encode()
        expected = f"Basic {base64.b64encode(pair).decode()}"
    given = headers.get("Authorization") or ""
    return bool(expected) and hmac.compare_digest(expected.encode(), _header_bytes(given))


def _header_bytes(value: str) -> bytes:
    return value.strip().encode("utf-8", "replace")


def check_envelope(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise CallbackError("body must be a JSON object")
    if not isinstance(payload.get("awb"), str):
        raise CallbackError("missing 'awb' string")
    for name in ("events", "newEvents", "oldEvents"):
        if name in payload and not isinstance(payload[name], list):
            raise CallbackError(f"'{name}' must be a list")
    if not any(isinstance(payload.get(name), list) for name in ("events", "newEvents", "oldEvents")):
        raise CallbackError("no 'events', 'newEvents' or 'oldEvents' list")


def _event(raw: Event) -> AwbEvent:
    code = raw.code.strip().upper()
    if not code:
        raise CallbackError("an event with an empty 'code'")
    flight = (raw.flight.number if raw.flight else None) or raw.flightNumber
    return AwbEvent(code, parse_time(raw.eventDate, CallbackError, "eventDate"), raw.eventLocation, flight)


def parse_callback(raw_body: bytes) -> Callback:
    """Every distinct event of `oldEvents`, `newEvents` and `events`, oldest first."""
    body = load_model(raw_body, CallbackBody, CallbackError, check_envelope)
    try:
        number = awb.normalise(body.awb)
    except ValueError as exc:
        raise CallbackError(str(exc)) from exc
    seen: dict[str, AwbEvent] = {}
    for events in (body.oldEvents, body.events, body.newEvents):
        for raw in events or []:
            event = _event(raw)
            seen.setdefault(event.dedupe_key, event)
    ordered = sorted(
        seen.values(), key=lambda e: (e.time is None, e.time or datetime.min.replace(tzinfo=UTC))
    )
    return Callback(number, tuple(ordered))
