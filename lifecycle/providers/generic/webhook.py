"""Generic pushes: the signature, the body's models, and the body as canonical events.

A body is one event `{"number", "status", "event_time"?, "description"?, "carrier"?, "event_id"?}`
or a batch `{"events": [...]}`. Every surprise in a validly signed body becomes a `PushError` with
a readable reason (invariant 8).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from lifecycle.providers.base import BodyError, CanonicalEvent
from lifecycle.providers.generic.config import status_key
from lifecycle.providers.validation import Identifier, describe, free_text, load_json, parse_time

PROVIDER = "generic"
SIGNATURE_HEADER = "X-Signature"
SIGNATURE_PREFIX = "sha256="
# The columns' limits: shipments.number, transitions.sub_status and transitions.dedupe_key.
MAX_NUMBER = 64
MAX_STATUS = 64
MAX_EVENT_ID = 64
MAX_EVENTS = 1000
MAX_CARRIER = 2**31 - 1
Description = free_text(2000)


class PushError(BodyError):
    """The body is not a generic push this service can apply."""


def normalise(raw: str) -> str:
    return (raw or "").strip().upper()


def sign(raw: bytes, secret: str) -> str:
    """The X-Signature value for `raw`: what a sender computes, and what is compared here."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def signature_is_valid(raw: bytes, header: Any, secret: str) -> bool:
    """Compared as bytes in constant time; whatever the header holds (absent, non-ASCII, a lone
    surrogate, another type), the answer is False rather than an exception."""
    if not isinstance(header, str) or not secret:
        return False
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(given, sign(raw, secret).encode())


def header_value(headers: Mapping[str, str]) -> Any:
    return headers.get(SIGNATURE_HEADER)


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    number: Annotated[Identifier, Field(min_length=1)]
    status: Annotated[Identifier, Field(min_length=1, max_length=MAX_STATUS)]
    event_time: datetime | None = None
    description: Description | None = None
    carrier: Annotated[StrictInt, Field(ge=0, le=MAX_CARRIER)] = 0
    event_id: Annotated[Identifier, Field(min_length=1, max_length=MAX_EVENT_ID)] | None = None

    @field_validator("number")
    @classmethod
    def _storable_number(cls, value: str) -> str:
        number = normalise(value)
        if not number:
            raise ValueError("empty tracking number")
        if len(number) > MAX_NUMBER:
            raise ValueError(f"{len(number)} characters; at most {MAX_NUMBER}")
        return number

    @field_validator("status")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank status")
        return value

    @field_validator("event_time", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("expected an ISO-8601 string such as 2026-11-01T08:00:00Z")
        return parse_time(value, ValueError)

    @property
    def dedupe_key(self) -> str:
        if self.event_id:
            return self.event_id
        when = self.event_time.isoformat() if self.event_time else ""
        raw = f"{self.number}|{self.status}|{when}|{self.description or ''}"
        return hashlib.sha256(raw.encode()).hexdigest()[:40]


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]


def events_of(payload: Any) -> tuple[Event, ...]:
    """The decoded body's events, in the order the body lists them; PushError for anything else."""
    if not isinstance(payload, dict):
        raise PushError(f"expected a JSON object, got {type(payload).__name__}")
    try:
        if "events" in payload:
            return tuple(Batch.model_validate(payload).events)
        return (Event.model_validate(payload),)
    except ValidationError as exc:
        raise PushError(describe(exc)) from None
    except RecursionError:
        raise PushError("nested too deeply") from None


def parse(raw: bytes, status_map: Mapping[str, str]) -> tuple[CanonicalEvent, ...]:
    return tuple(canonical(event, status_map) for event in events_of(load_json(raw, PushError)))


def canonical(event: Event, status_map: Mapping[str, str]) -> CanonicalEvent:
    return CanonicalEvent(
        number=event.number,
        carrier=event.carrier,
        # An unmapped word: no status (the core records "unknown_status"), the word kept verbatim.
        status=status_map.get(status_key(event.status)),
        sub_status=event.status,
        event_time=event.event_time,
        description=event.description,
        dedupe_key=event.dedupe_key,
    )
