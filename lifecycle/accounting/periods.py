"""Billing periods: calendar months in the account's time zone, plan years from the start date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def local_date(when: datetime, tz: ZoneInfo) -> date:
    return when.astimezone(tz).date()


def month_of(when: datetime, tz: ZoneInfo) -> str:
    """'YYYY-MM' of the instant in the account's zone: 23:59:59.999 on the 31st is still that month."""
    return local_date(when, tz).strftime("%Y-%m")


def _add_years(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a year without one
        return start.replace(year=start.year + years, day=28)


def _add_months(start: date, months: int) -> date:
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    day = min(start.day, 28) if start.day > 28 else start.day
    return date(year, month + 1, day)


def plan_period_start(when: datetime, tz: ZoneInfo, plan_start: date | None, length: str) -> date:
    """First day of the plan period holding `when`; without a start date, calendar years/months."""
    today = local_date(when, tz)
    if length == "month":
        anchor = plan_start or date(today.year, today.month, 1)
        step = _add_months
    else:
        anchor = plan_start or date(today.year, 1, 1)
        step = _add_years
    n = 0
    while step(anchor, n + 1) <= today:
        n += 1
    while step(anchor, n) > today:
        n -= 1
    return step(anchor, n)


def plan_period_end(start: date, length: str) -> date:
    """The first day after the period."""
    return _add_months(start, 1) if length == "month" else _add_years(start, 1)


def next_month_start(when: datetime, tz: ZoneInfo) -> datetime:
    today = local_date(when, tz)
    first = _add_months(date(today.year, today.month, 1), 1)
    return datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
