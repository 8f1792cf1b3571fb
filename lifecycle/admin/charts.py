"""Charts drawn on the server as inline SVG: no script, no CDN, readable without internet.

Each function returns markup sized by a viewBox, so the chart scales to a laptop or a phone. Every
label goes through `escape`; the numbers are also given as text (a <title> per bar) for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 720, 220, 36


def _svg_open(height: int, label: str) -> str:
    return f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}">'


def usage_bars(buckets: Sequence[dict]) -> Markup:
    """One horizontal bar per limited bucket: used against its limit."""
    rows = [b for b in buckets if b.get("limit")]
    if not rows:
        return Markup('<p class="muted">No limited bucket in force (no plan): everything is overage.</p>')
    height = 30 * len(rows) + 10
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="quota used per bucket">'
    ]
    for index, bucket in enumerate(rows):
        y = 8 + index * 30
        share = min(1.0, bucket["used"] / bucket["limit"]) if bucket["limit"] else 0
        full = WIDTH - 200
        label = escape(f"{bucket['bucket']} ({bucket['period']})")
        figures = escape(f"{bucket['used']:,} / {bucket['limit']:,}")
        kind = "bar-danger" if share >= 0.95 else "bar-warn" if share >= 0.8 else "bar"
        parts.append(
            f'<text x="0" y="{y + 15}" class="label">{label}</text>'
            f'<rect x="190" y="{y}" width="{full}" height="20" class="track"/>'
            f'<rect x="190" y="{y}" width="{full * share:.1f}" height="20" class="{kind}">'
            f"<title>{label}: {figures}</title></rect>"
            f'<text x="{WIDTH - 4}" y="{y + 15}" class="label end">{figures}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# The projection runs at most this far past today (a forecast years away would squash the history);
# with no exhaustion date (the free quota covers the burn) it is drawn this far, to show the trend.
PROJECTION_MAX_DAYS = 90
PROJECTION_TREND_DAYS = 30


@dataclass(frozen=True)
class _Frame:
    """Maps days and units onto the plot: days from `first` over `span` days, units up to `top`."""

    first: date
    span: int
    top: float

    def x(self, day: date) -> float:
        return PAD + (WIDTH - 2 * PAD) * (day - self.first).days / self.span

    def y(self, units: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * units / self.top


@dataclass(frozen=True)
class _Projection:
    today: date
    used: int
    end: date
    level: float
    # The day the plan runs out, when it falls inside the chart; else None.
    runs_out: date | None


def daily_chart(days: Sequence[tuple[date, int]], remaining: int | None, forecast: str | None,
                per_day: float, unit: str) -> Markup:  # fmt: skip
    """Daily consumption as bars, the cumulative use over the period as a line, and that line's
    projection at the 30-day burn rate (dashed) up to the plan limit, on the day the plan runs out."""
    if not any(units for _, units in days):
        return Markup(f'<p class="muted">Nothing consumed in the last {len(days)} days.</p>')
    cumulative = list(accumulate(units for _, units in days))
    projection = _projection(days[-1][0], cumulative[-1], per_day, forecast)
    end = projection.end if projection else days[-1][0]
    top = max(cumulative[-1], projection.level if projection else 0) * 1.08 or 1
    frame = _Frame(days[0][0], max(1, (end - days[0][0]).days + 1), top)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(unit)} used '
        f'per day and in all over the last {len(days)} days, with the projection to the plan limit">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
        _daily_bars(days, frame, unit),
        _cumulative_line(days, cumulative, frame, unit),
        _projection_lines(projection, remaining, frame, unit) if projection else "",
        f'<text x="{PAD}" y="{HEIGHT - 10}" class="label">{days[0][0].isoformat()}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" class="label end">{end.isoformat()}</text>',
        _forecast_label(per_day, forecast, remaining, unit),
        "</svg>",
    ]
    return Markup("".join(parts))


def _projection(today: date, used: int, per_day: float, forecast: str | None) -> _Projection | None:
    if per_day <= 0:
        return None
    horizon = today + timedelta(days=PROJECTION_MAX_DAYS)
    runs_out = max(today, date.fromisoformat(forecast)) if forecast else None
    end = min(runs_out, horizon) if runs_out else today + timedelta(days=PROJECTION_TREND_DAYS)
    level = used + per_day * (end - today).days
    return _Projection(today, used, end, level, runs_out if runs_out and runs_out <= horizon else None)


def _daily_bars(days: Sequence[tuple[date, int]], frame: _Frame, unit: str) -> str:
    """Bars in the lower third of the plot, on a scale of their own (their peak is labelled)."""
    peak = max(units for _, units in days)
    height = (HEIGHT - 2 * PAD) / 3
    width = max(1.0, frame.x(days[0][0] + timedelta(days=1)) - frame.x(days[0][0]) - 1)
    parts = [f'<text x="{PAD}" y="{PAD - 10}" class="label">bars: {escape(unit)} per day, '
             f"peak {peak:,}; line: in all</text>"]  # fmt: skip
    for day, units in days:
        bar = height * units / peak
        parts.append(
            f'<rect x="{frame.x(day):.1f}" y="{HEIGHT - PAD - bar:.1f}" width="{width:.1f}" '
            f'height="{bar:.1f}" class="bar daily"><title>{day.isoformat()}: {units:,}</title></rect>'
        )
    return "".join(parts)


def _cumulative_line(days: Sequence[tuple[date, int]], cumulative: list[int], frame: _Frame,
                     unit: str) -> str:  # fmt: skip
    pairs = zip(days, cumulative, strict=True)
    points = " ".join(f"{frame.x(day):.1f},{frame.y(total):.1f}" for (day, _), total in pairs)
    words = escape(f"{cumulative[-1]:,} {unit} used in {len(days)} days")
    return f'<polyline points="{points}" class="cumulative"><title>{words}</title></polyline>'


def _projection_lines(p: _Projection, remaining: int | None, frame: _Frame, unit: str) -> str:
    """The dashed projection; where the plan runs out inside the chart, the limit it reaches and the day."""
    parts = [
        f'<line x1="{frame.x(p.today):.1f}" y1="{frame.y(p.used):.1f}" x2="{frame.x(p.end):.1f}" '
        f'y2="{frame.y(p.level):.1f}" class="forecast projection"><title>projected at the 30-day burn '
        f"rate to {p.end.isoformat()}</title></line>"
    ]
    if p.runs_out is not None:
        x, y = frame.x(p.runs_out), frame.y(p.level)
        left = f"{remaining:,} {unit} left today" if remaining is not None else "plan limit"
        parts.append(
            f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" class="limit">'
            f"<title>{escape(f'plan limit: {left}')}</title></line>"
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{HEIGHT - PAD}" class="limit exhausted"/>'
            f'<text x="{x - 4:.1f}" y="{y + 14:.1f}" class="label end forecast-label">'
            f"{escape(f'plan limit, runs out {p.runs_out.isoformat()}')}</text>"
        )
    return "".join(parts)


def _forecast_label(per_day: float, forecast: str | None, remaining: int | None, unit: str) -> str:
    if per_day <= 0:
        return f'<text x="{WIDTH - PAD}" y="{PAD - 10}" class="label end">no recent use: no forecast</text>'
    if forecast:
        left = f" — {remaining:,} left, runs out on {forecast}" if remaining is not None else ""
        words = f"burn {per_day:.2f} {unit}/day{left}"
    else:
        words = f"burn {per_day:.2f} {unit}/day — the monthly free quota covers it"
    return f'<text x="{WIDTH - PAD}" y="{PAD - 10}" class="label end forecast-label">{escape(words)}</text>'


def plan_bars(plans: Sequence[dict], recommended: str | None, currency: str) -> Markup:
    """Each plan's yearly cost for the observed volume (average × 12), the recommended one marked."""
    priced = [(p, p["average_x12"].get("cost")) for p in plans]
    known = [float(total) for _, total in priced if total is not None]
    if not known:
        return Markup('<p class="muted">No plan has a known price for this volume.</p>')
    top = max(known) or 1.0
    height = 30 * len(priced) + 10
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="yearly cost per plan">'
    ]
    for index, (plan, total) in enumerate(priced):
        y = 8 + index * 30
        name = escape(plan["plan"] + (" (recommended)" if plan["plan"] == recommended else ""))
        width = 0 if total is None else (WIDTH - 330) * float(total) / top
        text = "price unknown" if total is None else f"{total} {currency}"
        kind = "bar-good" if plan["plan"] == recommended else "bar"
        parts.append(
            f'<text x="0" y="{y + 15}" class="label">{name}</text>'
            f'<rect x="200" y="{y}" width="{width:.1f}" height="20" class="{kind}">'
            f"<title>{name}: {escape(text)}</title></rect>"
            f'<text x="{WIDTH - 4}" y="{y + 15}" class="label end">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
