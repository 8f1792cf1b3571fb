"""Reading the JSON API's query parameters and bodies: every bad value is a 4xx that says why.

Views stay thin: they call these, which either return clean values or abort with 400/413, so no
request, however odd, reaches the database with a value it cannot hold (invariant 8).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Annotated, Any, NoReturn

from flask import abort, request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError
from werkzeug.datastructures import MultiDict

from lifecycle.providers.validation import Identifier, describe, load_json
from lifecycle.shipments.registration import Registration

MAX_NUMBERS_PER_REQUEST = 1000
MAX_PAGE = 1000
MAX_ID = 2**63 - 1
MAX_CARRIER = 2**31 - 1
# Longer than any real number in either provider, short enough to never reach the database.
MAX_NUMBER_CHARS = 100
MAX_STALE_DAYS = 36_500

Carrier = Annotated[int, Field(ge=0, le=MAX_CARRIER)]
Text = Annotated[Identifier, Field(max_length=MAX_NUMBER_CHARS)]


def bad_request(message: str) -> NoReturn:
    abort(400, message)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    carrier: Carrier | None = None
    lang: Annotated[Identifier, Field(max_length=16)] | None = None
    tag: Annotated[Identifier, Field(max_length=128)] | None = None
    provider: Annotated[Identifier, Field(max_length=16)] | None = None
    mode: Annotated[Identifier, Field(max_length=16)] | None = None
    emails: Annotated[list[Annotated[Identifier, Field(max_length=254)]], Field(max_length=5)] | None = None
    airline_code: Annotated[Identifier, Field(max_length=8)] | None = None


class ShipmentEntry(_Entry):
    number: Text


class RegisterBody(_Entry):
    """`number`, or `numbers` with shared defaults, or `shipments` each with its own fields."""

    number: Text | None = None
    numbers: list[Text] | None = None
    shipments: list[ShipmentEntry] | None = None


def registrations(body: Any) -> list[Registration]:
    """The registrations a POST /api/shipments body asks for, or a 400/413 saying what is wrong."""
    if not isinstance(body, dict):
        bad_request("JSON object expected")
    for key in ("numbers", "shipments"):
        if isinstance(body.get(key), list) and len(body[key]) > MAX_NUMBERS_PER_REQUEST:
            abort(413, f"at most {MAX_NUMBERS_PER_REQUEST} numbers per request; use manage.py import")
    try:
        parsed = RegisterBody.model_validate(body)
    except ValidationError as exc:
        bad_request(f"bad shipment entry: {describe(exc)}")
    defaults = parsed.model_dump(exclude={"number", "numbers", "shipments"})
    if parsed.number:
        entries = [{**defaults, "number": parsed.number}]
    elif parsed.shipments:
        entries = [entry.model_dump() for entry in parsed.shipments]
    else:
        entries = [{**defaults, "number": number} for number in parsed.numbers or []]
    if not entries:
        bad_request("give 'number', 'numbers': [...] or 'shipments': [{number, carrier, lang, tag}]")
    return [_registration(entry, parsed.provider) for entry in entries]


def _registration(entry: dict[str, Any], provider: str | None) -> Registration:
    return Registration(
        entry["number"], entry.get("carrier") or None, entry.get("lang"), entry.get("tag"),
        entry.get("provider") or provider, entry.get("mode"), tuple(entry.get("emails") or ()),
        entry.get("airline_code"),
    )  # fmt: skip


class ActionBody(BaseModel):
    """What the lifecycle actions read; other keys are passed through untouched."""

    model_config = ConfigDict(extra="allow")

    carrier: Carrier | None = None
    carrier_new: Carrier | None = None
    to: Carrier | None = None
    tag: Annotated[StrictStr, Field(max_length=128)] | None = None
    lang: Annotated[StrictStr, Field(max_length=16)] | None = None
    confirm: StrictBool | None = None


def action_body() -> dict[str, Any]:
    """The body of a lifecycle action as a dict with checked values; empty when no body was sent."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    body = json_body(raw)
    if not isinstance(body, dict):
        bad_request('the body must be a JSON object, e.g. {"carrier": 3011}')
    try:
        ActionBody.model_validate(body)
    except ValidationError as exc:
        bad_request(describe(exc))
    return body


def json_body(raw: bytes | None = None) -> Any:
    """The request body as JSON, or 400 for anything JSON cannot be (deep nesting, huge integers)."""
    try:
        return load_json(request.get_data(cache=True) if raw is None else raw, ValueError)
    except ValueError as exc:
        bad_request(str(exc))


def int_arg(args: MultiDict[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high], or 400."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", raw.strip()):
        bad_request(f"{name} must be an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        bad_request(f"{name} must be an integer from {low} to {high}")
    return value


def text_arg(value: str | None, name: str, limit: int = MAX_NUMBER_CHARS) -> str | None:
    """A text parameter (query or path) short enough and storable, or 400."""
    if value is None:
        return None
    if len(value) > limit:
        bad_request(f"{name} is longer than {limit} characters")
    if "\x00" in value:
        bad_request(f"{name} contains a NUL character")
    return value


def stale_days(args: MultiDict[str, str]) -> float | None:
    raw = args.get("stale_days")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        bad_request("stale_days must be a number of days")
    if not math.isfinite(value) or not 0 <= value <= MAX_STALE_DAYS:
        bad_request(f"stale_days must be a number of days from 0 to {MAX_STALE_DAYS}")
    return value


def encode_cursor(after_id: int | None) -> str | None:
    return base64.urlsafe_b64encode(str(after_id).encode()).decode() if after_id else None


def after_id(cursor: str | None) -> int:
    """The id a `cursor` continues after, or 400."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        bad_request("invalid cursor")
    if not re.fullmatch(r"[0-9]{1,19}", text) or int(text) > MAX_ID:
        bad_request("invalid cursor")
    return int(text)


def period(args: MultiDict[str, str]) -> str | None:
    value = args.get("period")
    if not value:
        return None
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", value)
    # Years are bounded so that plan years and forecasts computed from the month stay in range.
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1970 <= int(match.group(1)) <= 2999:
        bad_request("period must be a month from 1970-01 to 2999-12, as YYYY-MM (e.g. 2026-11)")
    return value
