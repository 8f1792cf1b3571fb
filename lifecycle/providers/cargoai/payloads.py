"""The shape of a CargoAi tracking callback, as far as this service reads it (reference/awb.md §1.4).

Codes and the AWB must be clean strings; places and flights are descriptive text, kept even when a
lone surrogate has to be replaced. Every other field CargoAi sends is ignored.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lifecycle.providers.validation import Identifier, free_text

# The sub_status column holds the code; real codes are three letters.
MAX_CODE = 32


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Flight(_Model):
    number: free_text(32) | None = None  # type: ignore[valid-type]


class Event(_Model):
    code: Annotated[Identifier, Field(max_length=MAX_CODE)]
    eventDate: Identifier | None = None  # noqa: N815  (CargoAi's field names)
    eventLocation: free_text(200) | None = None  # type: ignore[valid-type]  # noqa: N815
    flight: Flight | None = None
    flightNumber: free_text(32) | None = None  # type: ignore[valid-type]  # noqa: N815


class CallbackBody(_Model):
    awb: Annotated[Identifier, Field(max_length=64)]
    oldEvents: list[Event] | None = None  # noqa: N815
    events: list[Event] | None = None
    newEvents: list[Event] | None = None  # noqa: N815
