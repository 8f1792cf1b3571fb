"""17TRACK facts: webhook signature, push parsing and status mapping (reference/17track.md §3-4)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifecycle.providers.base import BodyError
from lifecycle.providers.seventeentrack.numbers import normalise as normalise_17track
from lifecycle.providers.seventeentrack.payloads import LatestEvent, LatestStatus, PushEnvelope
from lifecycle.providers.validation import load_model, parse_time

PROVIDER = "17track"
EVENT_UPDATED = "TRACKING_UPDATED"
EVENT_STOPPED = "TRACKING_STOPPED"

ERR_ALREADY_REGISTERED = -18019901
ERR_NOT_REGISTERED = -18019902
ERR_ALREADY_STOPPED = -18019906

_MAIN_STATUS = {
    "NotFound": "not_found",
    "InfoReceived": "info_received",
    "InTransit": "in_transit",
    "Expired": "expired",
    "AvailableForPickup": "available_for_pickup",
    "OutForDelivery": "out_for_delivery",
    "DeliveryFailure": "delivery_failure",
    "Delivered": "delivered",
    "Exception": "exception",
}
# Sub-statuses that name a state of their own in our vocabulary.
_SUB_STATUS = {"Exception_Returning": "returning", "Exception_Returned": "returned"}
# The sub_status column's width: unknown values are kept verbatim up to it.
MAX_SUB_STATUS = 64


class PushError(BodyError):
    """The body is not a 17TRACK push this service can apply."""


@dataclass(frozen=True)
class Push:
    event: str
    number: str
    carrier: int
    tag: str | None
    status: str | None = None
    sub_status: str | None = None
    event_time: datetime | None = None
    description: str | None = None
    # The carrier's display name as 17TRACK gives it (e.g. "China Post"), when the push has one.
    carrier_name: str | None = None


def sign(raw_body: bytes, api_key: str) -> str:
    """The `sign` header 17TRACK sends: hex SHA-256 of the raw body + "/" + key (not HMAC)."""
    return hashlib.sha256(raw_body + b"/" + api_key.encode()).hexdigest()


def signature_is_valid(raw_body: bytes, header: str | None, api_key: str) -> bool:
    if not header or not api_key:
        return False
    # Compared as bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(sign(raw_body, api_key).encode(), given)


def check_envelope(payload: Any) -> None:
    """Refuse a body that is not shaped like any 17TRACK event (the webhook's 400)."""
    if not isinstance(payload, dict):
        raise PushError("body must be a JSON object")
    if not isinstance(payload.get("event"), str) or not payload["event"]:
        raise PushError("missing 'event' string")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PushError("missing 'data' object")
    if not isinstance(data.get("number"), str) or not data["number"].strip():
        raise PushError("missing 'data.number' string")


def map_status(main: str | None, sub: str | None) -> tuple[str | None, str | None]:
    """Map 17TRACK's main/sub status to ours; an unknown main status maps to None, kept verbatim."""
    if sub in _SUB_STATUS:
        return _SUB_STATUS[sub], sub
    if main in _MAIN_STATUS:
        return _MAIN_STATUS[main], sub[:MAX_SUB_STATUS] if sub else sub
    verbatim = "/".join(part for part in (main, sub) if part) or None
    return None, verbatim[:MAX_SUB_STATUS] if verbatim else None


def parse_push(raw_body: bytes) -> Push:
    """Parse a stored push body; raises PushError with a readable reason whatever the body holds."""
    envelope = load_model(raw_body, PushEnvelope, PushError, check_envelope)
    data = envelope.data
    number = normalise_17track(data.number)
    if not number:
        raise PushError("missing 'data.number' string")
    base = {"event": envelope.event, "number": number, "carrier": data.carrier or 0, "tag": data.tag}
    if envelope.event != EVENT_UPDATED:
        return Push(**base)
    if data.track_info is None:
        raise PushError("TRACKING_UPDATED without a 'track_info' object")
    latest_status = data.track_info.latest_status or LatestStatus()
    latest_event = data.track_info.latest_event or LatestEvent()
    status, sub_status = map_status(latest_status.status, latest_status.sub_status)
    event_time = parse_time(latest_event.time_utc, PushError) or parse_time(latest_event.time_iso, PushError)
    return Push(
        **base,
        status=status,
        sub_status=sub_status,
        event_time=event_time,
        description=latest_event.description,
        carrier_name=data.track_info.carrier_name,
    )
