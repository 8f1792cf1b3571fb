"""Admin pages over the test client: filters, keyset pages, search, CSV, bulk actions, one
shipment (escaped provider strings, refusals in the page), inbox, operations, tokens, quota."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select

from lifecycle import create_app
from lifecycle.accounting.models import BudgetAlert
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations import pause
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment, Transition
from tests.admin_support import add_shipments, create_admin, csrf, sign_in

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def numbers(html: str) -> list[str]:
    return re.findall(r">(RR\d{9}CN)</a>", html)


def page_link(html: str, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_pages_forward_and_back_by_cursor(app, client):
    add_shipments(app, 120)
    first = client.get("/admin/shipments").get_data(as_text=True)
    assert numbers(first)[:2] == ["RR000000120CN", "RR000000119CN"] and len(numbers(first)) == 50
    assert page_link(first, "prev") is None
    second = client.get(page_link(first, "next")).get_data(as_text=True)
    assert numbers(second)[0] == "RR000000070CN"
    third = client.get(page_link(second, "next")).get_data(as_text=True)
    assert numbers(third) == [f"RR{n:09d}CN" for n in range(20, 0, -1)] and page_link(third, "next") is None
    back = client.get(page_link(third, "prev")).get_data(as_text=True)
    assert numbers(back) == numbers(second)
    assert numbers(client.get(page_link(back, "prev")).get_data(as_text=True)) == numbers(first)


def test_pages_by_last_event_put_rows_without_events_last(app, client):
    add_shipments(app, 60)
    with app.app_context(), db.new_session() as session, session.begin():
        for index in range(3):
            session.add(
                Shipment(provider="17track", number=f"XX{index:09d}CN", carrier=0, tracking="pending")
            )
    first = client.get("/admin/shipments?sort=last_event").get_data(as_text=True)
    assert numbers(first)[0] == "RR000000060CN"
    second = client.get(page_link(first, "next")).get_data(as_text=True)
    assert numbers(second) == [f"RR{n:09d}CN" for n in range(10, 0, -1)]
    assert second.count(">XX0000000") == 3
    back = client.get(page_link(second, "prev")).get_data(as_text=True)
    assert numbers(back) == numbers(first)


def test_filters_and_search(app, client):
    add_shipments(app, 30)
    with app.app_context(), db.new_session() as session, session.begin():
        for shipment in session.scalars(select(Shipment).where(Shipment.number <= "RR000000005CN")):
            shipment.status, shipment.tag, shipment.last_error = "delivered", "order-7", "boom"
    found = numbers(client.get("/admin/shipments?status=delivered").get_data(as_text=True))
    assert sorted(found) == [f"RR{n:09d}CN" for n in range(1, 6)]
    assert len(numbers(client.get("/admin/shipments?tag=order-7").get_data(as_text=True))) == 5
    assert len(numbers(client.get("/admin/shipments?has_error=1").get_data(as_text=True))) == 5
    assert numbers(client.get("/admin/shipments?q=rr00000001").get_data(as_text=True)) == [
        f"RR{n:09d}CN" for n in range(19, 9, -1)
    ]
    today = utcnow().date()
    recent = client.get(
        f"/admin/shipments?registered_from={today - timedelta(days=29)}&registered_to={today}"
    )
    assert 0 < len(numbers(recent.get_data(as_text=True))) < 30
    stale = client.get("/admin/shipments?stale_days=29").get_data(as_text=True)
    assert "RR000000001CN" in stale and "RR000000030CN" not in stale
    bad = client.get("/admin/shipments?registered_from=yesterday")
    assert bad.status_code == 400 and "could not be read" in bad.get_data(as_text=True)


def test_csv_export_streams_the_current_filter(app, client):
    add_shipments(app, 1500)
    with app.app_context(), db.new_session() as session, session.begin():
        session.get(Shipment, 1).last_event_description = "=HYPERLINK(evil)"
    response = client.get("/admin/shipments.csv")
    assert response.is_streamed and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 1500 and rows[0]["number"] == "RR000001500CN"
    assert rows[-1]["last_event"] == "'=HYPERLINK(evil)"  # not a formula in a spreadsheet
    filtered = client.get("/admin/shipments.csv?q=RR00000150").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1


def test_bulk_stop_reports_each_row(app, client):
    ids = add_shipments(app, 3)
    with app.app_context(), db.new_session() as session, session.begin():
        session.get(Shipment, ids[1]).tracking = "stopped"
        session.get(Shipment, ids[2]).provider = "cargoai"
    token = csrf(client, "/admin/shipments")
    response = client.post("/admin/shipments/bulk", data={"action": "stop", "ids": ids, "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "1 of 3 queued; 2 refused" in html
    assert "queued: stoptrack" in html and "only a tracked number can be stopped" in html
    assert "cargoai numbers have no stop command" in html
    with app.app_context(), db.new_session() as session:
        assert [s.tracking for s in session.scalars(select(Shipment).order_by(Shipment.id))] == [
            "stopping", "stopped", "tracking"
        ]  # fmt: skip


def test_bulk_delete_asks_for_confirmation_with_the_reregistration_cost(app, client):
    ids = add_shipments(app, 2)
    token = csrf(client, "/admin/shipments")
    asked = client.post("/admin/shipments/bulk", data={"action": "delete", "ids": ids, "csrf_token": token})
    assert "Registering these 2 number(s) again will cost" in asked.get_data(as_text=True)
    assert "<strong>2 quota</strong>" in asked.get_data(as_text=True)
    with app.app_context(), db.new_session() as session:
        assert not session.scalars(select(Operation)).all()
    done = client.post(
        "/admin/shipments/bulk", data={"action": "delete", "ids": ids, "confirm": "yes", "csrf_token": token}
    )
    assert "2 of 2 queued" in done.get_data(as_text=True)


def test_shipment_page_escapes_provider_strings_and_shows_previews(app, client):
    (shipment_id,) = add_shipments(app, 1, last_event_description=XSS, tag=XSS)
    with app.app_context(), db.new_session() as session, session.begin():
        row = InboxEvent(
            provider="17track", body=f'{{"data": {{"desc": "{XSS}"}}}}'.encode(), status="processed"
        )
        session.add(row)
        session.flush()
        session.add(
            Transition(shipment_id=shipment_id, inbox_id=row.id, kind="transition", from_status="pending",
                       to_status="in_transit", description=XSS, dedupe_key="k")
        )  # fmt: skip
    html = client.get("/admin/shipments/17track/RR000000001CN").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(") >= 3 and "onerror=alert(1)&gt;" in html
    assert "retrack: free, 1st of 1" in html
    assert "change carrier: free, 5 of 5 free changes left" in html
    assert "set language: +1 quota" in html
    assert "registering this number again will cost 1 quota" in html
    listing = client.get("/admin/shipments").get_data(as_text=True)
    assert "<script>alert" not in listing and "&lt;script&gt;" in listing


def test_a_refused_command_shows_its_reason_in_the_page(app, client):
    (shipment_id,) = add_shipments(app, 1)
    page = "/admin/shipments/17track/RR000000001CN"
    token = csrf(client, page)
    response = client.post(
        f"/admin/shipments/{shipment_id}/retrack",
        data={"csrf_token": token, "back": page},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "only a stopped number can be retracked" in html
    assert "Traceback" not in html
    stop = client.post(
        f"/admin/shipments/{shipment_id}/stop",
        data={"csrf_token": token, "back": page},
        follow_redirects=True,
    )
    assert "queued: stoptrack" in stop.get_data(as_text=True)


def test_requeue_a_failed_inbox_row(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add_all([InboxEvent(provider="17track", body=f"<b>{n}</b>".encode(), status="failed",
                                    error=f"broken {n}") for n in range(2)])  # fmt: skip
    html = client.get("/admin/inbox").get_data(as_text=True)
    assert "broken 0" in html and "&lt;b&gt;0&lt;/b&gt;" in html
    client.post("/admin/inbox/requeue", data={"row": "1", "csrf_token": csrf(client, "/admin/inbox")})
    with app.app_context(), db.new_session() as session:
        assert [r.status for r in session.scalars(select(InboxEvent).order_by(InboxEvent.id))] == [
            "pending", "failed"
        ]  # fmt: skip


def test_operations_retry_cancel_and_resume_registration(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        for n in range(2):
            op = Operation(provider="17track", kind="stoptrack", number=f"N{n}", idempotency_key=f"k{n}",
                           status="failed", attempts=20, result_message="timeout")  # fmt: skip
            session.add(op)
        pause.pause(session, "17track", "register", -18019908, "quota used up", None)
    html = client.get("/admin/operations").get_data(as_text=True)
    assert "quota used up" in html and "Resume registration" in html
    token = csrf(client, "/admin/operations")
    client.post("/admin/operations/retry", data={"ids": ["1"], "csrf_token": token})
    client.post("/admin/operations/cancel", data={"ids": ["2"], "csrf_token": token})
    client.post("/admin/operations/resume-registration", data={"csrf_token": token})
    with app.app_context(), db.new_session() as session:
        ops = session.scalars(select(Operation).order_by(Operation.id)).all()
        assert [(o.status, o.attempts) for o in ops] == [("pending", 0), ("cancelled", 20)]
        assert pause.current(session, "17track", "register") is None


def test_tokens_are_created_once_and_revoked(app, client):
    html = client.post("/admin/tokens", data={"name": "erp", "csrf_token": csrf(client, "/admin/tokens")})
    token = re.search(r'id="new-token">([^<]+)<', html.get_data(as_text=True)).group(1)
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/shipments", headers=auth).status_code == 200
    assert token not in client.get("/admin/tokens").get_data(as_text=True)
    client.post("/admin/tokens/1/revoke", data={"csrf_token": csrf(client, "/admin/tokens")})
    assert api.get("/api/shipments", headers=auth).status_code == 401


def test_api_shipments_carry_their_cost(app, client):
    add_shipments(app, 1, cost_units=3, cost_currency="CNY")
    html = client.post("/admin/tokens", data={"name": "t", "csrf_token": csrf(client, "/admin/tokens")})
    token = re.search(r'id="new-token">([^<]+)<', html.get_data(as_text=True)).group(1)
    body = app.test_client().get("/api/shipments", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["shipments"][0]["cost"] == {"units": 3, "money": "0", "currency": "CNY"}


def test_quota_page_draws_charts_and_acknowledges_alerts(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(BudgetAlert(provider="17track", plan_period="2026-01-01", threshold=80, used_units=80,
                                limit_units=100, message="17track: 80 of 100 plan units used"))  # fmt: skip
    html = client.get("/admin/quota").get_data(as_text=True)
    assert html.count('<svg class="chart"') >= 2 and "Recommended:" in html
    assert "80 of 100 plan units used" in client.get("/admin/").get_data(as_text=True)
    client.post("/admin/alerts/1/acknowledge", data={"csrf_token": csrf(client, "/admin/quota")})
    assert "80 of 100 plan units used" not in client.get("/admin/").get_data(as_text=True)


def test_overview_counts_per_status_and_tracking(app, client):
    add_shipments(app, 4)
    html = client.get("/admin/").get_data(as_text=True)
    assert "17track shipments: 4" in html and "in_transit" in html and "Inbox pending" in html


def test_overview_shows_heartbeats_and_the_last_job_runs(app, client):
    from lifecycle.cleanup.models import Heartbeat, JobRun

    now = utcnow()
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(Heartbeat(kind="worker", name="celery@a", host="a", pid=1, beat_at=now))
        session.add(Heartbeat(kind="beat", name="beat@b", host="b", pid=2, beat_at=now - timedelta(hours=1)))
        session.add(JobRun(job="retention", started_at=now, finished_at=now, counts={}))
        session.add(JobRun(job="safety_net", started_at=now, error="database went away", counts={}))
    html = client.get("/admin/").get_data(as_text=True)
    assert re.search(r"worker celery@a</span>\s*— alive", html)
    assert re.search(r"beat beat@b</span>\s*— silent", html)
    assert "retention: " in html and "database went away" in html


def test_quota_page_shows_cargoai_spend_this_month_with_its_fee(settings_factory):
    app = create_app(settings_factory(cargoai_plan="push-pro"))
    create_admin(app)
    client = app.test_client()
    sign_in(client)
    html = re.sub(r"\s+", " ", client.get("/admin/quota").get_data(as_text=True))
    assert "This month in total</dt><dd>49.00 USD = fee 49.00 USD (push-pro) + subscriptions 0.00 USD" in html
    db.engine.dispose()  # type: ignore[union-attr]


def test_csv_export_never_holds_the_whole_list(app):
    from zoneinfo import ZoneInfo

    from lifecycle.admin import shipment_list

    add_shipments(app, 3000)
    held = []
    with app.app_context(), db.new_session() as session:
        lines = shipment_list.csv_lines(session, shipment_list.Filters(), ZoneInfo("UTC"), chunk=500)
        for _ in lines:
            held.append(len(session.identity_map))
    assert len(held) == 3000 // 500 + 1 and max(held) <= 2 * 500


def test_actions_only_go_back_to_pages_of_this_site(app, client):
    (shipment_id,) = add_shipments(app, 1)
    token = csrf(client, "/admin/shipments")
    for back in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)"):
        form = {"csrf_token": token, "back": back}
        response = client.post(f"/admin/shipments/{shipment_id}/sync", data=form)
        assert response.location == "/admin/shipments", back


def test_times_are_shown_in_the_account_time_zone_with_utc_on_hover(settings_factory):
    from datetime import UTC, datetime

    app = create_app(settings_factory(account_timezone="Asia/Shanghai"))
    create_admin(app)
    add_shipments(app, 1, start=datetime(2026, 11, 3, 20, 30, tzinfo=UTC))
    client = app.test_client()
    sign_in(client)
    html = client.get("/admin/shipments").get_data(as_text=True)
    shown = '<time datetime="2026-11-03T20:30:00Z" title="2026-11-03 20:30:00 UTC">2026-11-04 04:30</time>'
    assert shown in html
    assert "Times in Asia/Shanghai" in html
    db.engine.dispose()  # type: ignore[union-attr]


def test_overview_counts_are_cached_until_an_action_changes_them(app, client):
    ids = add_shipments(app, 3)
    assert "17track shipments: 3" in client.get("/admin/").get_data(as_text=True)
    add_shipments(app, 1, number="LX000000001CN")
    assert "17track shipments: 3" in client.get("/admin/").get_data(as_text=True)  # cached aggregate
    token = csrf(client, "/admin/shipments")
    client.post("/admin/shipments/bulk", data={"action": "stop", "ids": ids[:2], "csrf_token": token})
    html = client.get("/admin/").get_data(as_text=True)
    assert "17track shipments: 4" in html and re.search(r">stopping</a></td><td class=\"num\">2<", html)
