"""Template filters: dates in ACCOUNT_TIMEZONE (UTC on hover), ages, money and numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Flask
from markupsafe import Markup, escape

from lifecycle.db import utcnow


def local_time(value: datetime | str | None, tz: ZoneInfo) -> Markup:
    """A time in the account's zone, UTC on hover; also an ISO string, as the JSON-shaped reports give."""
    if isinstance(value, str):
        value = _from_iso(value)
    if value is None:
        return Markup('<span class="muted">—</span>')
    utc = value.isoformat().replace("+00:00", "Z")
    local = value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    title = f"{value.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(utc, title, local)


def _from_iso(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: datetime | None, now: datetime | None = None) -> str:
    """'3 d', '5 h', '12 min' — how long ago, at a glance."""
    if value is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - value).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def money(amount: Decimal | str | None, currency: str | None = "") -> str:
    # The accountant's reports say "unknown" where a price is (an overage without a list price).
    if amount is None or amount == "unknown":
        return "price unknown"
    value = Decimal(amount)
    cents = value.quantize(Decimal("0.01"))
    text = format(cents if cents == value else value.normalize(), "f")
    return f"{text} {currency}".strip() if currency else text


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def init_app(app: Flask) -> None:
    tz = ZoneInfo(app.config["SETTINGS"].account_timezone)
    app.jinja_env.filters["localtime"] = lambda value: local_time(value, tz)
    app.jinja_env.filters["age"] = age
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["num"] = number
    app.jinja_env.globals["account_timezone"] = str(escape(tz.key))
