"""Charts drawn on the server as inline SVG: no script, no CDN, readable without internet.

Each function returns markup sized by a viewBox, so the chart scales to a laptop or a phone. Every
label goes through `escape`; the numbers are also given as text (a <title> per bar) for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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


def daily_chart(days: Sequence[tuple[date, int]], remaining: int | None, forecast: str | None,
                per_day: float, unit: str) -> Markup:  # fmt: skip
    """Daily consumption as bars, with the cumulative line and its projection to exhaustion (dashed)."""
    if not any(units for _, units in days):
        return Markup(f'<p class="muted">Nothing consumed in the last {len(days)} days.</p>')
    peak = max(1, max(units for _, units in days))
    span = len(days)
    step = (WIDTH - 2 * PAD) / span
    base = HEIGHT - PAD
    scale = (HEIGHT - 2 * PAD) / peak
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(unit)} consumed per day over the last {span} days">',
        f'<line x1="{PAD}" y1="{base}" x2="{WIDTH - PAD}" y2="{base}" class="axis"/>',
        f'<text x="{PAD}" y="{PAD - 10}" class="label">peak {peak:,} {escape(unit)}/day</text>',
    ]
    for index, (day, units) in enumerate(days):
        height = units * scale
        parts.append(
            f'<rect x="{PAD + index * step:.1f}" y="{base - height:.1f}" width="{max(1.0, step - 1):.1f}" '
            f'height="{height:.1f}" class="bar"><title>{day.isoformat()}: {units:,}</title></rect>'
        )
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 10}" class="label">{days[0][0].isoformat()}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" class="label end">{days[-1][0].isoformat()}</text>'
    )
    parts.append(_forecast_line(per_day, scale, base, forecast, remaining, unit))
    parts.append("</svg>")
    return Markup("".join(parts))


def _forecast_line(per_day: float, scale: float, base: float, forecast: str | None,
                   remaining: int | None, unit: str) -> str:  # fmt: skip
    """The 30-day burn rate as a dashed line across the chart, labelled with the exhaustion date."""
    if per_day <= 0:
        return f'<text x="{WIDTH - PAD}" y="{PAD - 10}" class="label end">no recent use: no forecast</text>'
    y = max(PAD, base - per_day * scale)
    if forecast:
        left = f" — {remaining:,} left, runs out on {forecast}" if remaining is not None else ""
        words = f"burn {per_day:.2f} {unit}/day{left}"
    else:
        words = f"burn {per_day:.2f} {unit}/day — the monthly free quota covers it"
    return (
        f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" class="forecast"/>'
        f'<text x="{WIDTH - PAD}" y="{PAD - 10}" class="label end forecast-label">{escape(words)}</text>'
    )


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
