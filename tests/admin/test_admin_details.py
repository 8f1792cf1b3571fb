"""Admin details: the quota forecast chart, the timeline's received times, provider names from the
registry, the inbox's "requeue all", operations held by a pause, times through the local-time filter,
and the CLI's shipment JSON with its cost."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from lifecycle import runtime
from lifecycle.accounting import service as accountant
from lifecycle.accounting.rules import BillableEvent
from lifecycle.admin import charts
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations import pause
from lifecycle.operations.models import Operation
from lifecycle.outbound import endpoints
from lifecycle.providers import registry
from lifecycle.shipments.models import Shipment, Transition
from tests.admin_support import add_shipments, csrf

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 11, 20)


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(str(svg).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def ninety_days(per_day: int = 10) -> list[tuple[date, int]]:
    return [(TODAY - timedelta(days=89 - i), per_day) for i in range(90)]


def cumulative_points(svg: ET.Element) -> list[tuple[float, float]]:
    line = svg.find(f"{SVG}polyline[@class='cumulative']")
    assert line is not None, "no cumulative line"
    return [tuple(map(float, point.split(","))) for point in line.get("points", "").split()]  # type: ignore[misc]


def lines(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}line") if kind in (e.get("class") or "").split()]


def test_the_forecast_chart_draws_the_cumulative_line_and_its_projection_to_the_plan_limit():
    runs_out = TODAY + timedelta(days=45)
    svg = parsed(charts.daily_chart(ninety_days(), 450, runs_out.isoformat(), 10.0, "quota"))
    points = cumulative_points(svg)
    assert len(points) == 90
    assert all(b[0] > a[0] and b[1] < a[1] for a, b in zip(points, points[1:], strict=False))  # it rises
    (projection,) = lines(svg, "projection")
    assert (float(projection.get("x1")), float(projection.get("y1"))) == points[-1]  # from today's total
    limit = next(e for e in lines(svg, "limit") if "exhausted" not in e.get("class"))
    (day,) = lines(svg, "exhausted")
    assert projection.get("y2") == limit.get("y1") == limit.get("y2")  # it reaches the limit …
    assert projection.get("x2") == day.get("x1")  # … on the day the plan runs out
    texts = "".join(svg.itertext())
    assert f"plan limit, runs out {runs_out}" in texts and "450 quota left today" in texts
    # Drawn to scale: 10 a day for 45 more days is as far above today's total as 45 days are wide.
    per_day_x = (points[-1][0] - points[0][0]) / 89
    per_day_y = (points[0][1] - points[-1][1]) / 89
    rise = float(projection.get("y1")) - float(projection.get("y2"))
    run = float(projection.get("x2")) - float(projection.get("x1"))
    assert rise / per_day_y == pytest.approx(45, rel=0.01) and run / per_day_x == pytest.approx(45, rel=0.01)


def test_a_forecast_far_away_is_projected_to_the_chart_edge_without_a_limit():
    far = TODAY + timedelta(days=400)
    svg = parsed(charts.daily_chart(ninety_days(), 4000, far.isoformat(), 10.0, "quota"))
    assert lines(svg, "projection") and not lines(svg, "limit")
    assert f"runs out on {far}" in "".join(svg.itertext())
    assert (TODAY + timedelta(days=charts.PROJECTION_MAX_DAYS)).isoformat() in "".join(svg.itertext())


def test_without_an_exhaustion_date_the_trend_is_projected_without_a_limit():
    svg = parsed(charts.daily_chart(ninety_days(2), None, None, 2.0, "quota"))
    assert len(lines(svg, "projection")) == 1 and not lines(svg, "limit")
    assert "the monthly free quota covers it" in "".join(svg.itertext())
    idle = parsed(charts.daily_chart(ninety_days(0)[:-1] + [(TODAY, 3)], None, None, 0.0, "quota"))
    assert cumulative_points(idle) and not lines(idle, "projection")


def test_the_quota_page_draws_the_cumulative_line_and_the_limit(app, client):
    now = utcnow()
    with app.app_context():
        account = runtime.account("17track")
        keys = [f"17track:register:N{n}:0:1" for n in range(150)]
        with db.new_session() as session, session.begin():
            accountant.charge(session, account, [BillableEvent("17track", "register", k, now) for k in keys])
    html = client.get("/admin/quota").get_data(as_text=True)
    chart = re.search(
        r'<svg class="chart"[^>]*aria-label="quota used per day and in all.*?</svg>', html, re.S
    )
    assert chart, html[-3000:]
    svg = parsed(chart.group(0))
    assert cumulative_points(svg)[-1][1] < cumulative_points(svg)[0][1]
    # 150 used this month on the free plan: the 100 free are gone, so it runs out today.
    assert lines(svg, "projection") and lines(svg, "limit")
    assert f"runs out {now.date().isoformat()}" in "".join(svg.itertext())


def test_the_timeline_shows_when_the_inbox_row_was_received(app, client):
    (shipment_id,) = add_shipments(app, 1)
    received = utcnow() - timedelta(hours=3)
    with app.app_context(), db.new_session() as session, session.begin():
        row = InboxEvent(provider="17track", body=b"{}", status="processed", received_at=received)
        session.add(row)
        session.flush()
        session.add(Transition(shipment_id=shipment_id, inbox_id=row.id, kind="transition",
                               from_status="pending", to_status="in_transit", dedupe_key="k",
                               recorded_at=utcnow()))  # fmt: skip
    html = client.get("/admin/shipments/17track/RR000000001CN").get_data(as_text=True)
    cells = re.search(r'<tr class="kind-transition">(.*?)</tr>', html, re.S).group(1)
    stamp = received.strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(rf'<td><time datetime="{stamp}[.\d]*Z"', cells), cells


def test_the_provider_filter_lists_the_registry_s_providers(client):
    html = client.get("/admin/shipments").get_data(as_text=True)
    select_html = re.search(r'<select[^>]*name="provider".*?</select>', html, re.S).group(0)
    assert re.findall(r"<option\s*(?:selected)?>([^<]+)</option>", select_html) == sorted(registry.names())
    assert "generic" in registry.names()


def test_requeue_all_failed_inbox_rows(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add_all([InboxEvent(provider="17track", body=b"{}", status="failed", error=f"broken {n}")
                         for n in range(3)])  # fmt: skip
        session.add(InboxEvent(provider="17track", body=b"{}", status="processed"))
    token = csrf(client, "/admin/inbox")
    response = client.post(
        "/admin/inbox/requeue", data={"all": "yes", "csrf_token": token}, follow_redirects=True
    )
    assert "Requeued 3 failed row(s)" in response.get_data(as_text=True)
    with app.app_context(), db.new_session() as session:
        statuses = [r.status for r in session.scalars(select(InboxEvent).order_by(InboxEvent.id))]
    assert statuses == ["pending", "pending", "pending", "processed"]


def test_the_paused_tab_lists_the_operations_a_pause_holds(app, client):
    until = utcnow() + timedelta(hours=2)
    with app.app_context(), db.new_session() as session, session.begin():
        for n, kind in enumerate(("register", "register", "stoptrack")):
            session.add(Operation(provider="17track", kind=kind, number=f"HELD{n}", idempotency_key=f"k{n}"))
        pause.pause(session, "17track", "register", -18019908, "quota used up", until)
    html = client.get("/admin/operations?status=paused").get_data(as_text=True)
    table = re.search(r'<table id="paused-operations">.*?</table>', html, re.S).group(0)
    assert "HELD0" in table and "HELD1" in table and "HELD2" not in table
    stamp = until.strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(rf'until <time datetime="{stamp}[.\d]*Z" title="[^"]+ UTC">', html)
    assert re.search(r'since <time datetime="[^"]+Z"', html)


def test_an_endpoint_s_last_success_is_a_local_time(app, client):
    succeeded = utcnow() - timedelta(hours=1)
    with app.app_context(), db.new_session() as session, session.begin():
        endpoint = endpoints.add(session, "http://127.0.0.1:9/hook", None, True)
        endpoint.last_success_at = succeeded
    html = client.get("/admin/endpoints").get_data(as_text=True)
    stamp = succeeded.strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(rf'<td><time datetime="{stamp}[.\d]*Z" title="[^"]+ UTC">', html)


def test_cli_shipments_json_carries_the_cost(app, run_cli):
    from decimal import Decimal

    add_shipments(app, 1, cost_units=3, cost_amount=Decimal("0.50"), cost_currency="CNY")
    (item,) = json.loads(run_cli("shipments", "--json"))["shipments"]
    assert item["number"] == "RR000000001CN"
    assert item["cost"] == {"units": 3, "money": "0.5", "currency": "CNY"}


@pytest.mark.parametrize("sort", ["recent", "last_event", "registered"])
def test_the_has_an_error_filter_reads_only_the_shipments_with_an_error(app, sort):
    """The partial indexes of migration 0012: a page of shipments with an error never walks every
    shipment (0.4 s at 1,000,000 on PostgreSQL when few or none match)."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import text

    from lifecycle.admin import shipment_list

    add_shipments(app, 300)
    filters = shipment_list.Filters(has_error=True, sort=sort)
    column = shipment_list.SORTS[sort]
    stmt = shipment_list.filtered(filters, ZoneInfo("UTC")).order_by(
        shipment_list._desc(column), Shipment.id.desc()
    )
    with app.app_context(), db.new_session() as session:
        compiled = str(stmt.limit(51).compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE shipments"))
            session.execute(text("SET LOCAL enable_seqscan = off"))  # as at a million rows
            plan = "\n".join(session.scalars(text(f"EXPLAIN {compiled}")))
        else:
            plan = "\n".join(row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_shipments_with_error_" in plan, plan
