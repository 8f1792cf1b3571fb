"""The overview: shipment counts stored by beat (never counted by a page load), the registration
pause banner, inbox lag figures, the quota box."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine

from lifecycle import runtime
from lifecycle.accounting import service as accountant
from lifecycle.accounting.rules import BillableEvent
from lifecycle.admin import counts
from lifecycle.cleanup.schedule import OVERVIEW_COUNTS_SECONDS, OVERVIEW_COUNTS_TASK
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations import pause
from tests.admin_support import add_shipments


def text_of(html: str) -> str:
    """The page's words with tags and runs of white space collapsed, for phrase assertions."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def stored(app):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return counts.stored(session)


def test_a_page_load_reads_the_stored_counts_and_never_counts(app, client, monkeypatch):
    add_shipments(app, 3)
    with app.app_context():
        counts.refresh(db.read_session, db.new_session)
    add_shipments(app, 1, number="LX000000001CN")  # after the count: not shown until the next one

    def no_counting(session):  # type: ignore[no-untyped-def]
        raise AssertionError("a page load counted the shipments table")

    monkeypatch.setattr(counts, "count_shipments", no_counting)
    html = client.get("/admin/").get_data(as_text=True)
    assert "17track shipments: 3" in html
    assert re.search(r'id="counted-at">Counts as of <time datetime="[^"]+Z"', html)


def test_the_first_load_of_a_fresh_install_counts_once_and_stores_it(app, client):
    add_shipments(app, 2)
    assert stored(app) is None
    assert "17track shipments: 2" in client.get("/admin/").get_data(as_text=True)
    snapshot = stored(app)
    assert snapshot is not None and snapshot.counts["17track"]["total"]["all"] == 2


def test_beat_refreshes_the_counts_every_30_seconds(app, client):
    import workers.tasks  # noqa: F401  (registers the tasks, as the worker's `include` does)

    entry = app.extensions["celery"].conf.beat_schedule["overview-counts"]
    assert (
        entry == {"task": OVERVIEW_COUNTS_TASK, "schedule": OVERVIEW_COUNTS_SECONDS}
        and entry["schedule"] <= 30
    )
    assert "None yet" in client.get("/admin/").get_data(as_text=True)  # counted (nothing) and stored
    add_shipments(app, 4)
    assert "None yet" in client.get("/admin/").get_data(as_text=True)  # until beat counts again
    with app.app_context():
        report = app.extensions["celery"].tasks[OVERVIEW_COUNTS_TASK].apply().get()
    assert report["shipments"] == 4
    html = client.get("/admin/").get_data(as_text=True)
    assert "17track shipments: 4" in html
    assert re.search(r">tracking</a></td><td class=\"num\">4<", html)


def test_counts_beat_has_not_refreshed_for_a_while_say_so(app, client):
    add_shipments(app, 1)
    with app.app_context():
        counts.refresh(db.read_session, db.new_session)
    assert "beat recounts every 30 s" in client.get("/admin/").get_data(as_text=True)
    with time_machine.travel(utcnow() + timedelta(minutes=10)):
        html = client.get("/admin/").get_data(as_text=True)
    assert "beat has not recounted since" in html and "10 min ago" in html


def test_an_older_count_never_replaces_a_newer_one(app):
    now = utcnow()
    with app.app_context(), db.new_session() as session, session.begin():
        counts.store(session, {"17track": {"status": {}, "tracking": {}, "total": {"all": 7}}}, now)
        counts.store(
            session, {"17track": {"status": {}, "tracking": {}, "total": {"all": 5}}}, now - timedelta(1)
        )
    assert stored(app).counts["17track"]["total"]["all"] == 7


def test_the_registration_pause_banner_shows_reason_times_and_resume(app, client):
    assert "Registration is not paused." in client.get("/admin/").get_data(as_text=True)
    until = utcnow() + timedelta(hours=5)
    with app.app_context(), db.new_session() as session, session.begin():
        pause.pause(session, "17track", "register", -18019908, "quota used up", until)
    html = client.get("/admin/").get_data(as_text=True)
    banner = re.search(r'<div class="flash error" role="alert">(.*?)</div>', html, re.S).group(1)
    assert "Paused 17track:register: -18019908 quota used up" in text_of(banner)
    stamp = until.strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(rf'until <time datetime="{stamp}[^"]*Z" title="[^"]+ UTC">', banner)
    assert re.search(r'since <time datetime="[^"]+Z"', banner)
    assert "Resume registration" in banner and "Registration is not paused." not in html


def test_inbox_lag_figures(app, client):
    received = utcnow() - timedelta(minutes=12)
    with app.app_context(), db.new_session() as session, session.begin():
        for n in range(3):
            session.add(
                InboxEvent(provider="17track", body=b"{}", received_at=received + timedelta(minutes=n))
            )
        session.add(InboxEvent(provider="17track", body=b"{}", status="failed", error="bad body"))
    words = text_of(client.get("/admin/").get_data(as_text=True))
    assert "Inbox pending 3 — oldest 12 min old" in words
    assert "Inbox failed 1 " in words


def test_the_quota_box_shows_use_remaining_and_forecast(app, client):
    now = utcnow()
    with app.app_context():
        account = runtime.account("17track")
        with db.new_session() as session, session.begin():
            events = [
                BillableEvent("17track", "register", f"17track:register:N{n}:0:1", now) for n in range(30)
            ]
            accountant.charge(session, account, events)
    words = text_of(client.get("/admin/").get_data(as_text=True))
    box = words[words.index("17track quota") :]
    assert box.startswith("17track quota Used this month 30 quota Remaining 70 quota")
    assert "Runs out not at the current rate Plan " in box  # 1 a day: the 100 free a month cover it
