"""Shared pieces of the provider payload models: text types, JSON decoding and readable errors.

A validly signed body may still hold anything (invariant 8): these turn every surprise into one
`ValueError` subclass with a message an operator can read, so a bad row fails alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, StrictStr, ValidationError

Model = TypeVar("Model", bound=BaseModel)

# Kept in `inbox.error` and shown in the admin: long enough to say what is wrong, never the body.
MAX_ERROR_CHARS = 500


def _storable_identifier(value: str) -> str:
    """Identifiers must be storable as they are: no lone surrogate, no NUL (PostgreSQL refuses both)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"invalid unicode (lone surrogate at position {exc.start})") from None
    if "\x00" in value:
        raise ValueError(f"a NUL character at position {value.index(chr(0))}")
    return value


# Lone surrogates and NUL: neither can be stored as text in every database.
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def storable(value: str) -> str:
    """Free text made storable: a lone surrogate or NUL becomes U+FFFD instead of failing the event."""
    return _UNSTORABLE.sub("\ufffd", value)


def _storable_or_none(value: Any) -> Any:
    return storable(value) if isinstance(value, str) else value


def _truncate(limit: int) -> AfterValidator:
    return AfterValidator(lambda value: value[:limit])


# A code or identifier: a JSON string of valid unicode (numbers, lists, objects are refused).
Identifier = Annotated[StrictStr, AfterValidator(_storable_identifier)]


def free_text(limit: int) -> Any:
    """Descriptive text: a string, made storable and cut to `limit` characters."""
    return Annotated[StrictStr, BeforeValidator(_storable_or_none), _truncate(limit)]


def load_json(raw: bytes, error: type[ValueError]) -> Any:
    """Decode a body; every way JSON can fail (syntax, encoding, huge integers, nesting) → `error`."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise error("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers over 4,300 digits
        raise error(f"malformed JSON: {readable(exc)}") from None


def load_model(
    raw: bytes, model: type[Model], error: type[ValueError], check_envelope: Callable[[Any], None]
) -> Model:
    """Decode a body, check that it is this provider's kind of body at all, then validate its shape;
    every failure is one `error` with a readable reason."""
    payload = load_json(raw, error)
    check_envelope(payload)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise error(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """`data.carrier: Input should be a valid integer (got 'DHL')`, for the first few problems."""
    parts = []
    for problem in exc.errors(include_url=False)[:3]:
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        shown = _short_repr(problem.get("input"))
        parts.append(f"{where}: {problem['msg']} (got {shown})")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails (an integer too long to print, say)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def readable(exc: BaseException) -> str:
    """An exception as one storable line: class, message, no lone surrogates, bounded length."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    text = f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__
    return storable(text)[:MAX_ERROR_CHARS]


def readable_message(exc: BaseException) -> str:
    """A parser's own error: its message alone (it already says what is wrong), made storable."""
    return storable(str(exc))[:MAX_ERROR_CHARS]


def parse_time(value: Any, error: type[ValueError], what: str = "event time") -> datetime | None:
    """An ISO-8601 time as aware UTC (no offset means UTC); None when absent; `error` when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # overflow: year 1 or 9999 shifted out of range
        raise error(f"unreadable {what} {value[:60]!r}") from exc
