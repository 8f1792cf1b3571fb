"""The admin console in headless Chromium (Debian's package, driven by playwright), against a real
HTTP server on an ephemeral port. Each test saves screenshots under pytest's temporary folder.

Without /usr/bin/chromium (or the playwright package) these tests skip and say why; with CI=true
they fail instead, because CI installs the browser (.ci/run).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from lifecycle.accounting.models import UsageTotal
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.shipments.models import Shipment
from tests.admin_support import EMAIL, PASSWORD, add_shipments
from tests.conftest import IN_CI
from tests.helpers import serving

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def _browser_missing() -> str | None:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium, or set CHROMIUM_PATH)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The browser tests run on the embedded default only: the pages' queries are tested on both."""
    return request.param


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    missing = _browser_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI needs the browser tests to run: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin-screenshots")


@pytest.fixture
def base_url(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serving(app) as url:
        yield url


@pytest.fixture
def page(browser, base_url):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=LAPTOP, base_url=base_url, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def snap(page, shots: Path, name: str, phone: bool = False) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(shots / f"{name}-laptop.png"), full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
        page.set_viewport_size(LAPTOP)


def shown_numbers(page) -> list[str]:  # type: ignore[no-untyped-def]
    # all_inner_texts does not wait: after a click that navigates, read only the finished page.
    page.wait_for_load_state("load")
    return page.locator("table.shipments tbody td.mono a").all_inner_texts()


def test_sign_in_filter_page_forward_and_back_and_search(app, page, shots):
    add_shipments(app, 70)
    add_shipments(app, 1, number="LX000000001CN", tag="order-7", status="delivered", tracking="stopped")
    snap(page, shots, "overview", phone=True)
    page.get_by_role("link", name="Shipments").first.click()
    page.get_by_label("Status").select_option("in_transit")
    page.get_by_role("button", name="Apply").click()
    first = shown_numbers(page)
    assert len(first) == 50 and first[0] == "RR000000070CN"
    page.get_by_role("link", name="Next →").click()
    assert shown_numbers(page) == [f"RR{n:09d}CN" for n in range(20, 0, -1)]
    page.get_by_role("link", name="← Previous").click()
    assert shown_numbers(page) == first
    page.get_by_label("Number starts with").fill("rr00000006")
    page.get_by_role("button", name="Apply").click()
    assert shown_numbers(page) == [f"RR{n:09d}CN" for n in range(69, 59, -1)]
    page.goto("/admin/shipments")
    page.get_by_label("Tag").fill("order-7")
    page.get_by_role("button", name="Apply").click()
    assert shown_numbers(page) == ["LX000000001CN"]
    snap(page, shots, "shipments", phone=True)


def test_open_a_shipment_press_retrack_and_see_result_and_cost_preview(app, page, shots):
    add_shipments(app, 1, tracking="stopped", last_event_description='<img src=x onerror="alert(1)">')
    page.goto("/admin/shipments")
    page.get_by_role("link", name="RR000000001CN").click()
    preview = page.locator("#cost-retrack")
    assert preview.inner_text() == "retrack: free, 1st of 1"
    assert page.get_by_text('<img src=x onerror="alert(1)">').first.is_visible()  # shown as text
    page.get_by_role("button", name="Retrack").click()
    assert "queued: retrack (free, once per number)" in page.locator(".flash.ok").inner_text()
    snap(page, shots, "shipment", phone=True)
    page.get_by_role("button", name="Retrack").click()  # queued already: refused with the reason
    assert "already queued" in page.locator(".flash.error").first.inner_text()


def test_bulk_stop_shows_a_result_per_row(app, page, shots):
    add_shipments(app, 3)
    with app.app_context(), db.new_session() as session, session.begin():
        session.scalars(select(Shipment).where(Shipment.number == "RR000000001CN")).one().tracking = "stopped"
    page.goto("/admin/shipments")
    page.get_by_label("Select every row on this page").check()
    assert page.locator("[data-selected-count]").inner_text() == "3 selected"
    page.get_by_label("With the selected rows").select_option("stop")
    page.get_by_role("button", name="Run").click()
    assert "2 of 3 queued; 1 refused" in page.locator(".flash").first.inner_text()
    page.wait_for_load_state("load")
    assert page.locator("tr.refused").count() == 1
    snap(page, shots, "bulk-stop")


def test_export_csv_of_the_current_filter(app, page, shots, tmp_path):
    add_shipments(app, 12)
    page.goto("/admin/shipments?q=RR00000001")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    target = tmp_path / "shipments.csv"
    download_info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["number"] for r in rows] == [f"RR{n:09d}CN" for n in range(12, 9, -1)]
    snap(page, shots, "export")


def test_quota_page_shows_its_charts(app, page, shots):
    today = utcnow().date()
    with app.app_context(), db.new_session() as session, session.begin():
        for days_ago in range(0, 60, 2):  # what the ledger's running `day` totals hold
            period = (today - timedelta(days=days_ago)).isoformat()
            units = 1 + days_ago % 5
            total = UsageTotal(provider="17track", scope="day", period=period, key="quota", units=units)
            session.add(total)
    page.get_by_role("link", name="Quota & costs").click()
    page.wait_for_load_state("load")
    charts = page.locator("svg.chart")
    assert charts.count() >= 4  # buckets and plans, for each provider, and 17TRACK's daily use
    daily = page.get_by_role("img", name=re.compile(r"^quota used per day and in all over the last 90 days"))
    assert daily.is_visible() and daily.bounding_box()["width"] > 300
    assert daily.locator("rect.bar").count() == 90
    # The cumulative use and, at the 30-day burn rate, where it goes next.
    assert daily.locator("polyline.cumulative").count() == 1 and daily.locator("line.projection").count() == 1
    snap(page, shots, "quota", phone=True)


def test_requeue_a_failed_inbox_row(app, page, shots):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(
            InboxEvent(provider="17track", body=b'{"event": "<b>x</b>"}', status="failed", error="bad")
        )
    page.get_by_role("link", name="Inbox").click()
    snap(page, shots, "inbox-before")
    page.get_by_role("button", name="Requeue row 1").click()
    assert "Requeued 1 failed row(s)" in page.locator(".flash.ok").inner_text()
    with app.app_context(), db.new_session() as session:
        assert session.get(InboxEvent, 1).status == "pending"
    snap(page, shots, "inbox-after")
