"""`manage.py status`: one screen of lag, backlog, pauses, heartbeats, quota, jobs and alerts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from config.settings import get_settings
from lifecycle import jobs
from lifecycle.cleanup.heartbeat import BEAT, WORKER
from lifecycle.cleanup.heartbeat import record as record_heartbeat
from lifecycle.db import utcnow
from lifecycle.extensions import db
from lifecycle.inbox.models import FAILED, InboxEvent
from lifecycle.operations import pause
from tests.helpers import delivered, in_transit, post_push

ROOT = Path(__file__).resolve().parent.parent


def test_a_quiet_new_service_says_nothing_ran_yet(app, run_cli):
    report = json.loads(run_cli("status", "--json"))
    assert report["inbox"] == {"pending": 0, "failed": 0, "capped": False, "oldest_pending_age_seconds": None}
    assert report["outbox"] == {"queued": [], "in_flight": 0, "failed": 0, "failed_by_kind": []}
    assert report["alerts"] == ["workers: no worker has run yet", "beat: no heartbeat yet"]
    free = [b for b in report["quota"] if b["bucket"] == "monthly_free"]
    assert free[0]["provider"] == "17track" and free[0]["remaining"] == 100
    assert {job["job"] for job in report["jobs"]} >= {"retention", "safety-net", "reconcile"}
    nothing = {"endpoints": 0, "endpoints_disabled": 0, "pending": 0, "held": 0, "in_flight": 0}
    assert report["outbound"] == nothing | {"oldest_pending_age_seconds": None, "given_up": 0}
    screen = run_cli("status")
    assert "outbound  no endpoint" in screen
    # No paid plan is set: its bucket (limit 0, nothing used) is not shown as "0 used of 0".
    plan = next(b for b in report["quota"] if b["provider"] == "17track" and b["bucket"] == "plan")
    assert (plan["limit"], plan["used"]) == (0, 0)
    assert " plan " not in screen and "of 0 (0 left)" not in screen
    assert "17track quota monthly_free" in screen and "0 used of 100 (100 left)" in screen


def test_outbound_deliveries_waiting_and_their_age_are_reported(app, client, run_cli):
    from lifecycle.outbound import endpoints
    from lifecycle.outbound.models import Delivery

    with app.app_context(), db.new_session() as session, session.begin():
        endpoints.add(session, "http://127.0.0.1:9/hook", None, allow_private=True)
        # Switched off below with a delivery of its own: held, not late, so it never raises the lag alert.
        second = endpoints.add(session, "http://127.0.0.1:9/other", None, allow_private=True)
    post_push(client, in_transit("OU1"))
    with app.app_context():
        jobs.drain_inbox()
        with db.new_session() as session, session.begin():
            endpoints.set_enabled(session, second.id, False)
    report = json.loads(run_cli("status", "--json"))
    outbound = report["outbound"]
    assert (outbound["endpoints"], outbound["endpoints_disabled"], outbound["pending"]) == (2, 1, 1)
    assert outbound["held"] == 1
    assert 0 <= outbound["oldest_pending_age_seconds"] < 600
    assert not any(alert.startswith("outbound") for alert in report["alerts"])
    screen = run_cli("status")
    assert re.search(
        r"outbound  2 endpoint\(s\) \(1 disabled, 1 deliveries held\); 1 pending, oldest created \d+ s ago",
        screen,
    )
    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(update(Delivery).values(created_at=utcnow() - timedelta(hours=2)))
    report = json.loads(run_cli("status", "--json"))
    assert (
        "outbound: oldest pending delivery is 2.0 h old (1 pending; `manage.py endpoint attempts ID`)"
        in (report["alerts"])
    )


def test_lag_backlog_pause_heartbeats_and_jobs_are_reported(app, client, run_cli):
    post_push(client, delivered("ST1"))
    post_push(client, in_transit("ST2"))
    with app.app_context():
        jobs.drain_inbox()  # ST1 delivered: a stoptrack waits in the outbox
        for number in ("ST3", "ST4", "ST5"):
            post_push(client, in_transit(number))
        with db.new_session() as session, session.begin():
            session.execute(update(InboxEvent).where(InboxEvent.id == 5).values(status=FAILED, error="bad"))
            pause.pause(session, "17track", "register", -18019903, "quota used up", None)
        record_heartbeat(db.new_session, WORKER, "celery@a")
        record_heartbeat(db.new_session, BEAT, "beat@a")
        jobs.cleanup("retention")
    report = json.loads(run_cli("status", "--json"))
    assert (report["inbox"]["pending"], report["inbox"]["failed"]) == (2, 1)
    assert report["inbox"]["oldest_pending_age_seconds"] >= 0
    assert report["outbox"]["queued"] == [{"provider": "17track", "kind": "stoptrack", "count": 1}]
    assert report["paused"][0]["kind"] == "register" and report["paused"][0]["until"] is None
    assert report["heartbeats"]["workers"] == {"alive": 1, "problem": None}
    retention = next(job for job in report["jobs"] if job["job"] == "retention")
    assert retention["last_success_at"] is not None and retention["last_error"] is None
    assert report["alerts"] == [
        "inbox: 1 failed rows (`manage.py inbox`)",
        "17track register paused: quota used up",
    ]
    screen = run_cli("status")
    assert "inbox     2 pending" in screen and "1 failed" in screen
    assert "outbox    queued: 17track stoptrack 1" in screen
    assert "paused    17track register: quota used up until resumed" in screen
    assert "workers   1 alive" in screen
    # Seconds since the run: 0 on a quiet machine, more on a busy one.
    assert re.search(r"retention +last success \d+ s ago", screen)
    assert "! 17track register paused: quota used up" in screen


def test_inbox_lag_past_a_minute_alerts(app, client, run_cli):
    post_push(client, in_transit("ST9"))
    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(update(InboxEvent).values(received_at=utcnow() - timedelta(minutes=5)))
    report = json.loads(run_cli("status", "--json"))
    assert report["inbox"]["oldest_pending_age_seconds"] >= 300
    assert any(alert.startswith("inbox: oldest pending row waits for 3") for alert in report["alerts"])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_watch_refreshes_and_the_command_starts_without_the_web_app(settings):
    from lifecycle import migrate

    migrate.upgrade(settings.database_url)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": str(settings.var_dir)}
    probe = (
        "import sys; from click.testing import CliRunner; from lifecycle.cli import cli;"
        "r = CliRunner().invoke(cli, ['status', '--json']); assert r.exit_code == 0, r.output;"
        "heavy = ('flask', 'lifecycle.web', 'lifecycle.providers.seventeentrack.client');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    watch = subprocess.Popen(
        [sys.executable, "manage.py", "status", "--watch", "--json", "--interval", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout is not None
        screens = [json.loads(watch.stdout.readline()) for _ in range(3)]
    finally:
        watch.kill()
        watch.wait(timeout=30)
    assert len({screen["at"] for screen in screens}) == 3  # three refreshes, each read anew


def test_alert_thresholds_for_quota_jobs_and_beat():
    from lifecycle.observability.health_report import alerts

    settings = get_settings().model_copy(update={"heartbeat_interval_seconds": 30.0})
    report = {
        "heartbeats": {"workers": {"alive": 1, "problem": None},
                       "worker_heartbeat_age_seconds": 5.0, "beat_heartbeat_age_seconds": 91.0,
                       # as cleanup.heartbeat.ages says past 3 missed heartbeats (tested there)
                       "beat": {"problem": "beat has sent nothing for 91 seconds: …"}},
        "inbox": {"pending": 0, "failed": 0, "oldest_pending_age_seconds": None},
        "paused": [],
        "quota": [
            {"provider": "17track", "unit": "quota", "bucket": "plan", "limit": 10_000, "remaining": 500},
            {"provider": "17track", "unit": "quota", "bucket": "plan", "limit": 10_000, "remaining": 501},
            {"provider": "17track", "unit": "quota", "bucket": "monthly_free", "limit": 100, "remaining": 0},
        ],
        "jobs": [_job("retention", 1201.0), _job("stale", 1199.0), _job("reconcile", None, "Boom")],
        "job_alerts": [{"job": "reconcile", "message": "drift appeared", "raised_at": "…"}],
    }  # fmt: skip
    assert alerts(report, settings) == [
        "beat: silent for 91 s",
        "quota: 17track quota plan has 500 of 10000 left",
        "job retention: last success 20 min ago",
        "job reconcile: last run failed: Boom",
        "reconcile: drift appeared",
    ]


def _job(name: str, success_age: float | None, error: str | None = None) -> dict[str, object]:
    return {
        "job": name,
        "interval_seconds": 600.0,
        "last_success_age_seconds": success_age,
        "last_error": error,
    }
