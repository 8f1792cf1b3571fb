"""The shipments page's query: filters, number-prefix and tag search, keyset pages, CSV export.

Pages are cut by a cursor (the sort value and id of the last row shown), never by OFFSET, so page
1,000 costs what page 1 costs. Rows without a value for the sort column come last.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.providers import numbers
from lifecycle.providers.validation import storable
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.queries import shipment_json
from lifecycle.web.api_input import MAX_STALE_DAYS

SORTS = {"recent": Shipment.id, "last_event": Shipment.last_event_at, "registered": Shipment.registered_at}
PAGE_SIZE = 50
CSV_COLUMNS = ("provider", "number", "carrier", "status", "sub_status", "tracking", "last_event_at",
               "last_event", "registered_at", "stopped_at", "tag", "cost_units", "cost_money",
               "cost_currency", "error_code", "last_error")  # fmt: skip


# Midnight in any zone on these days is still a datetime in UTC, and so is the day after the last.
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)
# A cursor this page wrote is well under 100 characters; ids are BIGINT.
MAX_CURSOR_CHARS, MAX_ROW_ID = 200, 2**63 - 1


class BadFilter(ValueError):
    """A filter value that cannot be read (shown to the operator, nothing is queried)."""


@dataclass(frozen=True)
class Filters:
    provider: str = ""
    status: str = ""
    tracking: str = ""
    stale_days: int | None = None
    has_error: bool = False
    registered_from: date | None = None
    registered_to: date | None = None
    q: str = ""
    tag: str = ""
    sort: str = "recent"

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        return cls(
            provider=_text(args, "provider"),
            status=_text(args, "status"),
            tracking=_text(args, "tracking"),
            stale_days=_stale_days(args.get("stale_days", "")),
            has_error=args.get("has_error") in ("1", "on", "true"),
            registered_from=_date(args, "registered_from"),
            registered_to=_date(args, "registered_to"),
            q=numbers.normalise_prefix(_text(args, "q")),
            tag=_text(args, "tag"),
            sort=args.get("sort") if args.get("sort") in SORTS else "recent",
        )

    def query_args(self) -> dict[str, str]:
        """The filters as URL arguments (empty ones left out), for links and the export."""
        values = {
            "provider": self.provider, "status": self.status, "tracking": self.tracking,
            "stale_days": "" if self.stale_days is None else str(self.stale_days),
            "has_error": "1" if self.has_error else "", "q": self.q, "tag": self.tag,
            "registered_from": self.registered_from.isoformat() if self.registered_from else "",
            "registered_to": self.registered_to.isoformat() if self.registered_to else "",
            "sort": "" if self.sort == "recent" else self.sort,
        }  # fmt: skip
        return {k: v for k, v in values.items() if v}


@dataclass
class Page:
    rows: list[Shipment] = field(default_factory=list)
    next_cursor: str | None = None
    prev_cursor: str | None = None


def _text(args: Any, name: str) -> str:
    value = args.get(name, "").strip()
    if storable(value) != value:  # PostgreSQL refuses NUL in a query parameter
        raise BadFilter(f"{name} could not be read: it holds a NUL or invalid character")
    return value


def _stale_days(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) > MAX_STALE_DAYS:
        raise BadFilter(f"stale_days must be a whole number of days from 0 to {MAX_STALE_DAYS}")
    return int(raw)


def _date(args: Any, name: str) -> date | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise BadFilter(f"{name} could not be read: {exc}") from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadFilter(f"{name} must be a date from {FIRST_DAY} to {LAST_DAY}")
    return day


def filtered(filters: Filters, tz: ZoneInfo) -> Select[tuple[Shipment]]:
    stmt = select(Shipment)
    conditions = {
        Shipment.provider: filters.provider, Shipment.status: filters.status,
        Shipment.tracking: filters.tracking, Shipment.tag: filters.tag,
    }  # fmt: skip
    for column, value in conditions.items():
        if value:
            stmt = stmt.where(column == value)
    if filters.q:
        stmt = stmt.where(Shipment.number.startswith(filters.q, autoescape=True))
    if filters.has_error:
        stmt = stmt.where(Shipment.last_error.is_not(None))
    if filters.stale_days is not None:
        cutoff = utcnow() - timedelta(days=filters.stale_days)
        stmt = stmt.where(or_(Shipment.last_seen_at < cutoff, Shipment.last_seen_at.is_(None)))
    if filters.registered_from:
        stmt = stmt.where(Shipment.registered_at >= _start_of(filters.registered_from, tz))
    if filters.registered_to:
        stmt = stmt.where(Shipment.registered_at < _start_of(filters.registered_to + timedelta(days=1), tz))
    return stmt


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def page(session: Session, filters: Filters, tz: ZoneInfo, after: str = "", before: str = "",
         size: int = PAGE_SIZE) -> Page:  # fmt: skip
    """One page after (or before) a cursor; the cursors of its neighbours, when they exist."""
    backwards = bool(before) and not after
    cursor = _decode(before if backwards else after)
    column = SORTS[filters.sort]
    stmt = filtered(filters, tz)
    if cursor is not None:
        stmt = stmt.where(_beyond(column, cursor, backwards))
    order = (_asc(column), Shipment.id.asc()) if backwards else (_desc(column), Shipment.id.desc())
    rows = list(session.scalars(stmt.order_by(*order).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    result = Page(rows)
    if rows:
        first, last = _encode(column, rows[0]), _encode(column, rows[-1])
        if backwards:  # we came back from a later page, so there is a next one
            result.next_cursor, result.prev_cursor = last, (first if more else None)
        else:
            result.next_cursor, result.prev_cursor = (last if more else None), (first if cursor else None)
    return result


def _desc(column: Any) -> Any:
    return column.desc() if column is Shipment.id else column.desc().nulls_last()


def _asc(column: Any) -> Any:
    return column.asc() if column is Shipment.id else column.asc().nulls_first()


def _beyond(column: Any, cursor: tuple[Any, int], backwards: bool) -> Any:
    """Rows after the cursor in page order (descending, nulls last), or before it when going back."""
    value, row_id = cursor
    if column is Shipment.id:
        return Shipment.id > row_id if backwards else Shipment.id < row_id
    if backwards:
        if value is None:
            return or_(column.is_not(None), Shipment.id > row_id)
        return or_(column > value, and_(column == value, Shipment.id > row_id))
    if value is None:
        return and_(column.is_(None), Shipment.id < row_id)
    return or_(column < value, and_(column == value, Shipment.id < row_id), column.is_(None))


def _encode(column: Any, shipment: Shipment) -> str:
    value = getattr(shipment, column.key)
    if isinstance(value, datetime):
        value = value.isoformat()
    if column is Shipment.id:
        value = None
    raw = json.dumps([value, shipment.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, int] | None:
    if not cursor:
        return None
    try:
        if len(cursor) > MAX_CURSOR_CHARS:  # also keeps json.loads clear of deep nesting
            raise ValueError("too long")
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if type(row_id) is not int or not 0 <= row_id <= MAX_ROW_ID:  # true/false are ints too
            raise ValueError("not a row id")
        return (_utc(value) if isinstance(value, str) else None), row_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadFilter("that page link is not valid any more; start from the first page") from exc


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("a time without a zone")
    return when.astimezone(UTC)  # OverflowError at the calendar's edges


def csv_lines(session: Session, filters: Filters, tz: ZoneInfo, chunk: int = 1000) -> Iterator[str]:
    """The whole filtered list as CSV, streamed: rows are fetched `chunk` at a time, never all at once."""
    column = SORTS[filters.sort]
    stmt = filtered(filters, tz).order_by(_desc(column), Shipment.id.desc())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    rows = session.scalars(stmt.execution_options(yield_per=chunk))
    for count, shipment in enumerate(rows, 1):
        writer.writerow(_csv_row(shipment))
        if count % chunk == 0:
            # Memory stays flat: the session's identity map holds rows weakly, so written ones go.
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _csv_row(shipment: Shipment) -> list[Any]:
    item = shipment_json(shipment)
    cost = item["cost"]
    item.update(cost_units=cost["units"], cost_money=cost["money"], cost_currency=cost["currency"])
    return [_spreadsheet_safe(item.get(name)) for name in CSV_COLUMNS]


def _spreadsheet_safe(value: Any) -> Any:
    # A provider string starting with = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
