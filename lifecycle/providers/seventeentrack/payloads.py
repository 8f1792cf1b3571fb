"""The shape of a 17TRACK push, as far as this service reads it (reference/17track.md §3.2-3.3).

Every field the parser uses is typed; everything else 17TRACK sends is ignored. Nulls are allowed
where the reference shows them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from lifecycle.providers.validation import Identifier, free_text

# The shipments table's limits: a number is String(64), a carrier a 32-bit integer, a tag String(128).
MAX_NUMBER = 64
MAX_CARRIER = 2**31 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _text_or_none(value: Any) -> Any:
    # A tag is a convenience copied at adoption: anything but a string is dropped, never fatal.
    return value if isinstance(value, str) else None


class LatestStatus(_Model):
    status: Identifier | None = None
    sub_status: Identifier | None = None


class LatestEvent(_Model):
    time_iso: Identifier | None = None
    time_utc: Identifier | None = None
    description: free_text(2000) | None = None  # type: ignore[valid-type]


def _carrier_name(value: Any) -> str | None:
    """`tracking.providers[0].provider.name` (reference/17track.md §3.3), or None for any other shape:
    a display name is never worth failing a push for."""
    # Looked up without raising: a push without a name is common, and an exception costs the drain.
    providers = value.get("providers") if isinstance(value, dict) else None
    first = providers[0] if isinstance(providers, list) and providers else None
    provider = first.get("provider") if isinstance(first, dict) else None
    name = provider.get("name") if isinstance(provider, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate
    return name.strip().replace("\x00", "")[:64]


class TrackInfo(_Model):
    latest_status: LatestStatus | None = None
    latest_event: LatestEvent | None = None
    # Named `tracking` in the payload; only the first provider's display name is read.
    carrier_name: Annotated[str | None, BeforeValidator(_carrier_name)] = Field(None, alias="tracking")


class PushData(_Model):
    number: Annotated[Identifier, Field(min_length=1, max_length=MAX_NUMBER)]
    carrier: Annotated[StrictInt, Field(ge=0, le=MAX_CARRIER)] | None = None
    tag: Annotated[free_text(128) | None, BeforeValidator(_text_or_none)] = None  # type: ignore[valid-type]
    track_info: TrackInfo | None = None


class PushEnvelope(_Model):
    event: Annotated[Identifier, Field(min_length=1, max_length=64)]
    data: PushData
